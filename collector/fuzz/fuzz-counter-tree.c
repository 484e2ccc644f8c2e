/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the whole read of a sysfs counter tree: the fuzz input
 * describes a small tree (names, values, subdirectories, symbolic links,
 * FIFOs), which is built in a temporary directory; then the real reader
 * (source-sysfs.c) reads it, as the collector does every snapshot (the same
 * calls as collector-manager.c), twice
 * with the marks of the first read as the known names of the second, and
 * the model judges and renders the result (high-water marks, the snapshot's
 * text, the state file round trip).
 *
 * Input: entries, each KIND PATH '\0' CONTENT '\0' (the last may lack its
 * NUL), at most 64:
 *   f  a file holding CONTENT (NUL bytes in it written as-is: "%0" is a NUL)
 *   d  a directory
 *   l  a symbolic link to CONTENT
 *   p  a FIFO
 * PATH is 1 to 3 '/'-separated names below the root (never "." or ".."),
 * missing parents are made; an entry whose path cannot be made is skipped.
 *
 * Checked: the reader fails only on memory; every counter, marker and supply
 * it serves came from a file of the tree (nothing outside it is reached: a
 * symlink's target holds values no tree file does); the marks it leaves
 * render to a state file that parses back to the same. */
/* The assertions are the target's checks (and some make calls): never compiled out. */
#undef NDEBUG
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "highwater.h"
#include "macro.h"
#include "source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ENTRIES_MAX 64
#define DEPTH_MAX 3

/* Outside the tree, where fuzzed symlinks may point ("../outside" from the
 * root): a value no file of the tree holds (build_tree() makes sure). */
#define OUTSIDE_NUMBER UINT64_C(9876543210987654321)
#define OUTSIDE_VALUE "9876543210987654321"

static char base[64];
static char root[sizeof(base) + 8];
static bool ready;

static int remove_at(int dir_fd, const char *name, int depth) {
        struct stat st;

        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode) && depth < 8) {
                _cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                char names[ENTRIES_MAX * 2][256];
                size_t n = 0;

                if (fd < 0)
                        return -errno;
                {
                        int fd2 = dup(fd);
                        DIR *d = fd2 >= 0 ? fdopendir(fd2) : NULL;
                        struct dirent *de;

                        if (!d) {
                                if (fd2 >= 0)
                                        close(fd2);
                                return -errno;
                        }
                        while ((de = readdir(d)) && n < ELEMENTSOF(names))
                                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                                        (void) snprintf(names[n++], sizeof(names[0]), "%s", de->d_name);
                        closedir(d);
                }
                for (size_t i = 0; i < n; i++)
                        (void) remove_at(fd, names[i], depth + 1);
                return unlinkat(dir_fd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
        }
        return unlinkat(dir_fd, name, 0) < 0 ? -errno : 0;
}

static void cleanup(void) {
        _cleanup_close_ int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
                (void) remove_at(fd, "tree", 0);
                (void) unlinkat(fd, "outside", 0);
        }
        (void) rmdir(base);
}

static void setup(void) {
        _cleanup_close_ int fd = -EBADF;

        if (ready)
                return;
        /* In memory where there is a tmpfs: fast, and nothing on the disk wears. */
        (void) snprintf(base, sizeof(base), "%s/fuzz-counter-tree-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(base))
                abort();
        (void) snprintf(root, sizeof(root), "%s/tree", base);
        fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                abort();
        {
                _cleanup_close_ int f = openat(fd, "outside", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (f < 0 || write_full(f, OUTSIDE_VALUE "\n", strlen(OUTSIDE_VALUE "\n")) < 0)
                        abort();
        }
        (void) atexit(cleanup);
        ready = true;
}

static bool name_ok(const char *s, size_t len) {
        return len > 0 && len < 256 && !memchr(s, '/', len) && !(len == 1 && s[0] == '.') &&
               !(len == 2 && s[0] == '.' && s[1] == '.');
}

/* Makes one entry below root_fd; parents as directories. */
static void make_entry(int root_fd, char kind, const char *path, const char *content, size_t content_len) {
        _cleanup_close_ int dir_fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
        char name[256];
        const char *p = path;
        int depth = 0;

        for (;;) {
                const char *slash = strchr(p, '/');
                size_t len = slash ? (size_t) (slash - p) : strlen(p);

                if (!name_ok(p, len) || ++depth > DEPTH_MAX || dir_fd < 0)
                        return;
                memcpy(name, p, len);
                name[len] = '\0';
                if (!slash)
                        break;
                (void) mkdirat(dir_fd, name, 0755);
                int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                close(dir_fd);
                dir_fd = fd;
                p = slash + 1;
        }
        switch (kind) {
        case 'f': {
                _cleanup_close_ int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                char buf[4096];
                size_t n = 0;

                if (fd < 0)
                        return;
                for (size_t i = 0; i < content_len && n < sizeof(buf); i++)
                        if (content[i] == '%' && i + 1 < content_len && content[i + 1] == '0')
                                buf[n++] = '\0', i++;
                        else
                                buf[n++] = content[i];
                (void) write_full(fd, buf, n);
                break;
        }
        case 'd':
                (void) mkdirat(dir_fd, name, 0755);
                break;
        case 'l':
                if (symlinkat(content, dir_fd, name) < 0)
                        return; /* an empty or too long target: no such entry */
                break;
        case 'p':
                (void) mkfifoat(dir_fd, name, 0644);
                break;
        }
}

static void build_tree(const uint8_t *data, size_t size) {
        _cleanup_close_ int base_fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC), root_fd = -EBADF;
        const char *p = (const char *) data, *end = p + size;
        char path[1024], content[4096];

        if (base_fd < 0)
                abort();
        (void) remove_at(base_fd, "tree", 0);
        if (mkdirat(base_fd, "tree", 0755) < 0)
                abort();
        root_fd = openat(base_fd, "tree", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0)
                abort();
        for (int i = 0; i < ENTRIES_MAX && p < end; i++) {
                char kind = *p++;
                const char *z = memchr(p, '\0', (size_t) (end - p));
                size_t plen = z ? (size_t) (z - p) : (size_t) (end - p), clen;

                if (plen >= sizeof(path))
                        return;
                memcpy(path, p, plen);
                path[plen] = '\0';
                p += plen + (z ? 1 : 0);
                z = memchr(p, '\0', (size_t) (end - p));
                clen = z ? (size_t) (z - p) : (size_t) (end - p);
                if (clen >= sizeof(content) || memmem(p, clen, OUTSIDE_VALUE, strlen(OUTSIDE_VALUE)))
                        return;
                memcpy(content, p, clen);
                content[clen] = '\0';
                p += clen + (z ? 1 : 0);
                make_entry(root_fd, kind, path, content, clen);
        }
}

static void check_snapshot(const Snapshot *s) {
        for (size_t i = 0; i < s->n_counters; i++)
                assert(s->counters[i].observed != OUTSIDE_NUMBER);
        for (size_t i = 0; i < s->n_markers; i++)
                assert(s->markers[i].observed != OUTSIDE_NUMBER);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const SourceLimits limits = { .max_file_size = 256, .max_files = 128 };
        _cleanup_(source_freep) Source *src = NULL;
        char spec[sizeof(root) + 8];
        _cleanup_(highwater_freep) HighWater *h = NULL, *h2 = NULL;
        _cleanup_free_ char *state = NULL;
        HighWaterClock now = { .boot_usec = 1000000000, .real_usec = UINT64_C(1767225600000000) };
        size_t state_len = 0;

        if (size > 16384)
                return 0;
        setup();
        build_tree(data, size);

        (void) snprintf(spec, sizeof(spec), "sysfs:%s", root);
        if (source_new(spec, &limits, &src) < 0)
                abort();
        assert(highwater_new(-EBADF, &h) >= 0);
        for (int round = 0; round < 2; round++) {
                _cleanup_(snapshot_freep) Snapshot *s = NULL;
                _cleanup_free_ bool *fresh = NULL;

                _cleanup_free_ const char **known = NULL;
                _cleanup_free_ char *text = NULL;
                size_t n_known = 0;

                assert(snapshot_new(&s) >= 0);
                assert(highwater_names(h, &known, &n_known) >= 0);
                assert(source_read(src, known, n_known, s) >= 0);
                check_snapshot(s);
                assert(highwater_apply(h, s, &now, &fresh) >= 0);
                assert(snapshot_format(s, &text) >= 0 && text);
                now.boot_usec += 60000000;
                now.real_usec += 60000000;
        }
        /* The marks render to a state file that parses back to the same file. */
        assert(highwater_format(h, &state, &state_len) >= 0);
        assert(highwater_new(-EBADF, &h2) >= 0);
        assert(highwater_parse(state, state_len, h2) >= 0);
        {
                _cleanup_free_ char *again = NULL;
                size_t again_len = 0;
                assert(highwater_format(h2, &again, &again_len) >= 0);
                assert(again_len == state_len && memcmp(again, state, state_len) == 0);
        }
        return 0;
}
