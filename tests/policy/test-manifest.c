/* SPDX-License-Identifier: Apache-2.0 */
/* The strict manifest parser of SOFTWARE-MANIFEST.md, version comparison and
 * the package check (size and SHA-256 streamed from an fd, bounded). */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fileio.h"
#include "software.h"

static int failures;

static void expect(bool ok, const char *what) {
        printf("%s - %s\n", ok ? "ok" : "FAIL", what);
        if (!ok)
                failures++;
}

#define GOOD "callhome-manifest-v1\npackage=fw-main\nversion=2.3.10\nsize=3\n" \
             "sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n" \
             "model=XC-9000\nexpires=2027-02-23T12:55:49Z\n"

static void refused(const char *text, const char *want, const char *what) {
        _cleanup_free_ char *e = NULL;
        Manifest m;
        int r = manifest_parse(text, strlen(text), &m, &e);

        printf("# %s: %s\n", what, strna(e));
        expect(r == -EBADMSG && e && strstr(e, want), what);
}

/* GOOD with the first `from` replaced by `to`. */
static char *edit(const char *from, const char *to) {
        const char *at = strstr(GOOD, from);
        char *s;

        assert(at);
        assert(asprintf(&s, "%.*s%s%s", (int) (at - GOOD), GOOD, to, at + strlen(from)) > 0);
        return s;
}

static void refused_edit(const char *from, const char *to, const char *want, const char *what) {
        _cleanup_free_ char *s = edit(from, to);
        refused(s, want, what);
}

int main(void) {
        Manifest m;

        expect(manifest_parse(GOOD, strlen(GOOD), &m, NULL) == 0 && streq(m.package, "fw-main") &&
               streq(m.version, "2.3.10") && m.size == 3 && streq(m.model, "XC-9000") && m.expires_sec == 1803387349ULL,
               "the example parses, every field in place");

        refused_edit("\n", "\r\n", "CR", "a CR");
        refused_edit("XC-9000", "XC-9\xc3\xa9", "ASCII", "a non-ASCII byte");
        refused_edit("callhome-manifest-v1", "callhome-manifest-v2", "line 1", "another format");
        refused_edit("model=XC-9000\n", "", "line 6", "a missing key");
        refused_edit("size=3\n", "size=3\nsize=3\n", "line 5", "a repeated key");
        refused_edit("size=3\nsha256", "sha256", "line 4", "reordered keys");
        refused_edit("package=", "Package=", "line 2", "a key in other case");
        refused_edit("size=3", "size=03", "bad value for size", "a size with a leading zero");
        refused_edit("size=3", "size=10000000000000000", "bad value for size", "a size of 10^16");
        refused_edit("version=2.3.10", "version=1.0-rc1", "bad value for version", "a version with letters");
        refused_edit("version=2.3.10", "version=1.2.3.4.5", "bad value for version", "five version numbers");
        refused_edit("version=2.3.10", "version=1000000", "bad value for version", "a version number over 999999");
        refused_edit("version=2.3.10", "version=1..2", "bad value for version", "an empty version number");
        refused_edit("sha256=ba", "sha256=BA", "bad value for sha256", "an uppercase digest");
        refused_edit("model=XC-9000", "model=", "bad value for model", "an empty model");
        refused_edit("package=fw-main", "package=-fw", "bad value for package", "a package starting with '-'");
        refused_edit("2027-02-23", "2027-02-29", "bad value for expires", "29 February 2027");
        refused_edit("12:55:49Z", "24:00:00Z", "bad value for expires", "hour 24");
        refused_edit("12:55:49Z", "12:55:49+", "bad value for expires", "no Z");
        refused_edit("expires=2027-02-23T12:55:49Z\n", "expires=2027-02-23T12:55:49Z\nextra=1\n", "more than 7",
                     "an extra line");
        refused_edit("expires=2027-02-23T12:55:49Z\n", "expires=2027-02-23T12:55:49Z", "LF", "no final LF");
        {
                char nul[] = GOOD;
                _cleanup_free_ char *e = NULL;
                nul[30] = 0;
                expect(manifest_parse(nul, sizeof(nul) - 1, &m, &e) == -EBADMSG && strstr(e, "printable"), "a NUL byte");
        }
        refused("", "LF", "empty");
        {
                char big[MANIFEST_MAX + 2];
                memset(big, '\n', sizeof(big));
                _cleanup_free_ char *e = NULL;
                expect(manifest_parse(big, sizeof(big), &m, &e) == -EBADMSG && strstr(e, "larger"), "over 1024 bytes");
        }

        expect(version_compare("1.2", "1.2.0") < 0 && version_compare("1.2.0", "1.10") < 0 &&
               version_compare("1.10", "1.9") > 0 && version_compare("2", "2") == 0 &&
               version_compare("999999.0", "1000.1") > 0 && version_compare("0", "0.0") < 0,
               "versions compare as tuples of numbers");
        expect(version_valid("0") && version_valid("999999.999999.999999.999999") && !version_valid("") &&
               !version_valid("1.") && !version_valid(".1") && !version_valid("01") && !version_valid("1.2.3.4.5"),
               "version syntax");

        /* The package from an fd: "abc" is the manifest's size and SHA-256. */
        {
                int fd = memfd_create("pkg", MFD_CLOEXEC);
                _cleanup_free_ char *e1 = NULL, *e2 = NULL, *e3 = NULL;

                assert(fd >= 0 && manifest_parse(GOOD, strlen(GOOD), &m, NULL) == 0);
                assert(write_full(fd, "abc", 3) == 0);
                expect(software_check_package(fd, &m, NULL) == 0, "the right bytes pass");
                assert(pwrite(fd, "abd", 3, 0) == 3);
                expect(software_check_package(fd, &m, &e1) == -EPERM && strstr(e1, "SHA-256"), "one byte changed: the digest");
                assert(pwrite(fd, "abcd", 4, 0) == 4);
                expect(software_check_package(fd, &m, &e2) == -EPERM && strstr(e2, "larger"), "one byte more: too large");
                assert(ftruncate(fd, 2) == 0);
                expect(software_check_package(fd, &m, &e3) == -EPERM && strstr(e3, "2 bytes"), "one byte less: the size");
                close(fd);
        }

        printf("%s\n", failures ? "FAILED" : "all passed");
        return failures ? 1 : 0;
}
