/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Signed software (ipc/soap/SOFTWARE-MANIFEST.md): the strict manifest parser,
 * the signature and signer checks against the pinned code-signing anchor, the
 * downloaded bytes against the manifest, the rollback floor and the install
 * into the drop directory by atomic rename. Each refusal says what was wrong. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/x509.h>

#include "macro.h"

#define MANIFEST_MAX 1024U
#define MANIFEST_SIGNATURE_MAX 72U      /* DER ECDSA P-256 */
#define SIGNER_CERT_MAX 8192U
#define SOFTWARE_FLOOR_PREFIX "software-floor-"   /* + package id, in the state dir */

typedef struct Manifest {
        char package[65];
        char version[28];
        uint64_t size;
        char sha256[65];
        char model[65];
        char expires[21];
        uint64_t expires_sec;           /* seconds since the epoch */
} Manifest;

/* Parses exactly the format of SOFTWARE-MANIFEST.md. -EBADMSG with
 * *ret_error (if given) saying which line is wrong; -ENOMEM. */
int manifest_parse(const void *buf, size_t len, Manifest *ret, char **ret_error);

/* A version as the manifest allows it. */
bool version_valid(const char *v);
/* <0, 0, >0 as a is older, the same, newer than b (both valid): tuples of
 * numbers, a prefix is older ("1.2" < "1.2.0" < "1.10"). */
int version_compare(const char *a, const char *b);

/* What GetSoftware delivered at offset 0. */
typedef struct SoftwareOffer {
        const void *manifest;
        size_t manifest_len;
        const void *signature;
        size_t signature_len;
        const void *signer_der;         /* SignerCertificate, DER */
        size_t signer_der_len;
} SoftwareOffer;

/* What the device holds it against. */
typedef struct SoftwareCheck {
        X509 *anchor;                   /* the pinned code-signing anchor (CA or the signer itself) */
        const char *package;            /* the PackageId that was offered */
        const char *model;              /* this device's model */
        const char *floor;              /* the installed version, NULL for none */
        uint64_t max_size;              /* the device's download limit, bytes */
        uint64_t now_usec;              /* wall clock; before the build date is "not set" */
} SoftwareCheck;

DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);

/* Loads the pinned anchor (PEM, one certificate). -errno, *ret_error says why. */
int software_anchor_load(const char *path, X509 **ret, char **ret_error);

/* Steps 1 to 4 of the verification order (clock set, signer, signature,
 * parse, package/model/expiry/version/size). 0 and *ret, or -EPERM (refused),
 * -ETIME (clock not set) or -ENOMEM, with *ret_error saying why. */
int software_verify(const SoftwareOffer *o, const SoftwareCheck *c, Manifest *ret, char **ret_error);

/* Step 5: reads fd from its start to its end, never more than m->size + 1
 * bytes, and compares the byte count and the SHA-256 with m. -EPERM with
 * *ret_error on a mismatch, -errno on an I/O error. */
int software_check_package(int fd, const Manifest *m, char **ret_error);

/* The installed version of `package` (the floor) from state_fd: 0 and *ret
 * (NULL when none was ever installed), -EBADMSG for a damaged floor file
 * (install nothing), -errno. */
int software_floor_read(int state_fd, const char *package, char **ret);
/* Raises the floor to version, atomically and durably. */
int software_floor_raise(int state_fd, const char *package, const char *version);

/* The whole of it: reads the floor, verifies the offer, checks the package
 * downloaded to staging_fd/staged_name, moves it to drop_fd as
 * "PACKAGE-VERSION.pkg" by rename (file and both directories synced) and only
 * then raises the floor. Staging and drop directory must be on one file
 * system. On success *ret_installed (if given) is the file name in drop_fd. */
int software_install(const SoftwareOffer *o, const SoftwareCheck *c, int staging_fd, const char *staged_name,
                     int drop_fd, int state_fd, char **ret_installed, char **ret_error);
