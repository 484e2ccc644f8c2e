/* SPDX-License-Identifier: Apache-2.0 */
/* Policy files: every good-*.xml in the directory given parses, formats and
 * parses back the same; every bad-*.xml is refused with an error holding the
 * text of its bad-*.xml.expect (file, line, element, what), and no policy. */
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>

#include "fileio.h"
#include "policy.h"

static int failures;

static void check_good(int dfd, const char *name) {
        _cleanup_free_ char *buf = NULL, *error = NULL, *a = NULL, *b = NULL;
        _cleanup_(policy_freep) Policy *p = NULL, *q = NULL;
        size_t len, la, lb;

        assert(read_small_file_at(dfd, name, 1 << 20, &buf, &len) >= 0);
        if (policy_parse(buf, len, name, &p, &error) < 0) {
                printf("FAIL: %s refused: %s\n", name, error);
                failures++;
                return;
        }
        assert(policy_format(p, &a, &la) >= 0);
        assert(policy_parse(a, la, "formatted", &q, NULL) >= 0);
        assert(policy_format(q, &b, &lb) >= 0);
        if (la != lb || memcmp(a, b, la) != 0) {
                printf("FAIL: %s does not format back the same\n", name);
                failures++;
                return;
        }
        printf("ok - %s accepted, and written back the same\n", name);
}

static void check_bad(int dfd, const char *name) {
        _cleanup_free_ char *buf = NULL, *error = NULL, *expect = NULL, *ename = NULL;
        _cleanup_(policy_freep) Policy *p = NULL;
        size_t len;
        int r;

        assert(asprintf(&ename, "%s.expect", name) > 0);
        assert(read_small_file_at(dfd, name, 1 << 20, &buf, &len) >= 0);
        if (read_small_file_at(dfd, ename, 4096, &expect, NULL) < 0) {
                printf("FAIL: %s has no %s\n", name, ename);
                failures++;
                return;
        }
        expect[strcspn(expect, "\n")] = '\0';
        r = policy_parse(buf, len, name, &p, &error);
        if (r >= 0 || p || !error || !strstr(error, expect)) {
                printf("FAIL: %s: expected an error with \"%s\", got %d \"%s\"\n", name, expect, r, strna(error));
                failures++;
                return;
        }
        if (strstr(error, "s3cret")) {
                printf("FAIL: %s: the error shows the credential: %s\n", name, error);
                failures++;
                return;
        }
        printf("ok - %s refused: %s\n", name, error);
}

int main(int argc, char *argv[]) {
        _cleanup_close_ int dfd = -EBADF;
        struct dirent **names;
        int n, good = 0, bad = 0;

        assert(argc == 2);
        dfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert(dfd >= 0);
        n = scandir(argv[1], &names, NULL, alphasort);
        assert(n >= 0);
        for (int i = 0; i < n; i++) {
                const char *name = names[i]->d_name;
                size_t l = strlen(name);
                if (l > 4 && streq(name + l - 4, ".xml")) {
                        if (strncmp(name, "good-", 5) == 0) {
                                check_good(dfd, name);
                                good++;
                        } else if (strncmp(name, "bad-", 4) == 0) {
                                check_bad(dfd, name);
                                bad++;
                        }
                }
                free(names[i]);
        }
        free(names);
        if (good == 0 || bad == 0) {
                printf("FAIL: no good or no bad files in %s\n", argv[1]);
                return 1;
        }
        return failures ? 1 : 0;
}
