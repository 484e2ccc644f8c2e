/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <dirent.h>
#include <stddef.h>
#include <sys/types.h>

/* Read a whole small regular file relative to dir_fd (AT_FDCWD for a path),
 * never following a symlink in the last component and never blocking on a
 * FIFO. The result is NUL terminated (ret_len excludes the NUL).
 *   -ENOENT      no such file
 *   -EBADFD      not a regular file
 *   -EFBIG       larger than max (nothing read)
 *   -ENODATA     the file shrank while being read */
int read_small_file_at(int dir_fd, const char *name, size_t max, char **ret, size_t *ret_len);

/* A directory stream of its own on the directory dir_fd (AT_FDCWD: the working
 * directory), which stays open and keeps its own position: -errno on failure. */
int opendir_at(int dir_fd, DIR **ret);

/* write() all of buf, retrying on EINTR and short writes. */
int write_full(int fd, const void *buf, size_t n);

/* Replace `name` in dir_fd with buf, atomically and durably: written to
 * "name.tmp" (mode `mode`, a stale one replaced), fsync, renamed over `name`,
 * then the directory synced. A failure leaves `name` as it was. */
int write_file_atomic_at(int dir_fd, const char *name, const void *buf, size_t n, mode_t mode);
