/* SPDX-License-Identifier: Apache-2.0 */
/* Confinement with real effects. Each case runs in a forked child that
 * confines itself exactly as a daemon does (confine_apply()), then tries
 * something; the parent judges by how the child ended. Needs root (to drop to
 * the real service users); skips otherwise. */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "confine.h"
#include "log.h"
#include "macro.h"

static int failures = 0;
/* The child's /proc/self/status, opened before it confines itself (the net-worker may not open files). */
static int status_fd = -1;
/* The service user's ids, looked up before confinement for the same reason. */
static uid_t want_uid;
static gid_t want_gid;
/* The child's state directory, made by the parent for the service user. */
static char state_dir[64];
static int landlock_abi;

#define CHILD_OK 0
#define CHILD_BAD 42

typedef int (*child_fn)(ConfineProfile p);

/* The state directory and what a child left in it (one level, as the children write). */
static void remove_tree(const char *path) {
        DIR *d = opendir(path);
        struct dirent *de;

        if (d) {
                while ((de = readdir(d)))
                        if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                                (void) unlinkat(dirfd(d), de->d_name, 0);
                closedir(d);
        }
        (void) rmdir(path);
}

/* fork(), with stdio flushed first so that the child does not repeat what is buffered. */
static pid_t fork_flushed(void) {
        pid_t pid;

        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid < 0) {
                perror("fork");
                exit(2);
        }
        return pid;
}

/* Run fn in a child; return its wait status. */
static int run_child(ConfineProfile p, SeccompMode mode, child_fn fn) {
        pid_t pid;
        int status = 0;

        uid_t uid;
        gid_t gid;

        /* A state directory of the service user's own, as systemd's StateDirectory= makes. */
        (void) snprintf(state_dir, sizeof(state_dir), "/tmp/test-confine-XXXXXX");
        if (!mkdtemp(state_dir) || confine_lookup_user(confine_profile_user(p), &uid, &gid) < 0 ||
            chown(state_dir, uid, gid) < 0) {
                perror("state directory");
                exit(2);
        }
        pid = fork_flushed();
        if (pid == 0) {
                int r;

                status_fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
                if (confine_lookup_user(confine_profile_user(p), &want_uid, &want_gid) < 0)
                        _exit(CHILD_BAD + 2);
                r = confine_apply(p, NULL, state_dir, mode);
                if (r < 0) {
                        fprintf(stderr, "confine_apply(%s): %s\n", confine_profile_to_string(p), strerror(-r));
                        _exit(CHILD_BAD + 1);
                }
                _exit(fn(p));
        }
        if (waitpid(pid, &status, 0) < 0) {
                perror("waitpid");
                exit(2);
        }
        remove_tree(state_dir);
        return status;
}

static void expect(int cond, const char *what, ConfineProfile p) {
        printf("%s - %s: %s\n", cond ? "ok" : "not ok", confine_profile_to_string(p), what);
        if (!cond)
                failures++;
}

static void expect_killed(ConfineProfile p, SeccompMode mode, child_fn fn, const char *what) {
        int st = run_child(p, mode, fn);
        expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, what, p);
        if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS))
                printf("#   child ended with %s %d\n", WIFSIGNALED(st) ? "signal" : "exit status",
                       WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

static void expect_exit_ok(ConfineProfile p, child_fn fn, const char *what) {
        int st = run_child(p, SECCOMP_MODE_KILL, fn);
        expect(WIFEXITED(st) && WEXITSTATUS(st) == CHILD_OK, what, p);
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == CHILD_OK))
                printf("#   child ended with %s %d\n", WIFSIGNALED(st) ? "signal" : "exit status",
                       WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

/* --- what the children try ------------------------------------------------- */



static int field_is(const char *status, const char *key, const char *want) {
        const char *p = strstr(status, key);
        size_t n = strlen(want);

        if (!p)
                return 0;
        p += strlen(key);
        while (*p == '\t' || *p == ' ')
                p++;
        return strncmp(p, want, n) == 0 && (p[n] == '\n' || p[n] == '\0');
}

static int try_status(ConfineProfile p) {
        char buf[8192], want[64];
        uid_t uid = want_uid;
        gid_t gid = want_gid;
        ssize_t n;

        n = pread(status_fd, buf, sizeof(buf) - 1, 0);
        if (n <= 0)
                return 10;
        buf[n] = '\0';
        (void) snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", uid, uid, uid, uid);
        if (!field_is(buf, "\nUid:", want))
                return 12;
        (void) snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", gid, gid, gid, gid);
        if (!field_is(buf, "\nGid:", want))
                return 13;
        if (!field_is(buf, "\nGroups:", ""))
                return 14;
        if (!field_is(buf, "\nCapInh:", "0000000000000000") || !field_is(buf, "\nCapPrm:", "0000000000000000") ||
            !field_is(buf, "\nCapEff:", "0000000000000000") || !field_is(buf, "\nCapBnd:", "0000000000000000") ||
            !field_is(buf, "\nCapAmb:", "0000000000000000"))
                return 15;
        if (!field_is(buf, "\nNoNewPrivs:", "1"))
                return 16;
        if (!field_is(buf, "\nSeccomp:", "2"))
                return 17;
        /* Root cannot be had back: setuid(0) fails (EPERM from the filter, and from the kernel). */
        if (setuid(0) == 0 || getuid() == 0)
                return 18;
        if (setgroups(0, NULL) == 0)
                return 19;
        return CHILD_OK;
}

static int try_execve(ConfineProfile p) {
        char *const argv[] = { (char *) "/bin/true", NULL };
        (void) syscall(SYS_execve, "/bin/true", argv, NULL);
        return CHILD_BAD; /* must not get here */
}

static int try_mount(ConfineProfile p) {
        (void) syscall(SYS_mount, "none", "/", "tmpfs", 0, NULL);
        return CHILD_BAD;
}

static int try_unshare(ConfineProfile p) {
        (void) syscall(SYS_unshare, CLONE_NEWUSER);
        return CHILD_BAD;
}

static int try_listen(ConfineProfile p) {
        int fd = socket(p == CONFINE_PROFILE_NET_WORKER ? AF_INET : AF_UNIX, SOCK_STREAM, 0);
        (void) syscall(SYS_listen, fd, 1);
        return CHILD_BAD;
}

static int try_bind(ConfineProfile p) {
        (void) syscall(SYS_bind, 0, NULL, 0);
        return CHILD_BAD;
}

static int try_ptrace(ConfineProfile p) {
        (void) syscall(SYS_ptrace, PTRACE_TRACEME, 0, NULL, NULL);
        return CHILD_BAD;
}

static int try_fork(ConfineProfile p) {
        /* clone() without CLONE_THREAD is a new process: never allowed. */
        long r = syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
        if (r == 0)
                _exit(CHILD_BAD);
        return CHILD_BAD;
}

static int try_exec_mapping(ConfineProfile p) {
        (void) mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return CHILD_BAD;
}

static int try_inet_socket_denied(ConfineProfile p) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd >= 0 || errno != EACCES)
                return CHILD_BAD;
        fd = socket(AF_NETLINK, SOCK_RAW, 0);
        if (fd >= 0 || errno != EACCES)
                return CHILD_BAD;
        return CHILD_OK;
}

/* The bus and the notify socket were opened before the lock-down: no other. */
static int try_unix_socket(ConfineProfile p) {
        (void) socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        return CHILD_BAD;
}

static int try_connect(ConfineProfile p) {
        (void) syscall(SYS_connect, -1, NULL, 0);
        return CHILD_BAD;
}

static int try_net_worker_sockets(ConfineProfile p) {
        int pair[2], fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return CHILD_BAD;
        close(fd);
        fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 && errno != EAFNOSUPPORT)
                return CHILD_BAD + 2;
        if (fd >= 0)
                close(fd);
        /* A stream to a local service (the bus, nscd …) is not the net-worker's business. */
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd >= 0 || errno != EACCES)
                return CHILD_BAD + 3;
        fd = socket(AF_PACKET, SOCK_RAW, 0);
        if (fd >= 0 || errno != EACCES)
                return CHILD_BAD + 4;
        /* The notify socket was opened before the lock-down: no datagram socket of its own either. */
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 || errno != EACCES)
                return CHILD_BAD + 5;
        /* libcurl's wake-up pair: local, no address. */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                return CHILD_BAD + 6;
        close(pair[0]);
        close(pair[1]);
        return CHILD_OK;
}

static int try_net_worker_open(ConfineProfile p) {
        int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
        if (fd >= 0 || errno != EACCES)
                return CHILD_BAD;
        return CHILD_OK;
}

/* Links, directories, ownership and modes are nobody's business once running. */
static int try_linkat(ConfineProfile p) {
        (void) syscall(SYS_linkat, AT_FDCWD, "/proc/self/status", AT_FDCWD, "/nonexistent/x", 0);
        return CHILD_BAD;
}

static int try_mkdirat(ConfineProfile p) {
        (void) syscall(SYS_mkdirat, AT_FDCWD, "/nonexistent/x", 0700);
        return CHILD_BAD;
}

static int try_fchown(ConfineProfile p) {
        (void) syscall(SYS_fchown, 0, 0, 0);
        return CHILD_BAD;
}

static int try_memfd(ConfineProfile p) {
        (void) syscall(SYS_memfd_create, "x", 0);
        return CHILD_BAD;
}

/* Only auditd cuts a file short (a partly written record after a failed append). */
static int try_ftruncate(ConfineProfile p) {
        (void) syscall(SYS_ftruncate, -1, 0);
        return CHILD_BAD;
}

static int try_ftruncate_allowed(ConfineProfile p) {
        return syscall(SYS_ftruncate, -1, 0) < 0 && errno == EBADF ? CHILD_OK : CHILD_BAD;
}

/* Landlock: the state directory takes new files, renames and removals ... */
static int try_write_state_dir(ConfineProfile p) {
        char a[128], b[128];
        int fd;

        (void) snprintf(a, sizeof(a), "%s/new.tmp", state_dir);
        (void) snprintf(b, sizeof(b), "%s/new", state_dir);
        /* The *at() calls, as the daemons make them (rename() and unlink() are not on the allowlists). */
        fd = open(a, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, "x", 1) != 1 || fsync(fd) < 0)
                return CHILD_BAD;
        if (p == CONFINE_PROFILE_AUDITD && ftruncate(fd, 0) < 0)
                return CHILD_BAD + 1;
        close(fd);
        if (renameat(AT_FDCWD, a, AT_FDCWD, b) < 0 || unlinkat(AT_FDCWD, b, 0) < 0)
                return CHILD_BAD + 2;
        return CHILD_OK;
}

/* ... and nothing else takes anything, not even world-writable /tmp or a file
 * the service user may write by its permissions. */
static int try_write_elsewhere(ConfineProfile p) {
        char path[128];
        int fd;

        (void) snprintf(path, sizeof(path), "/tmp/test-confine-outside-%d", (int) getpid());
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
                (void) unlink(path);
                return CHILD_BAD;
        }
        if (errno != EACCES)
                return CHILD_BAD + 1;
        fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (fd >= 0 || errno != EACCES)
                return CHILD_BAD + 2;
        return CHILD_OK;
}

static int try_file_open(ConfineProfile p) {
        int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return CHILD_BAD;
        close(fd);
        return CHILD_OK;
}

/* --- the environment cannot weaken the filter -------------------------------- */

/* CALLHOME_SECCOMP=log in the environment (an EnvironmentFile= can put it
 * there): a release build stays at KILL, and refuses the debug actions. */
static void check_mode_from_environment(ConfineProfile p) {
        int st;

        setenv("CALLHOME_SECCOMP", "log", 1);
        st = run_child(p, seccomp_mode_from_env(), try_execve);
        unsetenv("CALLHOME_SECCOMP");
        expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
               "CALLHOME_SECCOMP=log in the environment: execve still kills (release build)", p);

        st = run_child(p, SECCOMP_MODE_TRAP, try_execve);
        expect(WIFEXITED(st) && WEXITSTATUS(st) == CHILD_BAD + 1, "TRAP mode is refused (release build)", p);
        st = run_child(p, SECCOMP_MODE_LOG, try_execve);
        expect(WIFEXITED(st) && WEXITSTATUS(st) == CHILD_BAD + 1, "LOG mode is refused (release build)", p);
}

/* --- Landlock under a service manager's syscall filter ---------------------- */

/* A filter like systemd's SystemCallFilter= with SystemCallErrorNumber=: answers
 * landlock_create_ruleset with `error`, allows everything else. */
static int block_landlock(int error) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        int r;

        if (!ctx)
                return -ENOMEM;
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO((uint32_t) error), SCMP_SYS(landlock_create_ruleset), 0);
        if (r >= 0)
                r = seccomp_load(ctx);
        seccomp_release(ctx);
        return r;
}

/* In a child: Landlock answered with `error` by a filter above us; what
 * confine_landlock_abi() says, and what confine_apply() writes to stderr. */
static void check_landlock_blocked_by(int error, int want_abi, const char *what) {
        char out[4096] = {}, path[] = "/tmp/test-confine-stderr-XXXXXX";
        int fd = mkstemp(path), st = 0, ok;
        ssize_t n;
        pid_t pid;

        if (fd < 0) {
                perror("mkstemp");
                exit(2);
        }
        (void) unlink(path);
        pid = fork_flushed();
        if (pid == 0) {
                if (dup2(fd, STDERR_FILENO) < 0 || block_landlock(error) < 0)
                        _exit(CHILD_BAD + 2);
                if (confine_landlock_abi() != want_abi)
                        _exit(CHILD_BAD + 3);
                /* Not fatal: the daemon goes on, and says so loudly. */
                if (confine_apply(CONFINE_PROFILE_NET_WORKER, NULL, NULL, SECCOMP_MODE_KILL) < 0)
                        _exit(CHILD_BAD + 4);
                _exit(CHILD_OK);
        }
        (void) waitpid(pid, &st, 0);
        n = pread(fd, out, sizeof(out) - 1, 0);
        close(fd);
        ok = WIFEXITED(st) && WEXITSTATUS(st) == CHILD_OK && n >= 0;
        if (want_abi == -EPERM)
                ok = ok && strstr(out, "WARNING: Landlock is blocked");
        else
                ok = ok && !strstr(out, "Landlock");
        printf("%s - %s\n", ok ? "ok" : "not ok", what);
        if (!ok) {
                printf("#   child ended with %s %d; its stderr: %s\n", WIFSIGNALED(st) ? "signal" : "exit status",
                       WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), out);
                failures++;
        }
}

/* --- non-root path ---------------------------------------------------------- */

static int check_unprivileged_start(void) {
        pid_t pid;
        int st;

        /* A child that became the service user by other means (as systemd's User= does):
         * confine_drop_privileges() verifies and goes on. */
        pid = fork();
        if (pid == 0) {
                uid_t uid;
                gid_t gid;
                if (confine_lookup_user("callhome-collector", &uid, &gid) < 0 || setgroups(0, NULL) < 0 ||
                    setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
                        _exit(3);
                _exit(confine_drop_privileges("callhome-collector") == 0 ? 0 : 4);
        }
        (void) waitpid(pid, &st, 0);
        printf("%s - unprivileged start verified and accepted\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "not ok");
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
                failures++;

        /* Still root in the saved uid: refused. */
        pid = fork();
        if (pid == 0) {
                uid_t uid;
                if (confine_lookup_user("callhome-collector", &uid, NULL) < 0 || setresuid(uid, uid, 0) < 0)
                        _exit(3);
                _exit(confine_verify_unprivileged() == -EPERM ? 0 : 4);
        }
        (void) waitpid(pid, &st, 0);
        printf("%s - a saved root uid is refused\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "not ok");
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
                failures++;

        /* A supplementary group held, or gid 0: refused. */
        for (int i = 0; i < 2; i++) {
                pid = fork();
                if (pid == 0) {
                        uid_t uid;
                        gid_t gid, extra = 0; /* root's group: what a careless start would keep */
                        if (confine_lookup_user("callhome-collector", &uid, &gid) < 0 ||
                            setgroups(i == 0 ? 1 : 0, &extra) < 0 || setresgid(i == 0 ? gid : 0, i == 0 ? gid : 0, i == 0 ? gid : 0) < 0 ||
                            setresuid(uid, uid, uid) < 0)
                                _exit(3);
                        _exit(confine_verify_unprivileged() == -EPERM ? 0 : 4);
                }
                (void) waitpid(pid, &st, 0);
                printf("%s - %s is refused\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "not ok",
                       i == 0 ? "a supplementary group" : "gid 0");
                if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
                        failures++;
        }
        return 0;
}

int main(void) {
        log_setup("test-confine");

        if (geteuid() != 0) {
                printf("SKIP: confinement tests need root (to drop to the service users)\n");
                return 77;
        }
        if (confine_lookup_user("callhome-net", NULL, NULL) < 0) {
                printf("SKIP: service users missing (run through meson test, which creates them)\n");
                return 77;
        }

        landlock_abi = confine_landlock_abi();
        if (landlock_abi <= 0)
                printf("# the kernel offers no Landlock: writes outside the state dir are left to permissions and the unit\n");
        else
                printf("# Landlock ABI %d\n", landlock_abi);

        for (ConfineProfile p = 0; p < _CONFINE_PROFILE_MAX; p++) {
                /* The state after the drop, as /proc shows it. */
                expect_exit_ok(p, try_status, "uid/gid of the service user, no groups, no capabilities, NoNewPrivs 1, Seccomp 2, setuid(0) fails");

                /* Syscalls outside every profile kill the process. */
                expect_killed(p, SECCOMP_MODE_KILL, try_execve, "execve kills with SIGSYS");
                expect_killed(p, SECCOMP_MODE_KILL, try_mount, "mount kills with SIGSYS");
                expect_killed(p, SECCOMP_MODE_KILL, try_unshare, "unshare kills with SIGSYS");
                expect_killed(p, SECCOMP_MODE_KILL, try_listen, "listen kills with SIGSYS (S6: nothing listens)");
                expect_killed(p, SECCOMP_MODE_KILL, try_bind, "bind kills with SIGSYS");
                if (BUILT_WITH_SECCOMP_DEBUG)
                        /* TRAP mode (debugging) still stops the process with SIGSYS. */
                        expect_killed(p, SECCOMP_MODE_TRAP, try_execve, "execve in TRAP mode raises SIGSYS");
                else
                        check_mode_from_environment(p);
                /* LeakSanitizer needs these itself, so sanitizer builds allow them. */
                if (!BUILT_WITH_SANITIZERS) {
                        expect_killed(p, SECCOMP_MODE_KILL, try_ptrace, "ptrace kills with SIGSYS");
                        expect_killed(p, SECCOMP_MODE_KILL, try_fork, "fork (clone without CLONE_THREAD) kills with SIGSYS");
                        expect_killed(p, SECCOMP_MODE_KILL, try_exec_mapping, "an executable mapping kills with SIGSYS (W^X)");
                }

                if (p == CONFINE_PROFILE_NET_WORKER) {
                        expect_exit_ok(p, try_net_worker_sockets, "AF_INET/AF_INET6 and an AF_UNIX pair allowed; a new AF_UNIX socket and AF_PACKET fail with EACCES");
                        if (!BUILT_WITH_SANITIZERS)
                                expect_exit_ok(p, try_net_worker_open, "opening a file fails with EACCES");
                } else {
                        expect_exit_ok(p, try_inet_socket_denied, "AF_INET and AF_NETLINK sockets fail with EACCES");
                        expect_killed(p, SECCOMP_MODE_KILL, try_unix_socket, "socket(AF_UNIX) kills with SIGSYS (the bus is already open)");
                        expect_killed(p, SECCOMP_MODE_KILL, try_connect, "connect kills with SIGSYS");
                        expect_exit_ok(p, try_file_open, "files may be opened (its state dir)");
                        if (landlock_abi > 0) {
                                expect_exit_ok(p, try_write_state_dir, "its state dir takes new files, renames, removals");
                                expect_exit_ok(p, try_write_elsewhere,
                                               "writing anywhere else fails with EACCES, /tmp and /dev/null too (Landlock)");
                        }
                        expect_killed(p, SECCOMP_MODE_KILL, try_linkat, "linkat kills with SIGSYS");
                        expect_killed(p, SECCOMP_MODE_KILL, try_mkdirat, "mkdirat kills with SIGSYS");
                        expect_killed(p, SECCOMP_MODE_KILL, try_fchown, "fchown kills with SIGSYS");
                        expect_killed(p, SECCOMP_MODE_KILL, try_memfd, "memfd_create kills with SIGSYS");
                        if (p == CONFINE_PROFILE_AUDITD)
                                expect_exit_ok(p, try_ftruncate_allowed, "ftruncate allowed (cutting a failed append)");
                        else
                                expect_killed(p, SECCOMP_MODE_KILL, try_ftruncate, "ftruncate kills with SIGSYS");
                }
        }

        check_landlock_blocked_by(EPERM, -EPERM,
                                  "Landlock answered EPERM by a filter above: confine_landlock_abi() -EPERM, a loud warning");
        check_landlock_blocked_by(ENOSYS, 0, "Landlock answered ENOSYS (absent): ABI 0, no warning");
        check_unprivileged_start();

        printf("%d failure(s)\n", failures);
        return failures ? 1 : 0;
}
