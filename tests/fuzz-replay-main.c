/* SPDX-License-Identifier: Apache-2.0 */
/* Replays a fuzz target's corpus as an ordinary test, in every build (no
 * libFuzzer needed): calls LLVMFuzzerTestOneInput() once on each file of the
 * directories (or files) given. A crash, a sanitizer report or an abort fails
 * the test; so does an empty corpus, which would prove nothing. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (16U << 20)

static int replay_file(const char *path) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        size_t got = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &st) < 0)
                return fprintf(stderr, "%s: %m\n", path), -errno;
        if (!S_ISREG(st.st_mode))
                return 0;
        if ((uint64_t) st.st_size > REPLAY_MAX_INPUT)
                return fprintf(stderr, "%s: larger than %u bytes\n", path, REPLAY_MAX_INPUT), -EFBIG;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (got < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + got, (size_t) st.st_size - got);
                if (n <= 0)
                        return fprintf(stderr, "%s: short read\n", path), -EIO;
                got += (size_t) n;
        }
        (void) LLVMFuzzerTestOneInput(buf, got);
        return 1;
}

int main(int argc, char *argv[]) {
        unsigned n = 0;

        for (int i = 1; i < argc; i++) {
                DIR *d = opendir(argv[i]);
                struct dirent *de;

                if (!d) {
                        int r = replay_file(argv[i]);
                        if (r < 0)
                                return 1;
                        n += (unsigned) r;
                        continue;
                }
                while ((de = readdir(d))) {
                        char path[4096];
                        int r;

                        if (de->d_name[0] == '.')
                                continue;
                        if ((size_t) snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name) >= sizeof(path))
                                continue;
                        r = replay_file(path);
                        if (r < 0) {
                                closedir(d);
                                return 1;
                        }
                        n += (unsigned) r;
                }
                closedir(d);
        }
        printf("replayed %u input(s)\n", n);
        return n > 0 ? 0 : 1;
}
