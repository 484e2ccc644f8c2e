/* SPDX-License-Identifier: Apache-2.0 */
/* The sysfs source: a directory tree, one value per file (ipc/COUNTERS.md).
 *
 * Safety: the root is opened by its configured path at the start of every
 * snapshot (so a driver that recreates its directory is followed), with
 * O_NOFOLLOW, so the root itself may not be a symbolic link; every later open
 * is openat() of a single path component (never containing '/', never "." or
 * "..") relative to an already opened directory, with O_NOFOLLOW, so no
 * symbolic link is followed and nothing outside the root is reached. The depth is fixed by the layout
 * (root/dir/entry/file), so no directory loop can be walked. Every object
 * must be a regular file (or directory) on the root's file system, and a
 * value file must have one name only (no hard link); a file's
 * size is checked with fstat() before reading and the read is bounded too
 * (sysfs reports 4096 for every attribute), and the number of files opened
 * and directory entries listed per snapshot is bounded. */
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "source.h"

struct SysfsSource {
        char *path;
        int root_fd; /* open only during a read */
        dev_t dev;
        SourceLimits limits;
        char *buf; /* limits.max_file_size + 1 */
};

typedef struct ReadContext {
        SysfsSource *src;
        Snapshot *snap;
        unsigned budget; /* opens and directory entries left */
        unsigned floor;  /* of the budget, kept for the directories listed later */
        bool keep;       /* reading a known counter: its errors are never folded */
        /* Known counters, read by name before any directory is listed: the
         * PWG names, the names with a mark (both sorted), the marker indices among those. */
        const char *pwg[16];
        size_t n_pwg;
        const char *const *known;
        size_t n_known;
        uint32_t *known_markers;
        size_t n_known_markers;
        int oom;
} ReadContext;

/* The root by its path; its last component must not be a symbolic link. */
static int open_root(const char *path) {
        int fd;

        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
                int e = errno;
                struct stat lst;
                /* O_NOFOLLOW|O_DIRECTORY on a symlink: ENOTDIR or ELOOP depending on the kernel. */
                if (e == ENOTDIR && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
                        e = ELOOP;
                return -e;
        }
        return fd;
}

int sysfs_source_open(const char *path, const SourceLimits *limits, SysfsSource **ret) {
        _cleanup_(sysfs_source_freep) SysfsSource *s = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n;

        if (limits->max_file_size == 0 || limits->max_file_size > SOURCE_FILE_SIZE_MAX ||
            limits->max_files == 0 || limits->max_files > SOURCE_FILES_MAX)
                return -EINVAL;
        s = calloc(1, sizeof(SysfsSource));
        if (!s)
                return -ENOMEM;
        s->root_fd = -EBADF;
        s->limits = *limits;
        s->buf = malloc(limits->max_file_size + 1);
        if (!s->buf)
                return -ENOMEM;
        s->path = strdup(path);
        if (!s->path)
                return -ENOMEM;
        /* "DIR/" would make the kernel follow a symlinked DIR despite O_NOFOLLOW. */
        n = strlen(s->path);
        while (n > 1 && s->path[n - 1] == '/')
                s->path[--n] = '\0';
        /* Checked now so a wrong --source= fails at start; reopened for every
         * snapshot, so a driver that recreates its directory is followed. */
        fd = open_root(s->path);
        if (fd < 0)
                return fd;
        *ret = TAKE_PTR(s);
        return 0;
}

SysfsSource *sysfs_source_free(SysfsSource *s) {
        if (!s)
                return NULL;
        safe_close(s->root_fd);
        free(s->path);
        free(s->buf);
        free(s);
        return NULL;
}

static void add_error(ReadContext *c, const char *name, const char *reason) {
        if ((c->keep ? snapshot_add_kept_error : snapshot_add_error)(c->snap, name, reason) < 0)
                c->oom = -ENOMEM;
}

_printf_(3, 4) static void add_errorf(ReadContext *c, const char *name, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        if (snapshot_add_errorv(c->snap, c->keep, name, format, ap) < 0)
                c->oom = -ENOMEM;
        va_end(ap);
}

static const char *errno_reason(int e) {
        switch (e) {
        case ENOENT:
                return "missing";
        case ELOOP:
                return "symbolic link, not followed";
        case ENOTDIR:
                return "not a directory";
        case EACCES:
        case EPERM:
                return "permission denied";
        case EISDIR:
                return "a directory, not a value file";
        default:
                return NULL;
        }
}

static void add_errno(ReadContext *c, const char *name, int e) {
        const char *reason = errno_reason(e);

        if (reason)
                add_error(c, name, reason);
        else
                add_errorf(c, name, "cannot open: %s", strerror(e));
}

/* `dir`/`entry` names what was not read, if the budget is spent; `dir` may be NULL. */
static bool spend_entry(ReadContext *c, const char *dir, const char *entry) {
        char reason[96], name[320];

        if (c->budget > c->floor) {
                c->budget--;
                return true;
        }
        (void) snprintf(reason, sizeof(reason), "not read: limit of %u files per snapshot reached",
                        c->src->limits.max_files);
        if (dir)
                (void) snprintf(name, sizeof(name), "%s/%s", dir, entry);
        add_error(c, dir ? name : entry, reason);
        return false;
}

static bool spend(ReadContext *c, const char *name) {
        return spend_entry(c, NULL, name);
}

/* Opens a subdirectory of `dir_fd`; on failure records an error for `errname`. */
static int open_dir(ReadContext *c, int dir_fd, const char *name, const char *errname) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (!spend(c, errname))
                return -E2BIG;
        fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
                int e = errno;
                /* O_NOFOLLOW|O_DIRECTORY on a symlink: ENOTDIR or ELOOP depending on the kernel. */
                struct stat lst;
                if (fstatat(dir_fd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode))
                        e = ELOOP;
                add_errno(c, errname, e);
                return -e;
        }
        if (fstat(fd, &st) < 0) {
                add_errno(c, errname, errno);
                return -EIO;
        }
        if (st.st_dev != c->src->dev) {
                add_error(c, errname, "on another file system (mount point), not read");
                return -EXDEV;
        }
        return TAKE_FD(fd);
}

/* Reads one value file into the source's buffer; *ret_len bytes, NUL-terminated. */
static int read_value(ReadContext *c, int dir_fd, const char *name, const char *errname, size_t *ret_len) {
        _cleanup_close_ int fd = -EBADF;
        size_t max = c->src->limits.max_file_size, got = 0;
        struct stat st;

        if (!spend(c, errname))
                return -E2BIG;
        /* O_NONBLOCK: opening a FIFO planted in the tree must not hang the daemon. */
        fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0) {
                int e = errno;
                add_errno(c, errname, e);
                return -e;
        }
        if (fstat(fd, &st) < 0) {
                add_errno(c, errname, errno);
                return -EIO;
        }
        if (!S_ISREG(st.st_mode)) {
                add_error(c, errname, S_ISDIR(st.st_mode) ? "a directory, not a value file" : "not a regular file");
                return -EBADF;
        }
        if (st.st_dev != c->src->dev) {
                add_error(c, errname, "on another file system (mount point), not read");
                return -EXDEV;
        }
        /* sysfs has no hard links; one in the tree may name any file of the root's file system. */
        if (st.st_nlink > 1) {
                add_errorf(c, errname, "hard link (%llu names), not read", (unsigned long long) st.st_nlink);
                return -EMLINK;
        }
        if ((uint64_t) st.st_size > max) {
                add_errorf(c, errname, "file of %llu bytes exceeds the limit of %zu, not read",
                           (unsigned long long) st.st_size, max);
                return -EFBIG;
        }
        /* The size may lie (sysfs says 4096) or change under us: bound the read itself. */
        for (;;) {
                ssize_t n = read(fd, c->src->buf + got, max + 1 - got);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        add_errorf(c, errname, "read failed: %s", strerror(errno));
                        return -EIO;
                }
                if (n == 0)
                        break;
                got += (size_t) n;
                if (got > max) {
                        add_errorf(c, errname, "value longer than the limit of %zu bytes", max);
                        return -EFBIG;
                }
        }
        c->src->buf[got] = '\0';
        *ret_len = got;
        return 0;
}

static void parse_error(ReadContext *c, const char *errname, const char *reason) {
        add_error(c, errname, reason ?: "invalid value");
}

static void read_identity(ReadContext *c) {
        _cleanup_close_ int fd = -EBADF;
        const char *reason = NULL;
        size_t len;
        char *s;

        fd = open_dir(c, c->src->root_fd, "identity", "identity");
        if (fd < 0)
                return;
        if (read_value(c, fd, "serial", "identity/serial", &len) >= 0) {
                if (counter_parse_serial(c->src->buf, len, &s, &reason) < 0)
                        parse_error(c, "identity/serial", reason);
                else
                        c->snap->serial = s;
        }
        if (read_value(c, fd, "model", "identity/model", &len) >= 0) {
                if (counter_parse_text(c->src->buf, len, COUNTER_TEXT_MAX, &s, &reason) < 0)
                        parse_error(c, "identity/model", reason);
                else
                        c->snap->model = s;
        }
}

static int cmp_name(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

static bool is_pwg(const ReadContext *c, const char *entry) {
        return bsearch(&entry, c->pwg, c->n_pwg, sizeof(char *), cmp_name);
}

static bool is_known_billing(const ReadContext *c, const char *entry) {
        return (c->n_known > 0 && bsearch(&entry, c->known, c->n_known, sizeof(char *), cmp_name)) || is_pwg(c, entry);
}

static bool is_known_marker(const ReadContext *c, const char *entry) {
        uint32_t index;

        return c->n_known_markers > 0 && counter_parse_index(entry, strlen(entry), &index, NULL) >= 0 &&
               bsearch(&index, c->known_markers, c->n_known_markers, sizeof(uint32_t), cmp_u32);
}

/* Calls `fn` for each entry of the open directory `fd` (taken), named `name`,
 * bounded by the budget; entries that `skip` says were read already are passed over. */
static void for_each_entry(ReadContext *c, int fd, const char *name, bool (*skip)(const ReadContext *c, const char *entry),
                           void (*fn)(ReadContext *c, int dir_fd, const char *entry)) {
        struct dirent *de;
        DIR *d;

        d = fdopendir(fd);
        if (!d) {
                add_errno(c, name, errno);
                safe_close(fd);
                return;
        }
        while ((de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (skip && skip(c, de->d_name))
                        continue;
                if (!spend_entry(c, name, de->d_name))
                        break;
                fn(c, dirfd(d), de->d_name);
                if (c->oom)
                        break;
        }
        closedir(d);
}

/* Reads `entry` of `dir_fd` as its listing would, if it exists; an absent
 * known name costs nothing (their number is bounded by the marks kept). One
 * the model has no room for any more is an error, not read. */
static void read_known(ReadContext *c, int dir_fd, const char *dir, const char *entry, const char *errname, bool full,
                       void (*fn)(ReadContext *c, int dir_fd, const char *entry)) {
        struct stat st;

        if (dir_fd < 0 || c->oom || fstatat(dir_fd, entry, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return;
        if (full)
                add_error(c, errname, streq(dir, "billing") ? "not read: too many billing counters" :
                                                              "not read: too many markers");
        else if (spend_entry(c, dir, entry))
                fn(c, dir_fd, entry);
}

static void read_billing_entry(ReadContext *c, int dir_fd, const char *entry) {
        const char *reason = NULL;
        uint64_t v;
        size_t len;
        int r;

        if (!billing_counter_unit(entry)) {
                char errname[320];
                (void) snprintf(errname, sizeof(errname), "billing/%s", entry);
                add_error(c, errname, "not a counter name: letters and digits ending in Impressions, Sheets or Pages");
                return;
        }
        if (read_value(c, dir_fd, entry, entry, &len) < 0)
                return;
        if (counter_parse_u64(c->src->buf, len, &v, &reason) < 0) {
                parse_error(c, entry, reason);
                return;
        }
        r = snapshot_add_counter(c->snap, entry, v);
        if (r == -ENOMEM)
                c->oom = r;
        else if (r == -E2BIG)
                add_error(c, entry, "not read: too many billing counters");
}

static int open_indexed(ReadContext *c, int dir_fd, const char *kind, const char *entry, uint32_t *ret_index) {
        const char *reason = NULL;
        char errname[320];

        (void) snprintf(errname, sizeof(errname), "%s/%s", kind, entry);
        if (counter_parse_index(entry, strlen(entry), ret_index, &reason) < 0) {
                add_errorf(c, errname, "not an index: %s", reason);
                return -EINVAL;
        }
        return open_dir(c, dir_fd, entry, errname);
}

static void read_marker_entry(ReadContext *c, int dir_fd, const char *entry) {
        _cleanup_close_ int fd = -EBADF;
        char unit[COUNTER_TOKEN_MAX + 1], en_life[128], en_unit[128];
        const char *reason = NULL;
        uint32_t index;
        uint64_t life;
        size_t len;
        bool ok = true;
        int r;

        fd = open_indexed(c, dir_fd, "markers", entry, &index);
        if (fd < 0)
                return;
        (void) snprintf(en_life, sizeof(en_life), "markers/%u/life_count", index);
        (void) snprintf(en_unit, sizeof(en_unit), "markers/%u/counter_unit", index);

        if (read_value(c, fd, "life_count", en_life, &len) < 0)
                ok = false;
        else if (counter_parse_u64(c->src->buf, len, &life, &reason) < 0) {
                parse_error(c, en_life, reason);
                ok = false;
        }
        if (read_value(c, fd, "counter_unit", en_unit, &len) < 0)
                ok = false;
        else if (counter_parse_token(c->src->buf, len, unit, &reason) < 0) {
                parse_error(c, en_unit, reason);
                ok = false;
        } else if (!marker_counter_unit_is_valid(unit)) {
                parse_error(c, en_unit, "not a PrtMarkerCounterUnitTC label (RFC 3805)");
                ok = false;
        }
        if (!ok)
                return;
        r = snapshot_add_marker(c->snap, index, unit, life);
        if (r == -ENOMEM)
                c->oom = r;
        else if (r == -EEXIST)
                add_error(c, en_life, "not read: a second entry for this marker index");
        else if (r < 0)
                add_error(c, en_life, "not read: too many markers");
}

typedef enum SupplyField { FIELD_TOKEN, FIELD_TEXT, FIELD_LEVEL, FIELD_MAX } SupplyField;

static bool read_supply_field(ReadContext *c, int fd, uint32_t index, const char *file, SupplyField kind,
                              bool optional, Supply *s) {
        const char *reason = NULL;
        char errname[320];
        size_t len;
        int r;

        (void) snprintf(errname, sizeof(errname), "supplies/%u/%s", index, file);
        if (optional && faccessat(fd, file, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
                if (streq(file, "colorant")) {
                        s->colorant = strdup("");
                        if (!s->colorant)
                                c->oom = -ENOMEM;
                }
                return true;
        }
        if (read_value(c, fd, file, errname, &len) < 0)
                return false;
        switch (kind) {
        case FIELD_TOKEN: {
                char *dest = streq(file, "type") ? s->type : streq(file, "class") ? s->class : s->unit;
                bool (*valid)(const char *) = streq(file, "type") ? supply_type_is_valid :
                                              streq(file, "class") ? supply_class_is_valid : supply_unit_is_valid;
                r = counter_parse_token(c->src->buf, len, dest, &reason);
                if (r >= 0 && !valid(dest)) {
                        r = -EINVAL;
                        reason = "not a label of its RFC 3805 textual convention";
                }
                break;
        }
        case FIELD_TEXT:
                r = counter_parse_text(c->src->buf, len, COUNTER_TEXT_MAX, streq(file, "description") ? &s->description : &s->colorant, &reason);
                break;
        case FIELD_LEVEL:
                r = counter_parse_level(c->src->buf, len, false, &s->level, &reason);
                break;
        case FIELD_MAX:
                r = counter_parse_level(c->src->buf, len, true, &s->max_capacity, &reason);
                break;
        default:
                r = -EINVAL;
        }
        if (r == -ENOMEM)
                c->oom = r;
        if (r < 0) {
                parse_error(c, errname, reason);
                return false;
        }
        return true;
}

static void read_supply_entry(ReadContext *c, int dir_fd, const char *entry) {
        static const struct {
                const char *file;
                SupplyField kind;
                bool optional;
        } fields[] = {
                { "type", FIELD_TOKEN, false },        { "class", FIELD_TOKEN, false },
                { "description", FIELD_TEXT, false },  { "colorant", FIELD_TEXT, true },
                { "unit", FIELD_TOKEN, false },        { "level", FIELD_LEVEL, false },
                { "max_capacity", FIELD_MAX, false },
        };
        _cleanup_close_ int fd = -EBADF;
        Supply s = {};
        bool ok = true;
        int r;

        fd = open_indexed(c, dir_fd, "supplies", entry, &s.index);
        if (fd < 0)
                return;
        for (size_t i = 0; i < ELEMENTSOF(fields) && !c->oom; i++)
                if (!read_supply_field(c, fd, s.index, fields[i].file, fields[i].kind, fields[i].optional, &s))
                        ok = false;
        /* A level above a known capacity is a lying source, not a full tank. */
        if (ok && s.level.state == LEVEL_VALUE && s.max_capacity.state == LEVEL_VALUE &&
            s.level.value > s.max_capacity.value) {
                char errname[320];
                (void) snprintf(errname, sizeof(errname), "supplies/%u/level", s.index);
                add_error(c, errname, "level above max_capacity");
                ok = false;
        }
        if (!ok || c->oom) {
                supply_done(&s);
                return;
        }
        r = snapshot_add_supply(c->snap, &s);
        if (r < 0) {
                supply_done(&s);
                if (r == -ENOMEM)
                        c->oom = r;
                else if (r == -EEXIST) {
                        char errname[320];
                        (void) snprintf(errname, sizeof(errname), "supplies/%u", s.index);
                        add_error(c, errname, "not read: a second entry for this supply index");
                } else
                        add_error(c, "supplies", "not read: too many supplies");
        }
}

/* "markers/N/life_count" → N. */
static bool marker_index_of(const char *k, uint32_t *ret) {
        const char *slash;

        if (strncmp(k, "markers/", 8) != 0)
                return false;
        slash = strchr(k + 8, '/');
        return slash && streq(slash, "/life_count") &&
               counter_parse_index(k + 8, (size_t) (slash - k - 8), ret, NULL) >= 0;
}

/* The PWG names, sorted; the marker indices among `known` ("markers/N/life_count"), sorted. */
static int collect_known(ReadContext *c, const char *const *known, size_t n_known) {
        size_t m = 0;

        c->n_pwg = billing_counter_names_count;
        assert(c->n_pwg <= ELEMENTSOF(c->pwg));
        memcpy(c->pwg, billing_counter_names, c->n_pwg * sizeof(char *));
        qsort(c->pwg, c->n_pwg, sizeof(char *), cmp_name);
        c->known = known;
        c->n_known = n_known;
        c->known_markers = calloc(n_known ?: 1, sizeof(uint32_t));
        if (!c->known_markers)
                return -ENOMEM;
        for (size_t i = 0; i < n_known; i++) {
                assert(i == 0 || strcmp(known[i - 1], known[i]) < 0);
                if (marker_index_of(known[i], &c->known_markers[m]))
                        m++;
        }
        qsort(c->known_markers, m, sizeof(uint32_t), cmp_u32);
        c->n_known_markers = m; /* distinct: each comes from one distinct name */
        return 0;
}

/* What the directories listed later may still need at most (the supplies
 * and the billing counters not read yet), scaled down as the budget is below
 * what the largest tree needs: kept from the one listed now. */
static unsigned reserve(const ReadContext *c, bool supplies) {
        uint64_t r = 2U * (SNAPSHOT_COUNTERS_MAX - (unsigned) MIN(c->snap->n_counters, SNAPSHOT_COUNTERS_MAX));
        if (supplies)
                r += 9U * SNAPSHOT_SUPPLIES_MAX;
        if (c->src->limits.max_files < SOURCE_FILES_FULL_TREE)
                r = r * c->src->limits.max_files / SOURCE_FILES_FULL_TREE;
        return (unsigned) MIN(r, (uint64_t) c->budget);
}

int sysfs_source_read(SysfsSource *s, const char *const *known, size_t n_known, Snapshot *snap) {
        ReadContext c = { .src = s, .snap = snap, .budget = s->limits.max_files };
        int billing_fd = -EBADF, markers_fd = -EBADF, supplies_fd = -EBADF;
        char index[16];
        struct stat st;
        int r;

        /* The root is the administrator's configured path: the one open that may resolve a full path. */
        s->root_fd = open_root(s->path);
        if (s->root_fd < 0) {
                add_errno(&c, "root", -s->root_fd);
                s->root_fd = -EBADF;
                return c.oom;
        }
        if (fstat(s->root_fd, &st) < 0) {
                add_errno(&c, "root", errno);
                s->root_fd = safe_close(s->root_fd);
                return c.oom;
        }
        s->dev = st.st_dev;
        c.budget--;
        r = collect_known(&c, known, n_known);
        if (r < 0) {
                c.oom = r;
                goto finish;
        }

        read_identity(&c);
        billing_fd = open_dir(&c, s->root_fd, "billing", "billing");
        markers_fd = open_dir(&c, s->root_fd, "markers", "markers");
        supplies_fd = open_dir(&c, s->root_fd, "supplies", "supplies");

        /* Known counters first, by name (the PWG ones before those with a mark), so
         * whatever else sits beside them cannot crowd them out. */
        c.keep = true;
        for (size_t i = 0; i < c.n_pwg; i++)
                read_known(&c, billing_fd, "billing", c.pwg[i], c.pwg[i], snap->n_counters >= SNAPSHOT_COUNTERS_MAX,
                           read_billing_entry);
        for (size_t i = 0; i < c.n_known; i++)
                if (!strchr(c.known[i], '/') && !is_pwg(&c, c.known[i]))
                        read_known(&c, billing_fd, "billing", c.known[i], c.known[i],
                                   snap->n_counters >= SNAPSHOT_COUNTERS_MAX, read_billing_entry);
        for (size_t i = 0; i < c.n_known_markers; i++) {
                char errname[64];
                (void) snprintf(index, sizeof(index), "%" PRIu32, c.known_markers[i]);
                (void) snprintf(errname, sizeof(errname), "markers/%s/life_count", index);
                read_known(&c, markers_fd, "markers", index, errname, snap->n_markers >= SNAPSHOT_MARKERS_MAX,
                           read_marker_entry);
        }
        c.keep = false;

        /* Then the listings; each leaves what the ones after it may need. */
        if (markers_fd >= 0 && !c.oom) {
                c.floor = reserve(&c, true);
                for_each_entry(&c, TAKE_FD(markers_fd), "markers", is_known_marker, read_marker_entry);
        }
        if (supplies_fd >= 0 && !c.oom) {
                c.floor = reserve(&c, false);
                for_each_entry(&c, TAKE_FD(supplies_fd), "supplies", NULL, read_supply_entry);
        }
        if (billing_fd >= 0 && !c.oom) {
                c.floor = 0;
                for_each_entry(&c, TAKE_FD(billing_fd), "billing", is_known_billing, read_billing_entry);
        }
finish:
        safe_close(billing_fd);
        safe_close(markers_fd);
        safe_close(supplies_fd);
        free(c.known_markers);
        snap->files_read = s->limits.max_files - c.budget;
        s->root_fd = safe_close(s->root_fd);
        return c.oom;
}
