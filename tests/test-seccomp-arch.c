/* SPDX-License-Identifier: Apache-2.0 */
/* Every seccomp allowlist, built with libseccomp for x86-64, arm64 and 32-bit
 * ARM whatever the host, exported as BPF and run here on made-up syscalls by a
 * small classic-BPF interpreter: each syscall the daemons make on that
 * architecture (strace of the daemons' bus tests on x86-64, mapped to what
 * glibc calls there) is allowed, the W^X, thread-only and socket rules are
 * real rules on the real syscall numbers, and what no daemon may do kills.
 * Loads nothing into the kernel, so it runs under qemu-user too. */
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "confine.h"
#include "macro.h"
#include "seccomp-profile.h"

static int failures = 0;

static void expect(int cond, const char *fmt, ...) _printf_(2, 3);
static void expect(int cond, const char *fmt, ...) {
        va_list ap;

        if (cond)
                return; /* only failures are listed: there are thousands of checks */
        printf("not ok - ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        failures++;
}

typedef struct Arch {
        uint32_t scmp;
        uint32_t audit;
        const char *name;
} Arch;

static const Arch arches[] = {
        { SCMP_ARCH_X86_64, AUDIT_ARCH_X86_64, "x86-64" },
        { SCMP_ARCH_AARCH64, AUDIT_ARCH_AARCH64, "arm64" },
        { SCMP_ARCH_ARM, AUDIT_ARCH_ARM, "armhf" },
};

/* --- a classic BPF interpreter over struct seccomp_data ----------------------- */

#define BAD_PROGRAM 0xffffffffU

/* seccomp_data as the kernel lays it out for a little-endian architecture
 * (all three are): nr, arch, instruction pointer, six 64-bit arguments. */
static void make_data(uint8_t data[64], int nr, uint32_t audit_arch, const uint64_t args[6]) {
        memset(data, 0, 64);
        for (int i = 0; i < 4; i++) {
                data[i] = (uint8_t) ((uint32_t) nr >> (8 * i));
                data[4 + i] = (uint8_t) (audit_arch >> (8 * i));
        }
        for (int a = 0; a < 6; a++)
                for (int i = 0; i < 8; i++)
                        data[16 + 8 * a + i] = (uint8_t) (args[a] >> (8 * i));
}

static uint32_t bpf_run(const struct sock_filter *prog, size_t len, const uint8_t data[64]) {
        uint32_t A = 0, X = 0, mem[BPF_MEMWORDS] = {};

        for (size_t pc = 0; pc < len; pc++) {
                const struct sock_filter *f = &prog[pc];
                uint32_t src = BPF_SRC(f->code) == BPF_X ? X : f->k;
                size_t jump = 0;

                switch (f->code) {
                case BPF_LD | BPF_W | BPF_ABS:
                        if (f->k > 60 || f->k % 4)
                                return BAD_PROGRAM;
                        A = (uint32_t) data[f->k] | (uint32_t) data[f->k + 1] << 8 |
                            (uint32_t) data[f->k + 2] << 16 | (uint32_t) data[f->k + 3] << 24;
                        continue;
                case BPF_LD | BPF_MEM:
                        if (f->k >= BPF_MEMWORDS)
                                return BAD_PROGRAM;
                        A = mem[f->k];
                        continue;
                case BPF_LDX | BPF_MEM:
                        if (f->k >= BPF_MEMWORDS)
                                return BAD_PROGRAM;
                        X = mem[f->k];
                        continue;
                case BPF_ST:
                case BPF_STX:
                        if (f->k >= BPF_MEMWORDS)
                                return BAD_PROGRAM;
                        mem[f->k] = f->code == BPF_ST ? A : X;
                        continue;
                case BPF_MISC | BPF_TAX:
                        X = A;
                        continue;
                case BPF_MISC | BPF_TXA:
                        A = X;
                        continue;
                case BPF_ALU | BPF_AND | BPF_K:
                case BPF_ALU | BPF_AND | BPF_X:
                        A &= src;
                        continue;
                case BPF_ALU | BPF_OR | BPF_K:
                case BPF_ALU | BPF_OR | BPF_X:
                        A |= src;
                        continue;
                case BPF_RET | BPF_K:
                        return f->k;
                case BPF_RET | BPF_A:
                        return A;
                case BPF_JMP | BPF_JA:
                        jump = f->k;
                        break;
                case BPF_JMP | BPF_JEQ | BPF_K:
                case BPF_JMP | BPF_JEQ | BPF_X:
                        jump = A == src ? f->jt : f->jf;
                        break;
                case BPF_JMP | BPF_JGT | BPF_K:
                case BPF_JMP | BPF_JGT | BPF_X:
                        jump = A > src ? f->jt : f->jf;
                        break;
                case BPF_JMP | BPF_JGE | BPF_K:
                case BPF_JMP | BPF_JGE | BPF_X:
                        jump = A >= src ? f->jt : f->jf;
                        break;
                case BPF_JMP | BPF_JSET | BPF_K:
                case BPF_JMP | BPF_JSET | BPF_X:
                        jump = (A & src) ? f->jt : f->jf;
                        break;
                default:
                        return BAD_PROGRAM; /* an instruction this interpreter does not know */
                }
                pc += jump;
        }
        return BAD_PROGRAM; /* fell off the end */
}

typedef struct Filter {
        struct sock_filter *prog;
        size_t len;
        const Arch *arch;
} Filter;

static int filter_export(scmp_filter_ctx ctx, const Arch *arch, Filter *ret) {
        _cleanup_close_ int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
        struct sock_filter *prog;
        off_t size;
        int r;

        if (fd < 0)
                return -errno;
        r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return r;
        size = lseek(fd, 0, SEEK_END);
        if (size <= 0 || size % sizeof(struct sock_filter))
                return -EBADMSG;
        prog = malloc((size_t) size);
        if (!prog)
                return -ENOMEM;
        if (pread(fd, prog, (size_t) size, 0) != size) {
                free(prog);
                return -EIO;
        }
        *ret = (Filter) { .prog = prog, .len = (size_t) size / sizeof(struct sock_filter), .arch = arch };
        return 0;
}

static uint32_t filter_run_arch(const Filter *f, uint32_t audit_arch, int nr, const uint64_t args[6]) {
        static const uint64_t no_args[6];
        uint8_t data[64];

        make_data(data, nr, audit_arch, args ?: no_args);
        return bpf_run(f->prog, f->len, data);
}

/* The action for `name` on the filter's architecture; BAD_PROGRAM when the name is no syscall there. */
static uint32_t filter_run(const Filter *f, const char *name, const uint64_t args[6]) {
        int nr = seccomp_syscall_resolve_name_arch(f->arch->scmp, name);

        if (nr < 0)
                return BAD_PROGRAM;
        return filter_run_arch(f, f->arch->audit, nr, args);
}

static const char *action_name(uint32_t a) {
        static char buf[32];

        switch (a & SECCOMP_RET_ACTION_FULL) {
        case SECCOMP_RET_ALLOW: return "allow";
        case SECCOMP_RET_KILL_PROCESS: return "kill-process";
        case SECCOMP_RET_KILL_THREAD: return "kill-thread";
        case SECCOMP_RET_TRAP: return "trap";
        case SECCOMP_RET_LOG: return "log";
        case SECCOMP_RET_ERRNO:
                (void) snprintf(buf, sizeof(buf), "errno %u", a & SECCOMP_RET_DATA);
                return buf;
        }
        return a == BAD_PROGRAM ? "no such syscall, or a bad program" : "?";
}

/* --- what the daemons need ----------------------------------------------------- */

enum {
        COLLECTOR = 1 << CONFINE_PROFILE_COLLECTOR,
        NET = 1 << CONFINE_PROFILE_NET_WORKER,
        AUDITD = 1 << CONFINE_PROFILE_AUDITD,
        POLICYD = 1 << CONFINE_PROFILE_POLICYD,
        ALL = COLLECTOR | NET | AUDITD | POLICYD,
        FILES = COLLECTOR | AUDITD | POLICYD,
};

/* A syscall the daemons were seen to make once confined, by its x86-64 name
 * (strace -f of the collector-bus, audit-bus and audit-seal tests, the calls
 * after seccomp()), or one their libraries make on a path those tests do not
 * take; and what glibc 2.36 calls for it on arm64 and armhf (every name
 * listed must be allowed: on armhf glibc tries the time64 call first and falls
 * back to the 32-bit one on ENOSYS). NULL: the same name. */
typedef struct Need {
        const char *x86_64;
        const char *aarch64;
        const char *arm[3];
        unsigned profiles;
} Need;

static const Need needs[] = {
        { "brk", NULL, {}, ALL },
        { "clock_getres", NULL, { "clock_getres_time64", "clock_getres" }, ALL },
        { "clock_gettime", NULL, { "clock_gettime64", "clock_gettime" }, ALL },
        { "clock_nanosleep", NULL, { "clock_nanosleep_time64", "clock_nanosleep" }, ALL },
        { "close", NULL, {}, ALL },
        { "dup", NULL, {}, ALL },
        { "dup3", NULL, {}, ALL },
        { "epoll_create1", NULL, {}, ALL },
        { "epoll_ctl", NULL, {}, ALL },
        { "epoll_pwait", NULL, {}, ALL },
        { "epoll_wait", "epoll_pwait", {}, ALL },
        { "eventfd2", NULL, {}, ALL },
        { "exit", NULL, {}, ALL },
        { "exit_group", NULL, {}, ALL },
        { "fcntl", NULL, { "fcntl64" }, ALL },
        { "fstat", NULL, { "fstat64", "statx" }, ALL },
        { "fstatfs", NULL, { "fstatfs64" }, ALL },
        { "futex", NULL, { "futex_time64", "futex" }, ALL },
        { "getegid", NULL, { "getegid32" }, ALL },
        { "geteuid", NULL, { "geteuid32" }, ALL },
        { "getgid", NULL, { "getgid32" }, ALL },
        { "getgroups", NULL, { "getgroups32" }, ALL },
        { "getpid", NULL, {}, ALL },
        { "getppid", NULL, {}, ALL },
        { "getrandom", NULL, {}, ALL },
        { "getresgid", NULL, { "getresgid32" }, ALL },
        { "getresuid", NULL, { "getresuid32" }, ALL },
        { "getrlimit", NULL, { "ugetrlimit" }, ALL },
        { "gettid", NULL, {}, ALL },
        { "getuid", NULL, { "getuid32" }, ALL },
        { "lseek", NULL, { "_llseek", "lseek" }, ALL },
        { "madvise", NULL, {}, ALL },
        { "membarrier", NULL, {}, ALL },
        { "mremap", NULL, {}, ALL },
        { "munmap", NULL, {}, ALL },
        { "nanosleep", NULL, { "clock_nanosleep_time64", "nanosleep" }, ALL },
        { "newfstatat", NULL, { "fstatat64", "statx" }, ALL },
        { "pipe2", NULL, {}, ALL },
        { "poll", "ppoll", { "poll" }, ALL },
        { "ppoll", NULL, { "ppoll_time64", "ppoll" }, ALL },
        { "pread64", NULL, {}, ALL },
        { "prlimit64", NULL, {}, ALL },
        { "pwrite64", NULL, {}, ALL },
        { "read", NULL, {}, ALL },
        { "readv", NULL, {}, ALL },
        { "restart_syscall", NULL, {}, ALL },
        { "rseq", NULL, {}, ALL },
        { "rt_sigaction", NULL, {}, ALL },
        { "rt_sigprocmask", NULL, {}, ALL },
        { "rt_sigreturn", NULL, {}, ALL },
        { "rt_sigtimedwait", NULL, { "rt_sigtimedwait_time64", "rt_sigtimedwait" }, ALL },
        { "sched_getaffinity", NULL, {}, ALL },
        { "sched_yield", NULL, {}, ALL },
        { "set_robust_list", NULL, {}, ALL },
        { "sigaltstack", NULL, {}, ALL },
        { "signalfd4", NULL, {}, ALL },
        { "statx", NULL, {}, ALL },
        { "tgkill", NULL, {}, ALL },
        { "time", "clock_gettime", { "clock_gettime64" }, ALL },
        { "timerfd_create", NULL, {}, ALL },
        { "timerfd_gettime", NULL, { "timerfd_gettime64", "timerfd_gettime" }, ALL },
        { "timerfd_settime", NULL, { "timerfd_settime64", "timerfd_settime" }, ALL },
        { "uname", NULL, {}, ALL },
        { "write", NULL, {}, ALL },
        { "writev", NULL, {}, ALL },
        /* on the connected bus socket */
        { "getpeername", NULL, {}, ALL },
        { "getsockname", NULL, {}, ALL },
        { "getsockopt", NULL, {}, ALL },
        { "recvfrom", NULL, {}, ALL },
        { "recvmsg", NULL, {}, ALL },
        { "sendmsg", NULL, {}, ALL },
        { "sendto", NULL, {}, ALL },
        { "setsockopt", NULL, {}, ALL },
        { "shutdown", NULL, {}, ALL },
        /* state files */
        { "faccessat2", NULL, {}, FILES },
        { "fdatasync", NULL, {}, FILES },
        { "fsync", NULL, {}, FILES },
        { "getdents64", NULL, {}, FILES },
        { "openat", NULL, {}, FILES },
        { "renameat", NULL, {}, FILES },
        { "renameat2", NULL, {}, FILES },
        { "unlinkat", NULL, {}, FILES },
        { "ftruncate", NULL, { "ftruncate64" }, AUDITD },
        /* TLS over TCP */
        { "connect", NULL, {}, NET },
        { "recvmmsg", NULL, { "recvmmsg_time64", "recvmmsg" }, NET },
        { "sendmmsg", NULL, {}, NET },
};

static const char *const *need_names(const Need *n, const Arch *a, const char *buf[3]) {
        if (a->scmp == SCMP_ARCH_AARCH64 && n->aarch64) {
                buf[0] = n->aarch64;
                buf[1] = NULL;
                return buf;
        }
        if (a->scmp == SCMP_ARCH_ARM && n->arm[0])
                return n->arm;
        buf[0] = n->x86_64;
        buf[1] = NULL;
        return buf;
}

/* Calls allowed only with certain arguments: allowed with the ones the daemons pass. */
static void check_argument_rules(const Filter *f, ConfineProfile p, const char *pn) {
        const char *an = f->arch->name;
        const char *mmap_name = f->arch->scmp == SCMP_ARCH_ARM ? "mmap2" : "mmap";
        const uint64_t rw[6] = { 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS };
        const uint64_t rx[6] = { 0, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS };
        const uint64_t thread[6] = { CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
                                     CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID };
        const uint64_t process[6] = { SIGCHLD };
        const uint64_t fionread[6] = { 0, FIONREAD }, tiocsti[6] = { 0, TIOCSTI };
        const uint64_t set_name[6] = { PR_SET_NAME }, set_dumpable[6] = { PR_SET_DUMPABLE, 1 };
        uint32_t r;

        /* W^X: real rules on the real mmap of this architecture. */
        r = filter_run(f, mmap_name, rw);
        expect(r == SECCOMP_RET_ALLOW, "%s %s: %s(PROT_READ|PROT_WRITE) allowed, got %s", an, pn, mmap_name, action_name(r));
        r = filter_run(f, "mprotect", rw);
        expect(r == SECCOMP_RET_ALLOW, "%s %s: mprotect(PROT_READ|PROT_WRITE) allowed, got %s", an, pn, action_name(r));
        if (!BUILT_WITH_SANITIZERS) {
                r = filter_run(f, mmap_name, rx);
                expect(r == SECCOMP_RET_KILL_PROCESS, "%s %s: %s(PROT_EXEC) kills (W^X), got %s", an, pn, mmap_name,
                       action_name(r));
                r = filter_run(f, "mprotect", rx);
                expect(r == SECCOMP_RET_KILL_PROCESS, "%s %s: mprotect(PROT_EXEC) kills (W^X), got %s", an, pn,
                       action_name(r));
        }

        r = filter_run(f, "clone", thread);
        expect(r == SECCOMP_RET_ALLOW, "%s %s: clone of a thread allowed, got %s", an, pn, action_name(r));
        if (!BUILT_WITH_SANITIZERS) {
                r = filter_run(f, "clone", process);
                expect(r == SECCOMP_RET_KILL_PROCESS, "%s %s: clone of a process kills, got %s", an, pn, action_name(r));
        }
        r = filter_run(f, "clone3", NULL);
        expect(r == (SECCOMP_RET_ERRNO | ENOSYS), "%s %s: clone3 fails with ENOSYS (glibc falls back to clone), got %s",
               an, pn, action_name(r));

        r = filter_run(f, "ioctl", fionread);
        expect(r == SECCOMP_RET_ALLOW, "%s %s: ioctl(FIONREAD) allowed, got %s", an, pn, action_name(r));
        r = filter_run(f, "ioctl", tiocsti);
        expect(r == SECCOMP_RET_KILL_PROCESS, "%s %s: ioctl(TIOCSTI) kills, got %s", an, pn, action_name(r));
        r = filter_run(f, "prctl", set_name);
        expect(r == SECCOMP_RET_ALLOW, "%s %s: prctl(PR_SET_NAME) allowed, got %s", an, pn, action_name(r));
        if (!BUILT_WITH_SANITIZERS) {
                r = filter_run(f, "prctl", set_dumpable);
                expect(r == SECCOMP_RET_KILL_PROCESS, "%s %s: prctl(PR_SET_DUMPABLE) kills, got %s", an, pn,
                       action_name(r));
        }

        if (p == CONFINE_PROFILE_NET_WORKER) {
                const uint64_t inet[6] = { AF_INET, SOCK_STREAM }, inet6[6] = { AF_INET6, SOCK_STREAM };
                const uint64_t unix_stream[6] = { AF_UNIX, SOCK_STREAM }, packet[6] = { AF_PACKET, SOCK_RAW };
                const uint64_t unix_dgram[6] = { AF_UNIX, SOCK_DGRAM };
                static const char *const net_kills[] = { "accept" }; /* the others are in kills[] below */

                r = filter_run(f, "socket", inet);
                expect(r == SECCOMP_RET_ALLOW, "%s %s: socket(AF_INET) allowed, got %s", an, pn, action_name(r));
                r = filter_run(f, "socket", inet6);
                expect(r == SECCOMP_RET_ALLOW, "%s %s: socket(AF_INET6) allowed, got %s", an, pn, action_name(r));
                r = filter_run(f, "socket", unix_stream);
                expect(r == (SECCOMP_RET_ERRNO | EACCES), "%s %s: socket(AF_UNIX, SOCK_STREAM) fails with EACCES, got %s",
                       an, pn, action_name(r));
                r = filter_run(f, "socket", packet);
                expect(r == (SECCOMP_RET_ERRNO | EACCES), "%s %s: socket(AF_PACKET) fails with EACCES, got %s", an, pn,
                       action_name(r));
                /* the bus and the notify socket are opened before the lock-down: no new Unix socket of any type */
                r = filter_run(f, "socket", unix_dgram);
                expect(r == (SECCOMP_RET_ERRNO | EACCES), "%s %s: socket(AF_UNIX, SOCK_DGRAM) fails with EACCES, got %s",
                       an, pn, action_name(r));
                /* libcurl's wake-up pair, and nothing but a local pair */
                r = filter_run(f, "socketpair", unix_stream);
                expect(r == SECCOMP_RET_ALLOW, "%s %s: socketpair(AF_UNIX) allowed, got %s", an, pn, action_name(r));
                r = filter_run(f, "socketpair", inet);
                expect(r == SECCOMP_RET_KILL_PROCESS, "%s %s: socketpair(AF_INET) kills, got %s", an, pn, action_name(r));
                for (size_t i = 0; i < ELEMENTSOF(net_kills); i++) {
                        r = filter_run(f, net_kills[i], NULL);
                        expect(r == SECCOMP_RET_KILL_PROCESS, "%s %s: %s kills (it never listens), got %s", an, pn,
                               net_kills[i], action_name(r));
                }
                if (!BUILT_WITH_SANITIZERS) {
                        r = filter_run(f, "openat", NULL);
                        expect(r == (SECCOMP_RET_ERRNO | EACCES), "%s %s: openat fails with EACCES, got %s", an, pn,
                               action_name(r));
                }
        } else {
                const uint64_t inet[6] = { AF_INET, SOCK_STREAM }, netlink[6] = { AF_NETLINK, SOCK_RAW };

                r = filter_run(f, "socket", inet);
                expect(r != SECCOMP_RET_ALLOW, "%s %s: socket(AF_INET) not allowed, got %s", an, pn, action_name(r));
                r = filter_run(f, "socket", netlink);
                expect(r != SECCOMP_RET_ALLOW, "%s %s: socket(AF_NETLINK) not allowed, got %s", an, pn, action_name(r));
        }
}

static void check_profile(const Filter *f, ConfineProfile p) {
        static const char *const kills[] = {
                "execve", "execveat", "mount", "unshare", "bind", "listen", "accept4", "linkat", "mkdirat",
                "fchown", "fchmod", "memfd_create", "kexec_load", "init_module", "bpf", "setns", "pivot_root",
        };
        static const char *const eperm[] = { "setuid", "setgid", "setresuid", "setgroups", "capset" };
        static const char *const eperm_arm[] = { "setuid32", "setgid32", "setresuid32", "setgroups32" };
        const char *pn = confine_profile_to_string(p), *an = f->arch->name;
        const uint64_t unused[6] = { 0, 0, 0, 0, 0, 0 };
        uint32_t r;

        for (size_t i = 0; i < ELEMENTSOF(needs); i++) {
                const char *buf[3], *const *names;

                if (!(needs[i].profiles & (1U << p)))
                        continue;
                names = need_names(&needs[i], f->arch, buf);
                for (size_t k = 0; k < 3 && names[k]; k++) {
                        r = filter_run(f, names[k], NULL);
                        expect(r == SECCOMP_RET_ALLOW, "%s %s: %s (for %s) allowed, got %s", an, pn, names[k],
                               needs[i].x86_64, action_name(r));
                }
        }
        check_argument_rules(f, p, pn);

        for (size_t i = 0; i < ELEMENTSOF(kills); i++) {
                r = filter_run(f, kills[i], NULL);
                expect(r == SECCOMP_RET_KILL_PROCESS, "%s %s: %s kills, got %s", an, pn, kills[i], action_name(r));
        }
        for (size_t i = 0; i < ELEMENTSOF(eperm); i++) {
                r = filter_run(f, eperm[i], NULL);
                expect(r == (SECCOMP_RET_ERRNO | EPERM), "%s %s: %s fails with EPERM, got %s", an, pn, eperm[i],
                       action_name(r));
        }
        if (f->arch->scmp == SCMP_ARCH_ARM)
                for (size_t i = 0; i < ELEMENTSOF(eperm_arm); i++) {
                        r = filter_run(f, eperm_arm[i], NULL);
                        expect(r == (SECCOMP_RET_ERRNO | EPERM), "%s %s: %s fails with EPERM, got %s", an, pn,
                               eperm_arm[i], action_name(r));
                }
        if (p != CONFINE_PROFILE_AUDITD) {
                r = filter_run(f, f->arch->scmp == SCMP_ARCH_ARM ? "ftruncate64" : "ftruncate", NULL);
                expect(r == SECCOMP_RET_KILL_PROCESS, "%s %s: ftruncate kills outside auditd, got %s", an, pn,
                       action_name(r));
        }

        /* Architecture first: another ABI's syscall kills, whatever its number. */
        for (size_t i = 0; i < ELEMENTSOF(arches); i++) {
                if (arches[i].audit == f->arch->audit)
                        continue;
                r = filter_run_arch(f, arches[i].audit, seccomp_syscall_resolve_name_arch(arches[i].scmp, "read"), unused);
                expect(r == SECCOMP_RET_KILL_PROCESS, "%s %s: read() of %s kills, got %s", an, pn, arches[i].name,
                       action_name(r));
        }
        r = filter_run_arch(f, AUDIT_ARCH_I386, 3, unused);
        expect(r == SECCOMP_RET_KILL_PROCESS, "%s %s: an i386 syscall kills, got %s", an, pn, action_name(r));
        /* An x32 syscall on x86-64 carries its own arch bit in the number. */
        if (f->arch->scmp == SCMP_ARCH_X86_64) {
                r = filter_run_arch(f, AUDIT_ARCH_X86_64, 0x40000000 | 0, unused);
                expect(r == SECCOMP_RET_KILL_PROCESS, "%s %s: an x32 read() kills, got %s", an, pn, action_name(r));
        }
}

static void check_unknown_names(void) {
        static const char *const mmap_only[] = { "mmap" };
        static const char *const mmap2_only[] = { "mmap2" };
        static const char *const typo[] = { "read", "no_such_syscall" };
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
        const char *unresolved = NULL;
        int r;

        expect(ctx != NULL, "seccomp_init");
        if (!ctx)
                return;
        /* A filter of the host's own architecture: the check is by the arch argument alone. */
        r = seccomp_profile_add_names(ctx, SCMP_ARCH_ARM, SCMP_ACT_ALLOW, mmap_only, 1, &unresolved);
        expect(r == -ENOENT && unresolved && streq(unresolved, "mmap"),
               "mmap on armhf (a pseudo-syscall there) is -ENOENT naming it, got %d", r);
        unresolved = NULL;
        r = seccomp_profile_add_names(ctx, SCMP_ARCH_X86_64, SCMP_ACT_ALLOW, mmap2_only, 1, &unresolved);
        expect(r == -ENOENT && unresolved && streq(unresolved, "mmap2"), "mmap2 on x86-64 is -ENOENT naming it, got %d", r);
        unresolved = NULL;
        r = seccomp_profile_add_names(ctx, SCMP_ARCH_AARCH64, SCMP_ACT_ALLOW, typo, 2, &unresolved);
        expect(r == -ENOENT && unresolved && streq(unresolved, "no_such_syscall"),
               "an unknown name is -ENOENT naming it, got %d", r);
        seccomp_release(ctx);

        /* An architecture without lists is refused, not given a half filter. */
        r = seccomp_profile_build(CONFINE_PROFILE_COLLECTOR, SECCOMP_MODE_KILL, SCMP_ARCH_PPC64LE, &ctx, NULL);
        expect(r == -EOPNOTSUPP, "an architecture without lists is -EOPNOTSUPP, got %d", r);
}

static void check_modes(void) {
        scmp_filter_ctx ctx;
        int r;

        /* Debug actions only in a -Dseccomp_debug=true build. */
        for (SeccompMode m = SECCOMP_MODE_TRAP; m <= SECCOMP_MODE_LOG; m++) {
                r = seccomp_profile_build(CONFINE_PROFILE_COLLECTOR, m, SCMP_ARCH_NATIVE, &ctx, NULL);
                if (BUILT_WITH_SECCOMP_DEBUG) {
                        expect(r == 0, "mode %s builds in a debug build, got %d", seccomp_mode_to_string(m), r);
                        if (r == 0)
                                seccomp_release(ctx);
                } else
                        expect(r == -EOPNOTSUPP, "mode %s is refused in a release build, got %d",
                               seccomp_mode_to_string(m), r);
        }
}

int main(void) {
        size_t checks_before = 0;

        printf("# host architecture: libseccomp token %#x\n", seccomp_arch_native());
        /* libseccomp asks the kernel which actions it has; qemu-user answers
         * no seccomp at all. The filters are only exported here, for kernels
         * that have KILL_PROCESS and LOG (API level 3, Linux 4.14). */
        if (seccomp_api_get() < 3) {
                printf("# libseccomp API level %u here (qemu-user?): building as for level 3\n", seccomp_api_get());
                if (seccomp_api_set(3) < 0) {
                        printf("not ok - seccomp_api_set(3)\n");
                        return 1;
                }
        }
        for (size_t a = 0; a < ELEMENTSOF(arches); a++)
                for (ConfineProfile p = 0; p < _CONFINE_PROFILE_MAX; p++) {
                        const char *unresolved = NULL, *pn = confine_profile_to_string(p);
                        scmp_filter_ctx ctx = NULL;
                        Filter f = {};
                        int r;

                        r = seccomp_profile_build(p, SECCOMP_MODE_KILL, arches[a].scmp, &ctx, &unresolved);
                        expect(r == 0, "%s %s: filter builds, got %s%s%s", arches[a].name, pn, strerror(-r),
                               unresolved ? " for " : "", unresolved ?: "");
                        if (r < 0)
                                continue;
                        r = filter_export(ctx, &arches[a], &f);
                        seccomp_release(ctx);
                        expect(r == 0, "%s %s: BPF exported, got %s", arches[a].name, pn, strerror(-r));
                        if (r < 0)
                                continue;
                        printf("# %s %s: %zu BPF instructions\n", arches[a].name, pn, f.len);
                        checks_before = (size_t) failures;
                        check_profile(&f, p);
                        printf("%s - %s %s: needed syscalls allowed, W^X and argument rules real, the rest killed\n",
                               (size_t) failures == checks_before ? "ok" : "not ok", arches[a].name, pn);
                        free(f.prog);
                }
        check_unknown_names();
        check_modes();

        printf("%d failure(s)\n", failures);
        return failures ? 1 : 0;
}
