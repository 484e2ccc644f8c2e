/* SPDX-License-Identifier: Apache-2.0 */
/* callhome-audit setup-keys: the first sealing key and the checkpoint signing key. */
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit-cli.h"
#include "audit-files.h"
#include "confine.h"
#include "log.h"
#include "macro.h"

static int write_new_file(int dir_fd, const char *name, const void *data, size_t len, mode_t mode) {
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return negative_errno();
        n = write(fd, data, len);
        if (n != (ssize_t) len)
                return n < 0 ? negative_errno() : -EIO;
        if (fsync(fd) < 0)
                return negative_errno();
        return 0;
}

int cmd_setup_keys(void) {
        _cleanup_close_ int dir_fd = -EBADF;
        _cleanup_(audit_seal_key_freep) AuditSealKey *key = NULL;
        uint8_t k0[AUDIT_KEY_SIZE], priv[32], pub[32], rnd[8];
        char hex[2 * AUDIT_KEY_SIZE + 1], vkey[CHECKPOINT_NOTE_MAX], origin[CHECKPOINT_NAME_MAX + 1];
        uid_t uid = (uid_t) -1;
        gid_t gid = (gid_t) -1;
        bool new_ckey = false;
        int r;

        if (mkdir(arg_dir, 0750) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Cannot create %s: %m", arg_dir), EXIT_USAGE;
        r = open_dir(&dir_fd);
        if (r < 0)
                return -r;
        if (faccessat(dir_fd, AUDIT_KEY_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return log_error("%s/%s exists: the keys are set up already. A new key would leave the existing log "
                                 "unverifiable; move the directory aside first if you mean to start a new log.",
                                 arg_dir, AUDIT_KEY_FILE),
                       EXIT_USAGE;
        if (geteuid() == 0 && confine_lookup_user(confine_profile_user(CONFINE_PROFILE_AUDITD), &uid, &gid) < 0)
                uid = (uid_t) -1;

        if (RAND_priv_bytes(k0, sizeof(k0)) != 1)
                return log_error("Cannot get random bytes."), EXIT_USAGE;
        r = audit_seal_key_new(0, k0, &key);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the key: %m"), EXIT_USAGE;

        if (faccessat(dir_fd, CHECKPOINT_KEY_FILE, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
                if (arg_origin) {
                        if (!checkpoint_name_valid(arg_origin))
                                return log_error("Invalid origin: %s", arg_origin), EXIT_USAGE;
                        (void) snprintf(origin, sizeof(origin), "%s", arg_origin);
                } else {
                        char h[17];
                        if (RAND_bytes(rnd, sizeof(rnd)) != 1)
                                return log_error("Cannot get random bytes."), EXIT_USAGE;
                        audit_hex(rnd, sizeof(rnd), h);
                        (void) snprintf(origin, sizeof(origin), "callhome.audit/%s", h);
                }
                if (RAND_priv_bytes(priv, sizeof(priv)) != 1 || checkpoint_public_key(priv, pub) < 0 ||
                    checkpoint_vkey_format(origin, pub, vkey, sizeof(vkey)) < 0)
                        return log_error("Cannot create the checkpoint key."), EXIT_USAGE;
                r = write_new_file(dir_fd, CHECKPOINT_KEY_FILE, priv, sizeof(priv), 0600);
                OPENSSL_cleanse(priv, sizeof(priv));
                if (r < 0)
                        return log_error_errno(r, "Cannot write %s/%s: %m", arg_dir, CHECKPOINT_KEY_FILE), EXIT_USAGE;
                {
                        size_t l = strlen(vkey);
                        vkey[l] = '\n';
                        vkey[l + 1] = '\0';
                }
                r = write_new_file(dir_fd, CHECKPOINT_PUB_FILE, vkey, strlen(vkey), 0644);
                if (r < 0)
                        return log_error_errno(r, "Cannot write %s/%s: %m", arg_dir, CHECKPOINT_PUB_FILE), EXIT_USAGE;
                new_ckey = true;
        } else {
                _cleanup_free_ char *text = NULL;
                CheckpointVerifier v;
                if (audit_load_vkey(dir_fd, &v, &text) < 0)
                        return log_error("%s/%s is missing or damaged.", arg_dir, CHECKPOINT_PUB_FILE), EXIT_USAGE;
                (void) snprintf(vkey, sizeof(vkey), "%s\n", text);
        }

        {
                _cleanup_close_ int fd = openat(dir_fd, AUDIT_KEY_FILE, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0)
                        return log_error_errno(errno, "Cannot create %s/%s: %m", arg_dir, AUDIT_KEY_FILE), EXIT_USAGE;
                r = audit_key_file_write(fd, key);
                if (r < 0)
                        return log_error_errno(r, "Cannot write %s/%s: %m", arg_dir, AUDIT_KEY_FILE), EXIT_USAGE;
                if (uid != (uid_t) -1 && fchown(fd, uid, gid) < 0)
                        return log_error_errno(errno, "Cannot hand %s to the audit user: %m", AUDIT_KEY_FILE), EXIT_USAGE;
        }
        if (uid != (uid_t) -1) {
                if (fchown(dir_fd, uid, gid) < 0 ||
                    (new_ckey && (fchownat(dir_fd, CHECKPOINT_KEY_FILE, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ||
                                  fchownat(dir_fd, CHECKPOINT_PUB_FILE, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)))
                        return log_error_errno(errno, "Cannot hand the keys to the audit user: %m"), EXIT_USAGE;
        }
        if (fsync(dir_fd) < 0)
                return log_error_errno(errno, "Cannot sync %s: %m", arg_dir), EXIT_USAGE;

        audit_hex(k0, sizeof(k0), hex);
        OPENSSL_cleanse(k0, sizeof(k0));
        printf("The sealing key is set up in %s.\n\n"
               "Verification key (shown only this once; keep it somewhere other than this device,\n"
               "and give it to 'callhome-audit verify --key=...'):\n\n    %s\n\n"
               "Checkpoint verifier key (public; give it to whoever witnesses checkpoints):\n\n    %s\n",
               arg_dir, hex, vkey);
        OPENSSL_cleanse(hex, sizeof(hex));
        return 0;
}
