/* SPDX-License-Identifier: Apache-2.0 */
/* Seccomp allowlists, one per process kind. Default: kill the process. A few
 * predictable probes (a socket of a family the process must not use, a file
 * open in the net-worker, set*id) fail with an errno instead, so libraries
 * that try them fall back cleanly; anything else outside the list kills, so
 * a test or an operator sees the process die with SIGSYS. */
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

/* What every sd-event + sd-bus daemon needs once running. */
static const char *const syscalls_base[] = {
        "brk", "clock_getres", "clock_gettime", "clock_nanosleep", "close", "dup", "dup3",
        "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_wait", "eventfd2", "exit", "exit_group",
        "fcntl", "fstat", "fstatfs", "futex", "getegid", "geteuid", "getgid", "getgroups", "getpid",
        "getppid", "getrandom", "getresgid", "getresuid", "getrlimit", "gettid", "gettimeofday",
        "getuid", "lseek", "madvise", "membarrier", "mremap", "munmap", "nanosleep", "newfstatat",
        "pipe2", "poll", "ppoll", "pread64", "prlimit64", "read", "readv", "restart_syscall",
        "rseq", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "sched_getaffinity",
        "sched_yield", "set_robust_list", "set_tid_address", "sigaltstack", "signalfd4", "statx",
        "sysinfo", "tgkill", "time", "timerfd_create", "timerfd_gettime", "timerfd_settime", "uname",
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
        "clone", "ptrace", "wait4", "prctl", "openat", "open", "getdents", "getdents64", "readlinkat", "mprotect", "mmap",
};

static int add_list(scmp_filter_ctx ctx, uint32_t action, const char *const *names, size_t n) {
        for (size_t i = 0; i < n; i++) {
                int nr = seccomp_syscall_resolve_name(names[i]);
                int r;

                if (nr == __NR_SCMP_ERROR)
                        continue; /* not on this architecture */
                r = seccomp_rule_add(ctx, action, nr, 0);
                if (r < 0 && r != -EEXIST)
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
                /* sd_notify() only: a datagram to the service manager. */
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2, SCMP_A0(SCMP_CMP_EQ, AF_UNIX),
                                     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_DGRAM));
                if (r < 0)
                        return r;
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 2, SCMP_A0(SCMP_CMP_EQ, AF_UNIX),
                                     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_STREAM));
                if (r < 0)
                        return r;
                for (int f = 0; f < AF_MAX; f++) {
                        if (IN_SET3(f, AF_INET, AF_INET6, AF_UNIX))
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

static int add_memory_rules(scmp_filter_ctx ctx) {
        int r;

        /* W^X: no new executable mappings once confined (nothing is loaded after start). */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
        if (r < 0)
                return r;
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
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

int confine_seccomp_load(ConfineProfile p, SeccompMode mode) {
        scmp_filter_ctx ctx;
        uint32_t deny;
        int r;

        if (p < 0 || p >= _CONFINE_PROFILE_MAX)
                return -EINVAL;
        switch (mode) {
        case SECCOMP_MODE_KILL:
                deny = SCMP_ACT_KILL_PROCESS;
                break;
        case SECCOMP_MODE_TRAP:
                deny = SCMP_ACT_TRAP;
                break;
        case SECCOMP_MODE_LOG:
                deny = SCMP_ACT_LOG;
                break;
        default:
                return -EINVAL;
        }

        ctx = seccomp_init(deny);
        if (!ctx)
                return -ENOMEM;

        /* Architecture first: a syscall of a foreign ABI (i386, x32 on x86-64) kills. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r < 0)
                goto finish;
        /* Already set by confine_no_new_privs(); libseccomp must not need CAP_SYS_ADMIN. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
        if (r < 0)
                goto finish;

        r = add_list(ctx, SCMP_ACT_ALLOW, syscalls_base, ELEMENTSOF(syscalls_base));
        if (r < 0)
                goto finish;
        r = add_list(ctx, SCMP_ACT_ERRNO(EPERM), syscalls_eperm, ELEMENTSOF(syscalls_eperm));
        if (r < 0)
                goto finish;
        if (BUILT_WITH_SANITIZERS) {
                r = add_list(ctx, SCMP_ACT_ALLOW, syscalls_sanitizer, ELEMENTSOF(syscalls_sanitizer));
                if (r < 0)
                        goto finish;
        }
        r = add_memory_rules(ctx);
        if (r < 0)
                goto finish;
        r = add_misc_rules(ctx);
        if (r < 0)
                goto finish;

        if (p == CONFINE_PROFILE_NET_WORKER) {
                r = add_list(ctx, SCMP_ACT_ALLOW, syscalls_inet, ELEMENTSOF(syscalls_inet));
                if (r < 0)
                        goto finish;
                /* Keys, certificates and anchors were loaded before lock-down: no file opens. */
                if (!BUILT_WITH_SANITIZERS) {
                        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 0);
                        if (r < 0)
                                goto finish;
                }
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(open), 0);
                if (r < 0 && r != -EFAULT)
                        goto finish;
        } else {
                r = add_list(ctx, SCMP_ACT_ALLOW, syscalls_files, ELEMENTSOF(syscalls_files));
                if (r < 0)
                        goto finish;
                if (p == CONFINE_PROFILE_AUDITD) {
                        r = add_list(ctx, SCMP_ACT_ALLOW, syscalls_log, ELEMENTSOF(syscalls_log));
                        if (r < 0)
                                goto finish;
                }
        }

        r = add_socket_rules(ctx, p);
        if (r < 0)
                goto finish;

        r = seccomp_load(ctx);
finish:
        seccomp_release(ctx);
        return r;
}
