/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stddef.h>

/* Read a whole small regular file relative to dir_fd (AT_FDCWD for a path),
 * never following a symlink in the last component and never blocking on a
 * FIFO. The result is NUL terminated (ret_len excludes the NUL).
 *   -ENOENT      no such file
 *   -EBADFD      not a regular file
 *   -EFBIG       larger than max (nothing read)
 *   -ENODATA     the file shrank while being read */
int read_small_file_at(int dir_fd, const char *name, size_t max, char **ret, size_t *ret_len);

/* write() all of buf, retrying on EINTR and short writes. */
int write_full(int fd, const void *buf, size_t n);
