/* SPDX-License-Identifier: Apache-2.0 */
#include <cap-ng.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "confine.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"

static const char *const mode_names[_SECCOMP_MODE_MAX] = {
        [SECCOMP_MODE_KILL] = "kill",
        [SECCOMP_MODE_TRAP] = "trap",
        [SECCOMP_MODE_LOG] = "log",
};

const char *seccomp_mode_to_string(SeccompMode m) {
        return m >= 0 && m < _SECCOMP_MODE_MAX ? mode_names[m] : NULL;
}

SeccompMode seccomp_mode_from_string(const char *s) {
        for (int i = 0; i < _SECCOMP_MODE_MAX; i++)
                if (streq(s, mode_names[i]))
                        return (SeccompMode) i;
        return _SECCOMP_MODE_INVALID;
}

SeccompMode seccomp_mode_from_env(void) {
        const char *e;
        SeccompMode m;

        /* A shipped daemon is never weakened by its environment (an EnvironmentFile=, say). */
        if (!BUILT_WITH_SECCOMP_DEBUG)
                return SECCOMP_MODE_KILL;
        e = secure_getenv("CALLHOME_SECCOMP");
        if (!e || !*e)
                return SECCOMP_MODE_KILL;
        m = seccomp_mode_from_string(e);
        /* A typo must not silently weaken the sandbox. */
        return m < 0 ? SECCOMP_MODE_KILL : m;
}

static int bounding_set_empty(void) {
        for (unsigned long c = 0; c <= CAP_LAST_CAP; c++) {
                int r = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
                if (r > 0)
                        return 0;
        }
        return 1;
}

int confine_verify_unprivileged(void) {
        uid_t ruid, euid, suid;
        gid_t rgid, egid, sgid;
        gid_t groups[64];
        int n;

        if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
                return negative_errno();
        if (ruid == 0 || euid == 0 || suid == 0)
                return -EPERM;
        if (rgid == 0 || egid == 0 || sgid == 0)
                return -EPERM;
        /* A supplementary group would grant what the service user alone may not;
         * only its own primary group may be listed (systemd's User= lists it). */
        n = getgroups(ELEMENTSOF(groups), groups);
        if (n < 0)
                return errno == EINVAL ? -EPERM : negative_errno(); /* EINVAL: more than we can hold */
        for (int i = 0; i < n; i++)
                if (groups[i] != egid)
                        return -EPERM;

        capng_clear(CAPNG_SELECT_ALL);
        if (capng_get_caps_process() < 0)
                return -EIO;
        if (capng_have_capabilities(CAPNG_SELECT_CAPS) != CAPNG_NONE)
                return -EPERM;
#ifdef CAPNG_SELECT_AMBIENT
        if (capng_have_capabilities(CAPNG_SELECT_AMBIENT) != CAPNG_NONE)
                return -EPERM;
#endif
        return 0;
}

int confine_drop_privileges(const char *user) {
        uid_t uid;
        gid_t gid;
        int r;

        if (geteuid() != 0) {
                /* Already unprivileged (User= in the unit, or a test): check, do not trust. */
                if (capng_get_caps_process() < 0)
                        return -EIO;
                if (capng_have_capabilities(CAPNG_SELECT_CAPS) != CAPNG_NONE) {
                        /* Drop what an unprivileged start still holds (e.g. ambient set). */
                        capng_clear(CAPNG_SELECT_ALL);
                        if (capng_apply(CAPNG_SELECT_ALL) < 0)
                                return -EPERM;
                }
                return confine_verify_unprivileged();
        }

        r = confine_lookup_user(user, &uid, &gid);
        if (r < 0)
                return r;
        if (uid == 0 || gid == 0)
                return -EPERM; /* a service user of root would defeat the point */

        capng_clear(CAPNG_SELECT_ALL);
        r = capng_change_id((int) uid, (int) gid, CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_BOUNDING);
        if (r < 0)
                return -EPERM;

        /* Verify the result rather than trusting a return code. */
        if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid)
                return -EPERM;
        if (getgroups(0, NULL) != 0)
                return -EPERM;
        if (!bounding_set_empty())
                return -EPERM;
        if (setuid(0) == 0 || seteuid(0) == 0)
                return -EPERM;
        return confine_verify_unprivileged();
}

int confine_set_rlimits(ConfineProfile p) {
        /* Open files: sd-bus, sd-event, one TLS connection or a few segment files. */
        static const rlim_t nofile[_CONFINE_PROFILE_MAX] = {
                [CONFINE_PROFILE_COLLECTOR] = 64,
                [CONFINE_PROFILE_NET_WORKER] = 64,
                [CONFINE_PROFILE_AUDITD] = 256,
                [CONFINE_PROFILE_POLICYD] = 128,
        };
        /* Largest file a process may write: state files, segments, downloads. */
        static const rlim_t fsize[_CONFINE_PROFILE_MAX] = {
                [CONFINE_PROFILE_COLLECTOR] = 1ULL << 20,
                [CONFINE_PROFILE_NET_WORKER] = 1ULL << 30,
                [CONFINE_PROFILE_AUDITD] = 1ULL << 30,
                [CONFINE_PROFILE_POLICYD] = 1ULL << 30,
        };
        struct rlimit rl;

        if (p < 0 || p >= _CONFINE_PROFILE_MAX)
                return -EINVAL;

        rl = (struct rlimit) { 0, 0 };
        if (setrlimit(RLIMIT_CORE, &rl) < 0) /* cores would hold keys */
                return negative_errno();
        if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
                return negative_errno();

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return negative_errno();
        rl.rlim_cur = rl.rlim_max = MIN(rl.rlim_max, nofile[p]);
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                return negative_errno();

        if (getrlimit(RLIMIT_FSIZE, &rl) < 0)
                return negative_errno();
        rl.rlim_cur = rl.rlim_max = MIN(rl.rlim_max, fsize[p]);
        if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
                return negative_errno();
        return 0;
}

int confine_no_new_privs(void) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return negative_errno();
        if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
                return -EPERM;
        return 0;
}

/* Rights of later ABIs, for headers older than the kernel. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

int confine_landlock_abi(void) {
        long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

        /* ENOSYS: no Landlock built in; EOPNOTSUPP: disabled at boot. EPERM is
         * not the kernel's answer to this call but a seccomp filter's (a unit's
         * SystemCallFilter= with SystemCallErrorNumber=EPERM): the caller must
         * hear of it, not take it for an old kernel. */
        if (abi < 0)
                return errno == ENOSYS || errno == EOPNOTSUPP ? 0 : -errno;
        return (int) abi;
}

int confine_landlock(const char *writable_dir) {
        return confine_landlock_dirs((const char *const[]) { writable_dir, NULL });
}

int confine_landlock_dirs(const char *const *writable_dirs) {
        _cleanup_close_ int ruleset_fd = -EBADF;
        struct landlock_ruleset_attr attr = {};
        uint64_t handled;
        int abi;

        abi = confine_landlock_abi();
        if (abi <= 0)
                return abi;
        /* Every way to change the file system, and to execute: what reads, the
         * seccomp allowlist and the file permissions already bound. */
        handled = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |
                  LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
                  LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
                  LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
        if (abi >= 2)
                handled |= LANDLOCK_ACCESS_FS_REFER;
        if (abi >= 3)
                handled |= LANDLOCK_ACCESS_FS_TRUNCATE;
        attr.handled_access_fs = handled;
        ruleset_fd = (int) syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
        if (ruleset_fd < 0)
                return log_error_errno(errno, "Landlock: cannot create a ruleset: %m");
        for (size_t i = 0; writable_dirs && writable_dirs[i]; i++) {
                _cleanup_close_ int dir_fd = -EBADF;
                struct landlock_path_beneath_attr beneath = {
                        /* Files and directories beneath it: write, create, remove, rename, truncate; never execute. */
                        .allowed_access = handled & ~(uint64_t) LANDLOCK_ACCESS_FS_EXECUTE,
                };

                dir_fd = open(writable_dirs[i], O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (dir_fd < 0)
                        return log_error_errno(errno, "Landlock: cannot open the writable directory %s: %m",
                                               writable_dirs[i]);
                beneath.parent_fd = dir_fd;
                if (syscall(SYS_landlock_add_rule, ruleset_fd, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0) < 0)
                        return log_error_errno(errno, "Landlock: cannot allow writes beneath %s: %m", writable_dirs[i]);
        }
        if (syscall(SYS_landlock_restrict_self, ruleset_fd, 0) < 0)
                return log_error_errno(errno, "Landlock: cannot restrict this process to writes beneath %s: %m",
                                       writable_dirs && writable_dirs[0] ? writable_dirs[0] : "(nowhere)");
        return 1;
}

int confine_lock_down(ConfineProfile p, const char *writable_dir, SeccompMode mode) {
        return confine_lock_down_dirs(p, (const char *const[]) { writable_dir, NULL }, mode);
}

int confine_lock_down_dirs(ConfineProfile p, const char *const *writable_dirs, SeccompMode mode) {
        const char *writable_dir;
        int r;

        if (p < 0 || p >= _CONFINE_PROFILE_MAX)
                return -EINVAL;
        if (p == CONFINE_PROFILE_NET_WORKER)
                writable_dirs = NULL;
        writable_dir = writable_dirs ? writable_dirs[0] : NULL;
        r = confine_set_rlimits(p);
        if (r < 0)
                return log_error_errno(r, "Resource limits: cannot set them: %m");
        r = confine_no_new_privs();
        if (r < 0)
                return log_error_errno(r, "no_new_privs: cannot set it: %m");
        r = confine_landlock_dirs(writable_dirs);
        if (r == -EPERM)
                log_warning("WARNING: Landlock is blocked by a seccomp filter above this process (the unit's "
                            "SystemCallFilter= must allow landlock_create_ruleset, landlock_add_rule and "
                            "landlock_restrict_self): writes are NOT confined to %s, continuing without it.",
                            writable_dir ?: "nowhere");
        else if (r < 0)
                return r; /* confine_landlock() said which step failed, and on what */
        else if (r == 0)
                log_debug("Landlock: not offered by the kernel; permissions and the unit bound writes.");
        r = confine_seccomp_load(p, mode);
        if (r < 0)
                return log_error_errno(r, "Seccomp: cannot load the %s allowlist: %m", confine_profile_to_string(p));
        return 0;
}

int confine_apply(ConfineProfile p, const char *user, const char *writable_dir, SeccompMode mode) {
        int r;

        if (p < 0 || p >= _CONFINE_PROFILE_MAX)
                return -EINVAL;
        r = confine_drop_privileges(user ?: confine_profile_user(p));
        if (r < 0)
                return r;
        return confine_lock_down(p, writable_dir, mode);
}
