/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "fileio.h"
#include "macro.h"
#include "payload.h"
#include "retry.h"
#include "software.h"
#include "wallclock.h"

#define MANIFEST_MAGIC "callhome-manifest-v1"

static int refuse(char **ret_error, int err, const char *format, ...) _printf_(3, 4);
static int refuse(char **ret_error, int err, const char *format, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0) {
                        *ret_error = NULL;
                        err = -ENOMEM;
                }
                va_end(ap);
        }
        return err;
}

/* --- the manifest ------------------------------------------------------------ */

#define ALNUM "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

static bool all_of(const char *s, const char *set, size_t min, size_t max) {
        size_t n = strlen(s);
        return n >= min && n <= max && strspn(s, set) == n;
}

bool version_valid(const char *s) {
        size_t parts = 0, digits = 0, n = s ? strlen(s) : 0;

        if (n < 1 || n > 27)
                return false;
        for (size_t i = 0; i <= n; i++) {
                if (i == n || s[i] == '.') {
                        if (digits == 0 || ++parts > 4)
                                return false;
                        digits = 0;
                } else if (s[i] >= '0' && s[i] <= '9') {
                        if (++digits > 6 || (digits == 2 && s[i - 1] == '0'))
                                return false;
                } else
                        return false;
        }
        return true;
}

int version_compare(const char *a, const char *b) {
        for (;;) {
                unsigned long x = strtoul(a, (char **) &a, 10), y = strtoul(b, (char **) &b, 10);

                if (x != y)
                        return x < y ? -1 : 1;
                if (!*a || !*b)
                        return (*a != 0) - (*b != 0);
                a++, b++;       /* both at a '.' */
        }
}

static bool size_valid(const char *s, uint64_t *ret) {
        if (!all_of(s, "0123456789", 1, 16) || (s[0] == '0' && s[1]))
                return false;
        *ret = strtoull(s, NULL, 10);
        return true;
}

static int digits(const char *s, size_t n) {
        int v = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -1;
                v = v * 10 + (s[i] - '0');
        }
        return v;
}

/* YYYY-MM-DDTHH:MM:SSZ, a real date and time (UTC). */
static bool expires_valid(const char *s, uint64_t *ret) {
        size_t n = strlen(s);
        struct tm tm = {}, back;
        time_t t;

        if (n != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z')
                return false;
        tm.tm_year = digits(s, 4) - 1900;
        tm.tm_mon = digits(s + 5, 2) - 1;
        tm.tm_mday = digits(s + 8, 2);
        tm.tm_hour = digits(s + 11, 2);
        tm.tm_min = digits(s + 14, 2);
        tm.tm_sec = digits(s + 17, 2);
        if (tm.tm_year < 1 - 1900 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_hour < 0 ||
            tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 59)
                return false;
        back = tm;
        t = timegm(&tm);
        if (t < 0 || tm.tm_mday != back.tm_mday || tm.tm_mon != back.tm_mon)     /* 31 April, 29 February 2027 */
                return false;
        *ret = (uint64_t) t;
        return true;
}

int manifest_parse(const void *buf, size_t len, Manifest *ret, char **ret_error) {
        static const char *const keys[] = { "package", "version", "size", "sha256", "model", "expires" };
        const char *p = buf, *end = p + len;
        Manifest m = {};
        const char *line_end;
        size_t n;

        if (len > MANIFEST_MAX)
                return refuse(ret_error, -EBADMSG, "manifest larger than %u bytes", MANIFEST_MAX);
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) p[i] > 0x7f || p[i] == '\r' || p[i] == 0)
                        return refuse(ret_error, -EBADMSG, "manifest byte %zu is not printable ASCII (or is a CR)", i);
        if (len == 0 || p[len - 1] != '\n')
                return refuse(ret_error, -EBADMSG, "manifest does not end in LF");

        line_end = memchr(p, '\n', (size_t) (end - p));
        if ((size_t) (line_end - p) != strlen(MANIFEST_MAGIC) || memcmp(p, MANIFEST_MAGIC, strlen(MANIFEST_MAGIC)) != 0)
                return refuse(ret_error, -EBADMSG, "manifest line 1 is not %s", MANIFEST_MAGIC);
        p = line_end + 1;

        for (size_t k = 0; k < ELEMENTSOF(keys); k++) {
                size_t kl = strlen(keys[k]);
                char value[65], *dest;
                const char *v;
                bool ok;

                if (p == end)
                        return refuse(ret_error, -EBADMSG, "manifest line %zu: missing, expected %s=", k + 2, keys[k]);
                line_end = memchr(p, '\n', (size_t) (end - p));
                if ((size_t) (line_end - p) <= kl || strncmp(p, keys[k], kl) != 0 || p[kl] != '=')
                        return refuse(ret_error, -EBADMSG, "manifest line %zu: expected %s=", k + 2, keys[k]);
                v = p + kl + 1;
                n = (size_t) (line_end - v);
                if (n >= sizeof(value))
                        return refuse(ret_error, -EBADMSG, "manifest line %zu: bad value for %s", k + 2, keys[k]);
                memcpy(value, v, n);
                value[n] = 0;
                switch (k) {
                case 0: ok = payload_device_id_valid(value); dest = m.package; break;   /* same syntax */
                case 1: ok = version_valid(value); dest = m.version; break;
                case 2: ok = size_valid(value, &m.size); dest = NULL; break;
                case 3: ok = all_of(value, "0123456789abcdef", 64, 64); dest = m.sha256; break;
                case 4: ok = all_of(value, ALNUM "._+/-", 1, 64); dest = m.model; break;
                default: ok = expires_valid(value, &m.expires_sec); dest = m.expires; break;
                }
                if (ok && dest)
                        memcpy(dest, value, n + 1);     /* each field holds its longest valid value */
                if (!ok)
                        return refuse(ret_error, -EBADMSG, "manifest line %zu: bad value for %s", k + 2, keys[k]);
                p = line_end + 1;
        }
        if (p != end)
                return refuse(ret_error, -EBADMSG, "manifest has more than 7 lines");
        *ret = m;
        return 0;
}

/* --- the signer and the signature -------------------------------------------- */

int software_anchor_load(const char *path, X509 **ret, char **ret_error) {
        _cleanup_fclose_ FILE *f = NULL;
        X509 *x;

        f = fopen(path, "re");
        if (!f)
                return refuse(ret_error, -errno, "cannot open the code-signing anchor %s: %m", path);
        x = PEM_read_X509(f, NULL, NULL, NULL);
        if (!x)
                return refuse(ret_error, -EBADMSG, "%s is not a PEM certificate", path);
        *ret = x;
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(X509_STORE *, X509_STORE_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_STORE_CTX *, X509_STORE_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);

static int check_signer(X509 *cert, X509 *anchor, uint64_t now_sec, char **ret_error) {
        _cleanup_(X509_STORE_freep) X509_STORE *store = NULL;
        _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = NULL;
        EVP_PKEY *key = X509_get0_pubkey(cert);
        char group[32] = "";
        int r;

        if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
            EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) != 1 ||
            !streq(group, "prime256v1"))
                return refuse(ret_error, -EPERM, "signer key is not ECDSA P-256");
        if (!(X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) || !(X509_get_extended_key_usage(cert) & XKU_CODE_SIGN))
                return refuse(ret_error, -EPERM, "signer certificate lacks extendedKeyUsage codeSigning");
        if (!(X509_get_key_usage(cert) & KU_DIGITAL_SIGNATURE))
                return refuse(ret_error, -EPERM, "signer certificate lacks keyUsage digitalSignature");

        store = X509_STORE_new();
        ctx = X509_STORE_CTX_new();
        if (!store || !ctx || X509_STORE_add_cert(store, anchor) != 1 ||
            X509_STORE_CTX_init(ctx, store, cert, NULL) != 1)
                return -ENOMEM;
        /* The anchor is trusted as it is, a CA or the signer itself: no root needed above it. */
        X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
        X509_STORE_CTX_set_time(ctx, 0, (time_t) now_sec);
        r = X509_verify_cert(ctx);
        if (r != 1) {
                int e = X509_STORE_CTX_get_error(ctx);

                if ((e == X509_V_ERR_CERT_NOT_YET_VALID || e == X509_V_ERR_CERT_HAS_EXPIRED) &&
                    X509_STORE_CTX_get_error_depth(ctx) == 0)
                        return refuse(ret_error, -EPERM, "signer certificate is not valid now (%s)",
                                      X509_verify_cert_error_string(e));
                return refuse(ret_error, -EPERM, "signer certificate does not chain to the pinned code-signing anchor: %s",
                              X509_verify_cert_error_string(e));
        }
        return 0;
}

int software_verify(const SoftwareOffer *o, const SoftwareCheck *c, Manifest *ret, char **ret_error) {
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
        const unsigned char *der = o->signer_der;
        _cleanup_free_ char *why = NULL;
        uint64_t now_sec = c->now_usec / USEC_PER_SEC;
        Manifest m;
        int r;

        r = wallclock_check(c->now_usec, ret_error);
        if (r < 0)
                return r;

        /* 1. the signer */
        if (o->signer_der_len == 0 || o->signer_der_len > SIGNER_CERT_MAX ||
            !(cert = d2i_X509(NULL, &der, (long) o->signer_der_len)) || der != (const unsigned char *) o->signer_der +
                                                                                 o->signer_der_len)
                return refuse(ret_error, -EPERM, "signer certificate is not one DER certificate");
        r = check_signer(cert, c->anchor, now_sec, ret_error);
        if (r < 0)
                return r;

        /* 2. the signature over the exact manifest bytes */
        if (o->manifest_len > MANIFEST_MAX)
                return refuse(ret_error, -EPERM, "manifest larger than %u bytes", MANIFEST_MAX);
        if (o->signature_len == 0 || o->signature_len > MANIFEST_SIGNATURE_MAX)
                return refuse(ret_error, -EPERM, "manifest signature verification failed: %zu bytes is no P-256 signature",
                              o->signature_len);
        md = EVP_MD_CTX_new();
        if (!md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(cert)) != 1)
                return -ENOMEM;
        if (EVP_DigestVerify(md, o->signature, o->signature_len, o->manifest, o->manifest_len) != 1)
                return refuse(ret_error, -EPERM, "manifest signature verification failed");

        /* 3. strict parse */
        r = manifest_parse(o->manifest, o->manifest_len, &m, &why);
        if (r < 0)
                return r == -ENOMEM ? r : refuse(ret_error, -EPERM, "%s", strna(why));

        /* 4. what it says against this device */
        if (!streq(m.package, c->package))
                return refuse(ret_error, -EPERM, "manifest is for package %s, not the offered %s", m.package, c->package);
        if (!streq(m.model, c->model))
                return refuse(ret_error, -EPERM, "manifest is for model %s, this device is %s", m.model, c->model);
        if (m.expires_sec < now_sec)
                return refuse(ret_error, -EPERM, "manifest expired at %s", m.expires);
        if (c->floor && version_compare(m.version, c->floor) <= 0)
                return refuse(ret_error, -EPERM, "version %s is not newer than the installed %s (no rollback)",
                              m.version, c->floor);
        if (m.size > c->max_size)
                return refuse(ret_error, -EPERM, "package of %" PRIu64 " bytes exceeds the download limit of %" PRIu64,
                              m.size, c->max_size);
        *ret = m;
        return 0;
}

/* --- the downloaded bytes ---------------------------------------------------- */

int software_check_package(int fd, const Manifest *m, char **ret_error) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
        unsigned char buf[65536], digest[32];
        char hex[65];
        uint64_t total = 0;
        ssize_t n;

        md = EVP_MD_CTX_new();
        if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
                return -ENOMEM;
        for (;;) {
                /* Never read more than one byte past what the manifest allows. */
                size_t want = (size_t) MIN((uint64_t) sizeof(buf), m->size + 1 - total);

                n = pread(fd, buf, want, (off_t) total);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return refuse(ret_error, -errno, "cannot read the package: %m");
                }
                if (n == 0)
                        break;
                total += (uint64_t) n;
                if (total > m->size)
                        return refuse(ret_error, -EPERM, "package is larger than the manifest's %" PRIu64 " bytes",
                                      m->size);
                if (EVP_DigestUpdate(md, buf, (size_t) n) != 1)
                        return -ENOMEM;
        }
        if (total != m->size)
                return refuse(ret_error, -EPERM, "package has %" PRIu64 " bytes, the manifest says %" PRIu64,
                              total, m->size);
        if (EVP_DigestFinal_ex(md, digest, NULL) != 1)
                return -ENOMEM;
        for (size_t i = 0; i < sizeof(digest); i++)
                snprintf(hex + 2 * i, 3, "%02x", digest[i]);
        if (!streq(hex, m->sha256))
                return refuse(ret_error, -EPERM, "package SHA-256 %s differs from the manifest's %s", hex, m->sha256);
        return 0;
}

/* --- the floor and the install ----------------------------------------------- */

static int floor_name(const char *package, char **ret) {
        if (!payload_device_id_valid(package))
                return -EINVAL;
        return asprintf(ret, SOFTWARE_FLOOR_PREFIX "%s", package) < 0 ? -ENOMEM : 0;
}

int software_floor_read(int state_fd, const char *package, char **ret) {
        _cleanup_free_ char *name = NULL, *buf = NULL;
        size_t len;
        int r;

        r = floor_name(package, &name);
        if (r < 0)
                return r;
        r = read_small_file_at(state_fd, name, 64, &buf, &len);
        if (r == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        if (r < 0)
                return r;
        if (len < 2 || buf[len - 1] != '\n')
                return -EBADMSG;
        buf[len - 1] = 0;
        if (!version_valid(buf))
                return -EBADMSG;
        *ret = TAKE_PTR(buf);
        return 0;
}

int software_floor_raise(int state_fd, const char *package, const char *version) {
        _cleanup_free_ char *name = NULL, *text = NULL;
        int r, n;

        r = floor_name(package, &name);
        if (r < 0)
                return r;
        if (!version_valid(version))
                return -EINVAL;
        n = asprintf(&text, "%s\n", version);
        if (n < 0)
                return -ENOMEM;
        return write_file_atomic_at(state_fd, name, text, (size_t) n, 0600);
}

int software_install(const SoftwareOffer *o, const SoftwareCheck *c, int staging_fd, const char *staged_name,
                     int drop_fd, int state_fd, char **ret_installed, char **ret_error) {
        _cleanup_free_ char *floor = NULL, *dest = NULL;
        _cleanup_close_ int fd = -EBADF;
        SoftwareCheck check = *c;
        struct stat a, b;
        Manifest m;
        int r;

        r = software_floor_read(state_fd, c->package, &floor);
        if (r < 0)
                return refuse(ret_error, r, "cannot read the installed version of %s: %s", c->package,
                              r == -EBADMSG ? "the floor file is damaged" : strerror(-r));
        check.floor = floor;
        r = software_verify(o, &check, &m, ret_error);
        if (r < 0)
                return r;

        fd = openat(staging_fd, staged_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return refuse(ret_error, -errno, "cannot open the downloaded package %s: %m", staged_name);
        if (fstat(fd, &a) < 0)
                return refuse(ret_error, -errno, "cannot stat the downloaded package: %m");
        if (!S_ISREG(a.st_mode))
                return refuse(ret_error, -EPERM, "the downloaded package is not a regular file");
        r = software_check_package(fd, &m, ret_error);
        if (r < 0)
                return r;

        if (asprintf(&dest, "%s-%s.pkg", m.package, m.version) < 0)
                return -ENOMEM;
        if (fsync(fd) < 0)
                return refuse(ret_error, -errno, "cannot sync the package: %m");
        /* What is renamed must be the file that was checked. */
        if (fstatat(staging_fd, staged_name, &b, AT_SYMLINK_NOFOLLOW) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
                return refuse(ret_error, -EPERM, "the downloaded package was replaced while being checked");
        if (renameat(staging_fd, staged_name, drop_fd, dest) < 0)
                return refuse(ret_error, -errno, "cannot move the package into the drop directory: %m");
        if (fsync(drop_fd) < 0 || fsync(staging_fd) < 0)
                return refuse(ret_error, -errno, "cannot sync the drop directory: %m");
        r = software_floor_raise(state_fd, m.package, m.version);
        if (r < 0)
                return refuse(ret_error, r, "installed %s, but cannot raise the version floor: %s", dest, strerror(-r));
        if (ret_installed)
                *ret_installed = TAKE_PTR(dest);
        return 0;
}
