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

#include "fileio.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (16U << 20)

static int replay_file(const char *path) {
        _cleanup_free_ char *buf = NULL;
        size_t size;
        int r;

        r = read_small_file_at(AT_FDCWD, path, REPLAY_MAX_INPUT, &buf, &size);
        if (r == -EBADFD)
                return 0; /* not a regular file: nothing to replay */
        if (r < 0)
                return fprintf(stderr, "%s: %s\n", path, strerror(-r)), r;
        (void) LLVMFuzzerTestOneInput((const uint8_t *) buf, size);
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
