/* SPDX-License-Identifier: Apache-2.0 */
/* Test driver: verifies and installs a package from a repository made by
 * callhome-sign-package, the way policyd does after GetSoftware — the
 * repository's files stand for what was downloaded (the signer certificate is
 * converted to DER, as the wire carries it; the package is copied into the
 * staging directory).
 *
 *   software-install --anchor CA.pem --dir REPO --package-id ID --model M
 *                    --staging DIR --drop DIR --state DIR [--now SECONDS] [--max-size N]
 *
 * Exit 0 installed (prints the file name in the drop dir), 1 refused (the
 * reason on stderr), 2 usage. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "fileio.h"
#include "parse-util.h"
#include "retry.h"
#include "software.h"


static _noreturn_ void usage(const char *why) {
        fprintf(stderr, "software-install: %s\n", why);
        exit(2);
}

static void load(int dir, const char *id, const char *ext, size_t max, char **ret, size_t *ret_len) {
        _cleanup_free_ char *name = NULL;
        int r;

        if (asprintf(&name, "%s%s", id, ext) < 0)
                exit(2);
        r = read_small_file_at(dir, name, max, ret, ret_len);
        if (r == -EFBIG) {      /* larger than the wire allows: max + 1 bytes stand for it */
                *ret = calloc(1, max + 1);
                *ret_len = max + 1;
                if (!*ret)
                        exit(2);
                return;
        }
        if (r < 0) {
                fprintf(stderr, "software-install: %s: %s\n", name, strerror(-r));
                exit(2);
        }
}

static int open_dir(const char *path) {
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                fprintf(stderr, "software-install: %s: %m\n", path);
                exit(2);
        }
        return fd;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "anchor", required_argument, NULL, 'a' }, { "dir", required_argument, NULL, 'd' },
                { "package-id", required_argument, NULL, 'p' }, { "model", required_argument, NULL, 'm' },
                { "staging", required_argument, NULL, 's' }, { "drop", required_argument, NULL, 'D' },
                { "state", required_argument, NULL, 'S' }, { "now", required_argument, NULL, 'n' },
                { "max-size", required_argument, NULL, 'x' }, {}
        };
        const char *anchor_path = NULL, *repo = NULL, *staging = NULL, *drop = NULL, *state = NULL;
        _cleanup_free_ char *manifest = NULL, *sig = NULL, *pem = NULL, *pkg_name = NULL, *installed = NULL,
                            *error = NULL;
        _cleanup_(X509_freep) X509 *anchor = NULL, *signer = NULL;
        _cleanup_free_ unsigned char *der = NULL;
        _cleanup_close_ int repo_fd = -EBADF, staging_fd = -EBADF, drop_fd = -EBADF, state_fd = -EBADF,
                            src = -EBADF, dst = -EBADF;
        SoftwareCheck c = { .max_size = 1ULL << 30, .now_usec = (uint64_t) time(NULL) * USEC_PER_SEC };
        size_t manifest_len, sig_len, pem_len;
        uint64_t u;
        BIO *bio;
        int opt, der_len, r;

        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (opt) {
                case 'a': anchor_path = optarg; break;
                case 'd': repo = optarg; break;
                case 'p': c.package = optarg; break;
                case 'm': c.model = optarg; break;
                case 's': staging = optarg; break;
                case 'D': drop = optarg; break;
                case 'S': state = optarg; break;
                case 'n':
                        if (safe_atou64(optarg, &u) < 0)
                                usage("bad --now");
                        c.now_usec = u * USEC_PER_SEC;
                        break;
                case 'x':
                        if (safe_atou64(optarg, &c.max_size) < 0)
                                usage("bad --max-size");
                        break;
                default: usage("unknown option");
                }
        if (!anchor_path || !repo || !c.package || !c.model || !staging || !drop || !state || optind != argc)
                usage("needs --anchor --dir --package-id --model --staging --drop --state");

        if (software_anchor_load(anchor_path, &anchor, &error) < 0)
                usage(error);
        repo_fd = open_dir(repo);
        staging_fd = open_dir(staging);
        drop_fd = open_dir(drop);
        state_fd = open_dir(state);
        load(repo_fd, c.package, ".manifest", MANIFEST_MAX, &manifest, &manifest_len);
        load(repo_fd, c.package, ".manifest.sig", MANIFEST_SIGNATURE_MAX, &sig, &sig_len);
        load(repo_fd, c.package, ".signer.pem", 65536, &pem, &pem_len);
        bio = BIO_new_mem_buf(pem, (int) pem_len);
        signer = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (!signer || (der_len = i2d_X509(signer, &der)) <= 0)
                usage("the signer certificate is not PEM");

        /* The "download": the package into the staging directory. */
        if (asprintf(&pkg_name, "%s.pkg", c.package) < 0)
                return 2;
        src = openat(repo_fd, pkg_name, O_RDONLY | O_CLOEXEC);
        dst = openat(staging_fd, "download", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (src < 0 || dst < 0)
                usage("cannot copy the package into the staging directory");
        for (;;) {
                char buf[65536];
                ssize_t n = read(src, buf, sizeof(buf));
                if (n < 0 || (n > 0 && write_full(dst, buf, (size_t) n) < 0))
                        usage("cannot copy the package into the staging directory");
                if (n == 0)
                        break;
        }

        SoftwareOffer o = { manifest, manifest_len, sig, sig_len, der, (size_t) der_len };
        c.anchor = anchor;
        r = software_install(&o, &c, staging_fd, "download", drop_fd, state_fd, &installed, &error);
        if (r < 0) {
                fprintf(stderr, "software-install: refused: %s\n", error ? error : strerror(-r));
                (void) unlinkat(staging_fd, "download", 0);
                return 1;
        }
        printf("%s\n", installed);
        return 0;
}
