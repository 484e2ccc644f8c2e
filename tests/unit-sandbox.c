/* SPDX-License-Identifier: Apache-2.0 */
/* unit-sandbox: start a program in what a systemd unit's [Service] section
 * would give it, as far as a process can do that to itself without systemd
 * (tests/test_units_run.py works the settings out of the unit and passes them):
 *
 *   unit-sandbox --user=NAME [--umask=0027] [--nofile=N] [--errno=N]
 *                [--allow=FILE | --deny=FILE] [--families=1,2,10]
 *                [--memory-deny-write-execute] [--restrict-namespaces]
 *                [--restrict-realtime] [--lock-personality] [--restrict-suid-sgid]
 *                -- PROGRAM ARGS...
 *
 * In systemd's order: resource limits and umask; CapabilityBoundingSet= (empty:
 * every capability dropped from the bounding set); User= and Group= with only
 * the user's own group; NoNewPrivileges=; then the seccomp filters: the
 * SystemCallFilter= (FILE holds one syscall name a line, already expanded with
 * `systemd-analyze syscall-filter`; --allow: all else fails with --errno,
 * --deny: those fail), native architecture only (SystemCallArchitectures=native),
 * RestrictAddressFamilies= (socket() of any other family fails EAFNOSUPPORT) and
 * the flag settings, each answered EPERM as systemd answers them. Then exec. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

_Noreturn static void die(const char *what, int err) {
        fprintf(stderr, "unit-sandbox: %s: %s\n", what, strerror(err));
        exit(125);
}

/* One filter of SystemCallFilter=: the names of a file, allowed or denied. */
static void load_syscall_filter(const char *file, int allow, int err) {
        scmp_filter_ctx ctx = seccomp_init(allow ? SCMP_ACT_ERRNO((uint32_t) err) : SCMP_ACT_ALLOW);
        char line[128];
        FILE *f;
        int r;

        if (!ctx)
                die("seccomp_init", ENOMEM);
        f = fopen(file, "re");
        if (!f)
                die(file, errno);
        while (fgets(line, sizeof(line), f)) {
                int nr;

                line[strcspn(line, "\n")] = 0;
                if (!*line)
                        continue;
                /* A name this architecture lacks: systemd skips it too. */
                nr = seccomp_syscall_resolve_name(line);
                if (nr == __NR_SCMP_ERROR)
                        continue;
                r = seccomp_rule_add(ctx, allow ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO((uint32_t) err), nr, 0);
                if (r < 0 && r != -EACCES) /* EACCES: the default action already */
                        die(line, -r);
        }
        fclose(f);
        r = seccomp_load(ctx);
        if (r < 0)
                die("seccomp_load (SystemCallFilter=)", -r);
        seccomp_release(ctx);
}

static void rule(scmp_filter_ctx ctx, int err, int nr, unsigned n, const struct scmp_arg_cmp *cmp) {
        int r = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO((uint32_t) err), nr, n, cmp);

        /* A syscall this architecture lacks (-EFAULT/-EDOM from libseccomp): nothing to restrict. */
        if (r < 0 && r != -EFAULT && r != -EDOM)
                die("seccomp_rule_add", -r);
}

/* EPERM when all the bits of mask are set in argument arg. */
static void masked(scmp_filter_ctx ctx, int nr, unsigned arg, unsigned long mask) {
        rule(ctx, EPERM, nr, 1, (struct scmp_arg_cmp[]) { SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, mask, mask) });
}

int main(int argc, char *argv[]) {
        enum { OPT_MDWE = 256, OPT_NS, OPT_RT, OPT_PERS, OPT_SUID };
        static const struct option options[] = {
                { "user", required_argument, NULL, 'u' },
                { "umask", required_argument, NULL, 'm' },
                { "nofile", required_argument, NULL, 'n' },
                { "errno", required_argument, NULL, 'e' },
                { "allow", required_argument, NULL, 'a' },
                { "deny", required_argument, NULL, 'd' },
                { "families", required_argument, NULL, 'f' },
                { "memory-deny-write-execute", no_argument, NULL, OPT_MDWE },
                { "restrict-namespaces", no_argument, NULL, OPT_NS },
                { "restrict-realtime", no_argument, NULL, OPT_RT },
                { "lock-personality", no_argument, NULL, OPT_PERS },
                { "restrict-suid-sgid", no_argument, NULL, OPT_SUID },
                {}
        };
        const char *user = NULL, *allow = NULL, *deny = NULL, *families = NULL;
        int mdwe = 0, ns = 0, rt = 0, pers = 0, suid = 0, err = EPERM, c;
        long nofile = -1, mask = -1;
        scmp_filter_ctx ctx;
        struct passwd *pw;
        struct rlimit rl;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'u': user = optarg; break;
                case 'm': mask = strtol(optarg, NULL, 8); break;
                case 'n': nofile = strtol(optarg, NULL, 10); break;
                case 'e': err = (int) strtol(optarg, NULL, 10); break;
                case 'a': allow = optarg; break;
                case 'd': deny = optarg; break;
                case 'f': families = optarg; break;
                case OPT_MDWE: mdwe = 1; break;
                case OPT_NS: ns = 1; break;
                case OPT_RT: rt = 1; break;
                case OPT_PERS: pers = 1; break;
                case OPT_SUID: suid = 1; break;
                default: return 125;
                }
        if (!user || optind >= argc) {
                fprintf(stderr, "unit-sandbox: usage: --user=NAME [options] -- PROGRAM ARGS...\n");
                return 125;
        }

        /* LimitNOFILE=, LimitCORE=0, UMask= */
        if (nofile >= 0) {
                rl.rlim_cur = rl.rlim_max = (rlim_t) nofile;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        die("LimitNOFILE=", errno);
        }
        rl.rlim_cur = rl.rlim_max = 0;
        if (setrlimit(RLIMIT_CORE, &rl) < 0)
                die("LimitCORE=", errno);
        if (mask >= 0)
                umask((mode_t) mask);

        /* CapabilityBoundingSet= (empty), then User=, Group=: the caps go with uid 0. */
        for (unsigned long cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
                        die("CapabilityBoundingSet=", errno);
        pw = getpwnam(user);
        if (!pw)
                die(user, ESRCH);
        if (setgroups(1, &pw->pw_gid) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
            setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
                die("User=", errno);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                die("NoNewPrivileges=", errno);

        /* The flag settings and RestrictAddressFamilies=, in one filter of their own. */
        ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                die("seccomp_init", ENOMEM);
        if (families) {
                int allowed[AF_MAX] = {};
                char *copy = strdup(families), *save = NULL;

                for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                        long f = strtol(t, NULL, 10);
                        if (f >= 0 && f < AF_MAX)
                                allowed[f] = 1;
                }
                free(copy);
                for (int f = 0; f < AF_MAX; f++)
                        if (!allowed[f])
                                rule(ctx, EAFNOSUPPORT, SCMP_SYS(socket), 1,
                                     (struct scmp_arg_cmp[]) { SCMP_A0(SCMP_CMP_EQ, (unsigned) f) });
                rule(ctx, EAFNOSUPPORT, SCMP_SYS(socket), 1,
                     (struct scmp_arg_cmp[]) { SCMP_A0(SCMP_CMP_GE, AF_MAX) });
        }
        if (mdwe) {
                masked(ctx, SCMP_SYS(mmap), 2, PROT_EXEC | PROT_WRITE);
                masked(ctx, SCMP_SYS(mprotect), 2, PROT_EXEC);
                masked(ctx, SCMP_SYS(pkey_mprotect), 2, PROT_EXEC);
                masked(ctx, SCMP_SYS(shmat), 2, SHM_EXEC);
        }
        if (ns) {
                static const unsigned long flags[] = { CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
                                                       CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET };
                rule(ctx, EPERM, SCMP_SYS(setns), 0, NULL);
                rule(ctx, EPERM, SCMP_SYS(clone3), 0, NULL);
                for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
                        masked(ctx, SCMP_SYS(unshare), 0, flags[i]);
                        masked(ctx, SCMP_SYS(clone), 0, flags[i]);
                }
        }
        if (rt)
                for (int p = SCHED_FIFO; p <= SCHED_RR; p++)
                        rule(ctx, EPERM, SCMP_SYS(sched_setscheduler), 1,
                             (struct scmp_arg_cmp[]) { SCMP_A1(SCMP_CMP_EQ, (unsigned) p) });
        if (pers) {
                unsigned long current = (unsigned long) personality(0xffffffff);
                rule(ctx, EPERM, SCMP_SYS(personality), 1,
                     (struct scmp_arg_cmp[]) { SCMP_A0(SCMP_CMP_NE, current) });
        }
        if (suid) {
                /* The mode argument of each chmod call. */
                static const struct { int nr; unsigned arg; } chmods[] = {
                        { SCMP_SYS(chmod), 1 }, { SCMP_SYS(fchmod), 1 }, { SCMP_SYS(fchmodat), 2 },
                };
                for (size_t i = 0; i < sizeof(chmods) / sizeof(chmods[0]); i++) {
                        masked(ctx, chmods[i].nr, chmods[i].arg, S_ISUID);
                        masked(ctx, chmods[i].nr, chmods[i].arg, S_ISGID);
                }
        }
        if (seccomp_load(ctx) < 0)
                die("seccomp_load (RestrictAddressFamilies= and the flag settings)", EINVAL);
        seccomp_release(ctx);

        /* SystemCallFilter= last: it may forbid what the lines above call. */
        if (allow || deny)
                load_syscall_filter(allow ?: deny, !!allow, err);

        execv(argv[optind], argv + optind);
        die(argv[optind], errno);
}
