/* SPDX-License-Identifier: Apache-2.0 */
/* Seccomp allowlists, one per process kind. Default: kill the process. A few
 * predictable probes (a socket of a family the process must not use, a file
 * open in the net-worker, set*id) fail with an errno instead, so libraries
 * that try them fall back cleanly; anything else outside the list kills, so
 * a test or an operator sees the process die with SIGSYS. */
#include <assert.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>

#include "confine.h"
#include "macro.h"
#include "seccomp-profile.h"

/* What every sd-event + sd-bus daemon needs once running: the names all three
 * architectures have. What glibc calls instead, or as well, on one of them is
 * in that architecture's lists further down. */
static const char *const syscalls_base[] = {
        "brk", "clock_getres", "clock_gettime", "clock_nanosleep", "close", "dup", "dup3",
        "epoll_create1", "epoll_ctl", "epoll_pwait", "eventfd2", "exit", "exit_group",
        "fcntl", "fstat", "fstatfs", "futex", "getegid", "geteuid", "getgid", "getgroups", "getpid",
        "getppid", "getrandom", "getresgid", "getresuid", "gettid", "gettimeofday",
        "getuid", "lseek", "madvise", "membarrier", "mremap", "munmap", "nanosleep",
        "pipe2", "ppoll", "pread64", "prlimit64", "read", "readv", "restart_syscall",
        "rseq", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "sched_getaffinity",
        "sched_yield", "set_robust_list", "set_tid_address", "sigaltstack", "signalfd4", "statx",
        "sysinfo", "tgkill", "timerfd_create", "timerfd_gettime", "timerfd_settime", "uname",
        "write", "writev", "pwrite64",
        /* on the already connected bus socket */
        "getpeername", "getsockname", "getsockopt", "recvfrom", "recvmsg", "sendmsg", "sendto",
        "setsockopt", "shutdown",
};

/* Reading a tree and replacing small files atomically in a state directory
 * (write a new file, sync, rename, sync the directory): collector, auditd,
 * policyd. What each opens is bounded further by its user's file permissions
 * and its unit. No links, directories, ownership or mode changes once running. */
static const char *const syscalls_files[] = {
        "faccessat", "faccessat2", "fdatasync", "fsync", "getdents64", "openat", "renameat",
        "renameat2", "unlinkat",
};

/* auditd also cuts a partly written record when an append fails. */
static const char *const syscalls_log[] = {
        "ftruncate",
};

/* The net-worker's TLS over TCP. No bind, listen or accept: it never listens (S6). */
static const char *const syscalls_inet[] = {
        "connect", "recvmmsg", "sendmmsg",
};

/* Calls that only set*id()/capset() would make: after the drop they are
 * probes by definition, answered EPERM, never allowed. */
static const char *const syscalls_eperm[] = {
        "capset", "setfsgid", "setfsuid", "setgid", "setgroups", "setregid", "setresgid",
        "setresuid", "setreuid", "setuid",
};

/* LeakSanitizer stops the world with a ptrace-ing clone and lists /proc/self/task
 * at exit; sanitizer builds (tests only, never shipped) allow that much more. */
static const char *const syscalls_sanitizer[] = {
        "clone", "ptrace", "wait4", "prctl", "openat", "getdents64", "readlinkat", "mprotect",
};

/* Per architecture: the calls glibc makes there beyond the common names above
 * (strace of the daemons' tests on x86-64; qemu-arm -strace of the unit tests
 * on armhf, where glibc tries the time64 calls first and uses the 32-bit id
 * and large-file calls), and the name of mmap(). A name that is no syscall of
 * its architecture fails the build of the filter, never skipped. */
typedef struct SeccompArch {
        uint32_t arch;
        const char *mmap;
        const char *open; /* the legacy open(2), probed by libraries; NULL where there is none */
        const char *const *base, *const *log, *const *inet, *const *eperm, *const *sanitizer;
        size_t n_base, n_log, n_inet, n_eperm, n_sanitizer;
} SeccompArch;

#define LIST(field, l) .field = (l), .n_##field = ELEMENTSOF(l)

static const char *const x86_64_base[] = { "epoll_wait", "getrlimit", "newfstatat", "poll", "time" };
static const char *const x86_64_sanitizer[] = { "getdents", "open" };
/* arm64 has only the generic table: epoll_pwait, ppoll and clock_gettime stand in for the rest. */
static const char *const aarch64_base[] = { "getrlimit", "newfstatat" };
static const char *const arm_base[] = {
        "_llseek", "clock_getres_time64", "clock_gettime64", "clock_nanosleep_time64", "epoll_wait", "fcntl64",
        "fstat64", "fstatat64", "fstatfs64", "futex_time64", "getegid32", "geteuid32", "getgid32", "getgroups32",
        "getresgid32", "getresuid32", "getuid32", "poll", "ppoll_time64", "rt_sigtimedwait_time64", "sigreturn",
        "timerfd_gettime64", "timerfd_settime64", "ugetrlimit",
};
static const char *const arm_log[] = { "ftruncate64" };
static const char *const arm_inet[] = { "recvmmsg_time64" };
static const char *const arm_eperm[] = {
        "setfsgid32", "setfsuid32", "setgid32", "setgroups32", "setregid32", "setresgid32", "setresuid32",
        "setreuid32", "setuid32",
};
static const char *const no_syscalls[] = {};

static const SeccompArch seccomp_arches[] = {
        { .arch = SCMP_ARCH_X86_64, .mmap = "mmap", .open = "open", LIST(base, x86_64_base), LIST(log, no_syscalls),
          LIST(inet, no_syscalls), LIST(eperm, no_syscalls), LIST(sanitizer, x86_64_sanitizer) },
        { .arch = SCMP_ARCH_AARCH64, .mmap = "mmap", .open = NULL, LIST(base, aarch64_base), LIST(log, no_syscalls),
          LIST(inet, no_syscalls), LIST(eperm, no_syscalls), LIST(sanitizer, no_syscalls) },
        { .arch = SCMP_ARCH_ARM, .mmap = "mmap2", .open = "open", LIST(base, arm_base), LIST(log, arm_log),
          LIST(inet, arm_inet), LIST(eperm, arm_eperm), LIST(sanitizer, no_syscalls) },
};

/* The number of `name` on the host, which is what seccomp_rule_add() takes:
 * libseccomp translates it by name to every architecture of the filter. */
static int rule_add_name(scmp_filter_ctx ctx, uint32_t arch, uint32_t action, const char *name, unsigned n_args,
                         const struct scmp_arg_cmp *args, const char **ret_unresolved) {
        int r;

        if (seccomp_syscall_resolve_name_arch(arch, name) < 0) {
                if (ret_unresolved)
                        *ret_unresolved = name;
                return -ENOENT;
        }
        r = seccomp_rule_add_array(ctx, action, seccomp_syscall_resolve_name(name), n_args, args);
        return r == -EEXIST ? 0 : r;
}

int seccomp_profile_add_names(scmp_filter_ctx ctx, uint32_t arch, uint32_t action, const char *const *names,
                              size_t n, const char **ret_unresolved) {
        assert(ctx);
        assert(names || n == 0);

        for (size_t i = 0; i < n; i++) {
                int r = rule_add_name(ctx, arch, action, names[i], 0, NULL, ret_unresolved);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int add_socket_rules(scmp_filter_ctx ctx, ConfineProfile p) {
        int r;

        if (p == CONFINE_PROFILE_NET_WORKER) {
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET));
                if (r < 0)
                        return r;
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET6));
                if (r < 0)
                        return r;
                /* libcurl wakes its transfer loop through a socket pair: a local pipe, no address. */
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
                if (r < 0)
                        return r;
                /* The bus and the notify socket were opened before the lock-down and are the only
                 * Unix sockets it has: any other family, AF_UNIX included, is a probe (EACCES). */
                for (int f = 0; f < AF_MAX; f++) {
                        if (f == AF_INET || f == AF_INET6)
                                continue;
                        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, (unsigned) f));
                        if (r < 0)
                                return r;
                }
                return 0;
        }

        /* Everyone else opened the bus and the notify socket before the lock-down
         * (common/daemon.c) and makes no other: socket(AF_UNIX) and connect() kill. */
        for (int f = 0; f < AF_MAX; f++) {
                if (f == AF_UNIX)
                        continue;
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, (unsigned) f));
                if (r < 0)
                        return r;
        }
        return 0;
}

static int add_memory_rules(scmp_filter_ctx ctx, const SeccompArch *a, const char **ret_unresolved) {
        const struct scmp_arg_cmp no_exec = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
        int r;

        /* W^X: no new executable mappings once confined (nothing is loaded after start). */
        r = rule_add_name(ctx, a->arch, SCMP_ACT_ALLOW, a->mmap, 1, &no_exec, ret_unresolved);
        if (r < 0)
                return r;
        r = rule_add_name(ctx, a->arch, SCMP_ACT_ALLOW, "mprotect", 1, &no_exec, ret_unresolved);
        if (r < 0)
                return r;
        /* Threads (libcurl's resolver, OpenSSL) but never a new process. */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
        if (r < 0)
                return r;
        /* glibc falls back from clone3 to clone, where the flags can be checked. */
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
        if (r < 0)
                return r;
        return 0;
}

static int add_misc_rules(scmp_filter_ctx ctx) {
        static const unsigned long ioctls[] = { TCGETS, FIONREAD, FIONBIO, FIOCLEX };
        static const int prctls[] = { PR_GET_NAME, PR_SET_NAME, PR_GET_NO_NEW_PRIVS, PR_CAPBSET_READ,
                                      PR_GET_DUMPABLE, PR_GET_SECCOMP };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(ioctls); i++) {
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, ioctls[i]));
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < ELEMENTSOF(prctls); i++) {
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                                     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t) prctls[i]));
                if (r < 0)
                        return r;
        }
        return 0;
}

static const SeccompArch *seccomp_arch_find(uint32_t arch) {
        for (size_t i = 0; i < ELEMENTSOF(seccomp_arches); i++)
                if (seccomp_arches[i].arch == arch)
                        return &seccomp_arches[i];
        return NULL;
}

/* A list every architecture shares, then the architecture's own additions to it. */
static int add_shared_and_own(scmp_filter_ctx ctx, uint32_t arch, uint32_t action, const char *const *shared,
                              size_t n_shared, const char *const *own, size_t n_own, const char **ret_unresolved) {
        int r = seccomp_profile_add_names(ctx, arch, action, shared, n_shared, ret_unresolved);
        if (r < 0)
                return r;
        return seccomp_profile_add_names(ctx, arch, action, own, n_own, ret_unresolved);
}

static int add_lists(scmp_filter_ctx ctx, ConfineProfile p, const SeccompArch *a, const char **ret_unresolved) {
        uint32_t arch = a->arch;
        int r;

        r = add_shared_and_own(ctx, arch, SCMP_ACT_ALLOW, syscalls_base, ELEMENTSOF(syscalls_base), a->base, a->n_base,
                               ret_unresolved);
        if (r < 0)
                return r;
        r = add_shared_and_own(ctx, arch, SCMP_ACT_ERRNO(EPERM), syscalls_eperm, ELEMENTSOF(syscalls_eperm), a->eperm,
                               a->n_eperm, ret_unresolved);
        if (r < 0)
                return r;
        if (BUILT_WITH_SANITIZERS) {
                r = add_shared_and_own(ctx, arch, SCMP_ACT_ALLOW, syscalls_sanitizer, ELEMENTSOF(syscalls_sanitizer),
                                       a->sanitizer, a->n_sanitizer, ret_unresolved);
                if (r < 0)
                        return r;
                r = seccomp_profile_add_names(ctx, arch, SCMP_ACT_ALLOW, &a->mmap, 1, ret_unresolved);
                if (r < 0)
                        return r;
        }

        if (p == CONFINE_PROFILE_NET_WORKER) {
                r = add_shared_and_own(ctx, arch, SCMP_ACT_ALLOW, syscalls_inet, ELEMENTSOF(syscalls_inet), a->inet,
                                       a->n_inet, ret_unresolved);
                if (r < 0)
                        return r;
                /* Keys, certificates and anchors were loaded before lock-down: no file opens. */
                if (!BUILT_WITH_SANITIZERS) {
                        r = rule_add_name(ctx, arch, SCMP_ACT_ERRNO(EACCES), "openat", 0, NULL, ret_unresolved);
                        if (r < 0)
                                return r;
                        if (a->open) {
                                r = rule_add_name(ctx, arch, SCMP_ACT_ERRNO(EACCES), a->open, 0, NULL, ret_unresolved);
                                if (r < 0)
                                        return r;
                        }
                }
                return 0;
        }

        r = seccomp_profile_add_names(ctx, arch, SCMP_ACT_ALLOW, syscalls_files, ELEMENTSOF(syscalls_files),
                                      ret_unresolved);
        if (r < 0)
                return r;
        if (p == CONFINE_PROFILE_AUDITD)
                return add_shared_and_own(ctx, arch, SCMP_ACT_ALLOW, syscalls_log, ELEMENTSOF(syscalls_log), a->log,
                                          a->n_log, ret_unresolved);
        return 0;
}

int seccomp_profile_build(ConfineProfile p, SeccompMode mode, uint32_t arch, scmp_filter_ctx *ret_ctx,
                          const char **ret_unresolved) {
        const SeccompArch *a;
        scmp_filter_ctx ctx;
        uint32_t deny;
        int r;

        assert(ret_ctx);

        if (p < 0 || p >= _CONFINE_PROFILE_MAX)
                return -EINVAL;
        switch (mode) {
        case SECCOMP_MODE_KILL:
                deny = SCMP_ACT_KILL_PROCESS;
                break;
        case SECCOMP_MODE_TRAP:
        case SECCOMP_MODE_LOG:
                /* Debug actions exist only in a debug build, never in what is shipped. */
                if (!BUILT_WITH_SECCOMP_DEBUG)
                        return -EOPNOTSUPP;
                deny = mode == SECCOMP_MODE_TRAP ? SCMP_ACT_TRAP : SCMP_ACT_LOG;
                break;
        default:
                return -EINVAL;
        }
        if (arch == SCMP_ARCH_NATIVE)
                arch = seccomp_arch_native();
        a = seccomp_arch_find(arch);
        if (!a)
                return -EOPNOTSUPP;

        ctx = seccomp_init(deny);
        if (!ctx)
                return -ENOMEM;

        /* A filter for another architecture than the host's: for tests, which check all three. */
        if (arch != seccomp_arch_native()) {
                r = seccomp_arch_add(ctx, arch);
                if (r < 0)
                        goto fail;
                r = seccomp_arch_remove(ctx, SCMP_ARCH_NATIVE);
                if (r < 0)
                        goto fail;
        }
        /* Architecture first: a syscall of a foreign ABI (i386, x32 on x86-64) kills. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r < 0)
                goto fail;
        /* Already set by confine_no_new_privs(); libseccomp must not need CAP_SYS_ADMIN. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
        if (r < 0)
                goto fail;

        r = add_lists(ctx, p, a, ret_unresolved);
        if (r < 0)
                goto fail;
        r = add_memory_rules(ctx, a, ret_unresolved);
        if (r < 0)
                goto fail;
        r = add_misc_rules(ctx);
        if (r < 0)
                goto fail;
        r = add_socket_rules(ctx, p);
        if (r < 0)
                goto fail;

        *ret_ctx = ctx;
        return 0;
fail:
        seccomp_release(ctx);
        return r;
}

int confine_seccomp_load(ConfineProfile p, SeccompMode mode) {
        scmp_filter_ctx ctx;
        int r;

        r = seccomp_profile_build(p, mode, SCMP_ARCH_NATIVE, &ctx, NULL);
        if (r < 0)
                return r;
        r = seccomp_load(ctx);
        seccomp_release(ctx);
        return r;
}
