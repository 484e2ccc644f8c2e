/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <sys/types.h>

/* The confinement every callhome daemon applies to itself, in this order
 * (systemd, OpenSSH and OpenBSD ntpd agree on it): open what you need first,
 * then confine_apply(), which
 *   1. drops to the service user with libcap-ng when started as root (no
 *      capabilities, no supplementary groups, bounding set cleared), or, when
 *      already unprivileged (User= in the unit), verifies nothing is held;
 *   2. sets tight resource limits;
 *   3. sets PR_SET_NO_NEW_PRIVS;
 *   4. with Landlock, allows changes to the file system only beneath its state
 *      directory;
 *   5. loads the process kind's seccomp allowlist, architecture checked first.
 * The same steps run with or without systemd, so the confinement is the same. */

typedef enum ConfineProfile {
        CONFINE_PROFILE_COLLECTOR,
        CONFINE_PROFILE_NET_WORKER,
        CONFINE_PROFILE_AUDITD,
        CONFINE_PROFILE_POLICYD,
        _CONFINE_PROFILE_MAX,
        _CONFINE_PROFILE_INVALID = -EINVAL,
} ConfineProfile;

/* What a syscall outside the allowlist does. KILL in production; TRAP (SIGSYS
 * with a report of the syscall) and LOG (allowed, logged by the kernel) are
 * for working out a profile, and exist only in a build configured with
 * -Dseccomp_debug=true: chosen there with CALLHOME_SECCOMP=kill|trap|log. */
typedef enum SeccompMode {
        SECCOMP_MODE_KILL,
        SECCOMP_MODE_TRAP,
        SECCOMP_MODE_LOG,
        _SECCOMP_MODE_MAX,
        _SECCOMP_MODE_INVALID = -EINVAL,
} SeccompMode;

const char *confine_profile_to_string(ConfineProfile p);
ConfineProfile confine_profile_from_string(const char *s);
const char *seccomp_mode_to_string(SeccompMode m);
SeccompMode seccomp_mode_from_string(const char *s);
/* CALLHOME_SECCOMP from the environment (secure_getenv) in a seccomp debug
 * build; KILL when unset, unknown, or in any other build, whatever it says. */
SeccompMode seccomp_mode_from_env(void);

#ifdef CALLHOME_SECCOMP_DEBUG
#define BUILT_WITH_SECCOMP_DEBUG 1
#else
#define BUILT_WITH_SECCOMP_DEBUG 0
#endif

/* Fixed service user of each profile: "callhome-collector", "callhome-net", … */
const char *confine_profile_user(ConfineProfile p);

/* Step 1. When root: become `user` (its primary group, no supplementary groups,
 * every capability set and the bounding set empty). When not root: fail with
 * -EPERM if any capability is still effective, permitted, inheritable or ambient. */
int confine_drop_privileges(const char *user);
/* Fails with -EPERM unless the process holds no capabilities, cannot regain
 * root, has no gid 0 and no supplementary group but its own primary group. */
int confine_verify_unprivileged(void);

/* Step 2: core dumps off, open files and file size bounded, no locked memory. */
int confine_set_rlimits(ConfineProfile p);

/* Step 3. */
int confine_no_new_privs(void);

/* Step 4: the file system, with Landlock where the kernel has it: nothing may be
 * created, written, removed, renamed or executed anywhere but beneath
 * writable_dir (NULL: nowhere). Returns 1 when applied, 0 when the kernel
 * offers no Landlock (permissions and the unit then bound writes alone), and
 * -EPERM when a seccomp filter above us (a unit's SystemCallFilter=) blocks
 * it. Needs no_new_privs. */
int confine_landlock(const char *writable_dir);
/* The same beneath each of a NULL-terminated list of directories (NULL: nowhere). */
int confine_landlock_dirs(const char *const *writable_dirs);
/* The kernel's Landlock ABI version; 0 when the kernel has none (ENOSYS) or
 * it is off (EOPNOTSUPP); -EPERM when a seccomp filter answers for it. */
int confine_landlock_abi(void);

/* Step 5. Needs no_new_privs (or CAP_SYS_ADMIN). */
int confine_seccomp_load(ConfineProfile p, SeccompMode mode);

/* Steps 1–5. `user` NULL means the profile's own user; `writable_dir` is the
 * state directory (the net-worker gets none whatever is passed). Landlock
 * blocked by a filter above us is a loud warning, not a failure. */
int confine_apply(ConfineProfile p, const char *user, const char *writable_dir, SeccompMode mode);
/* Steps 2–5 alone, for a process that dropped (step 1) earlier: the daemon
 * skeleton drops before it connects to the bus and locks down after. Each
 * failure is logged naming its step; a Landlock blocked by a filter above us
 * (EPERM) is a loud warning, not a failure. */
int confine_lock_down(ConfineProfile p, const char *writable_dir, SeccompMode mode);
/* The same with writes allowed beneath each of a NULL-terminated list of directories. */
int confine_lock_down_dirs(ConfineProfile p, const char *const *writable_dirs, SeccompMode mode);

/* Look up a user and its primary group. -ESRCH when there is no such user. */
int confine_lookup_user(const char *user, uid_t *ret_uid, gid_t *ret_gid);
/* Look up a group by name. -ESRCH when there is none. */
int confine_lookup_group(const char *group, gid_t *ret_gid);
