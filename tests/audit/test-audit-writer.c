/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the log writer with real failures (no mocks), meant to run
 * under ASan too:
 *   - audit_writer_open fails at each step in turn (a key of the wrong epoch,
 *     a state "directory" that is not one, a segment that cannot be created,
 *     an index that cannot be opened, a first record over the file-size limit,
 *     the index of an existing log that cannot be opened): the key and its
 *     file stay the caller's, usable, and are freed and closed once, by it;
 *   - a failure after a record was written (the removal of segments a witness
 *     record covers) does not fail the append that wrote it: it is reported by
 *     audit_writer_take_error();
 *   - RLIMIT_FSIZE below the segment size: the writer moves on to new segments
 *     (EFBIG, SIGXFSZ ignored) and every append succeeds. */
#include <fcntl.h>
#include <inttypes.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log-store.h"
#include "macro.h"

#define CHECK(x)                                                                                \
        do {                                                                                    \
                if (!(x)) {                                                                     \
                        fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #x);        \
                        exit(1);                                                                \
                }                                                                               \
        } while (0)

static char base[] = "/tmp/test-audit-writer-XXXXXX";
static unsigned n_dirs;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static int new_dir(void) {
        char path[256];
        int fd;

        (void) snprintf(path, sizeof(path), "%s/%u", base, n_dirs++);
        CHECK(mkdir(path, 0700) == 0);
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CHECK(fd >= 0);
        return fd;
}

/* A key of `epoch` and a key file holding it. */
static void new_key(int dir_fd, uint64_t epoch, AuditSealKey **ret_key, int *ret_fd) {
        uint8_t raw[AUDIT_KEY_SIZE] = { 1, 2, 3 };

        CHECK(audit_seal_key_new(epoch, raw, ret_key) >= 0);
        *ret_fd = openat(dir_fd, AUDIT_KEY_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        CHECK(*ret_fd >= 0);
        CHECK(audit_key_file_write(*ret_fd, *ret_key) >= 0);
}

static void scan(int dir_fd, AuditScanResult *ret) {
        AuditScanOptions o = {};

        CHECK(audit_log_scan(dir_fd, &o, ret) >= 0);
        if (ret->broken)
                fprintf(stderr, "broken at seq %" PRIu64 " in %s: %s\n", ret->violation.seq, ret->violation.file, ret->violation.what);
        CHECK(!ret->broken);
}

static char vkey_text[256];
static AuditWriterOptions default_options = { .segment_size = 8U << 20, .origin = "test", .vkey = vkey_text };

/* A checkpoint verifier key for the start record, as setup-keys makes one. */
static void make_vkey(void) {
        uint8_t priv[32] = { 7 }, pub[32];

        CHECK(checkpoint_public_key(priv, pub) >= 0);
        CHECK(checkpoint_vkey_format("test", pub, vkey_text, sizeof(vkey_text)) >= 0);
}

/* Opens a writer that must fail with `error`; the key and its fd must still be ours. */
static void open_fails(int dir_fd, AuditSealKey *key, int key_fd, int error) {
        AuditWriter *w = NULL;
        AuditScanResult s = { .next_seq = 1 };

        if (fcntl(dir_fd, F_GETFD) >= 0 && audit_log_scan(dir_fd, &(AuditScanOptions) {}, &s) < 0)
                s = (AuditScanResult) { .next_seq = 1 };
        CHECK(audit_writer_open(dir_fd, &s, key, key_fd, &default_options, &w) == error);
        CHECK(!w);
        CHECK(fcntl(key_fd, F_GETFD) >= 0);     /* not closed behind our back */
        (void) audit_seal_key_epoch(key);       /* not freed behind our back (ASan) */
        audit_seal_key_free(key);
        safe_close(key_fd);
}

static void set_fsize(rlim_t cur) {
        struct rlimit rl;

        CHECK(getrlimit(RLIMIT_FSIZE, &rl) == 0);
        rl.rlim_cur = cur == RLIM_INFINITY || cur > rl.rlim_max ? rl.rlim_max : cur;
        CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
}

static int append_one(AuditWriter *w, size_t payload_len) {
        static uint8_t payload[4096];
        AuditRecordFields f = { .kind = AUDIT_KIND_DATA, .direction = AUDIT_DIRECTION_INBOUND, .type = "test" };

        memset(payload, 'x', sizeof(payload));
        f.payload = payload;
        f.payload_len = payload_len;
        return audit_writer_append(w, &f, NULL, NULL);
}

/* A witness record covering every record so far, as the daemon appends for an
 * acknowledgement (the writer does not check the tag): retention may then remove them. */
static void witness_all(AuditWriter *w) {
        uint8_t root[AUDIT_HASH_SIZE];
        char *text = NULL;

        CHECK(audit_writer_root(w, root) >= 0);
        CHECK(audit_witness_payload("customer", audit_writer_next_seq(w) - 1, root, NULL, 0,
                                    (const char *const[]) { "tag", "00", NULL }, &text) >= 0);
        AuditRecordFields f = { .kind = AUDIT_KIND_WITNESS, .direction = AUDIT_DIRECTION_INTERNAL,
                                .type = "audit.witness", .payload = (const uint8_t *) text, .payload_len = strlen(text) };
        CHECK(audit_writer_append(w, &f, NULL, NULL) == 0);
        free(text);
}

static size_t n_segments(int dir_fd, AuditSegmentInfo **ret) {
        AuditSegmentInfo *l = NULL;
        size_t n = 0;

        CHECK(audit_segments_list(dir_fd, &l, &n) >= 0);
        if (ret)
                *ret = l;
        else
                free(l);
        return n;
}

static void test_open_failures(void) {
        AuditSealKey *key;
        int d, key_fd, file_fd;

        /* 1. A key of another epoch than the log's. */
        d = new_dir();
        new_key(d, 1, &key, &key_fd);
        open_fails(d, key, key_fd, -EKEYREJECTED);
        safe_close(d);

        /* 2. The "directory" is a file: the segments cannot be listed. */
        d = new_dir();
        new_key(d, 0, &key, &key_fd);
        file_fd = openat(d, "not-a-dir", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        CHECK(file_fd >= 0);
        open_fails(file_fd, key, key_fd, -ENOTDIR);
        safe_close(file_fd);
        safe_close(d);

        /* 3. The first segment cannot be created (its temporary name is taken by a directory). */
        d = new_dir();
        new_key(d, 0, &key, &key_fd);
        CHECK(mkdirat(d, "0000000000000001.seg.tmp", 0700) == 0);
        open_fails(d, key, key_fd, -EEXIST);
        safe_close(d);

        /* 4. The first segment's index cannot be opened (a directory in its place). */
        d = new_dir();
        new_key(d, 0, &key, &key_fd);
        CHECK(mkdirat(d, "0000000000000001.idx", 0700) == 0);
        open_fails(d, key, key_fd, -EISDIR);
        safe_close(d);

        /* 5. The start record does not fit under the file-size limit. */
        d = new_dir();
        new_key(d, 0, &key, &key_fd);
        set_fsize(100);
        open_fails(d, key, key_fd, -EFBIG);
        set_fsize(RLIM_INFINITY);
        safe_close(d);

        /* 6. An existing log whose last index cannot be opened. */
        {
                AuditWriter *w = NULL;
                AuditScanResult s;

                d = new_dir();
                new_key(d, 0, &key, &key_fd);
                scan(d, &s);
                CHECK(audit_writer_open(d, &s, key, key_fd, &default_options, &w) == 0);
                CHECK(append_one(w, 100) == 0);
                CHECK(audit_writer_sync(w) == 0);
                audit_writer_free(w); /* frees the key and closes its fd: they were the writer's */
                CHECK(unlinkat(d, "0000000000000001.idx", 0) == 0);
                CHECK(mkdirat(d, "0000000000000001.idx", 0700) == 0);
                key_fd = openat(d, AUDIT_KEY_FILE, O_RDWR | O_CLOEXEC);
                CHECK(key_fd >= 0);
                CHECK(audit_key_file_read(key_fd, &key) >= 0);
                open_fails(d, key, key_fd, -EISDIR);
                safe_close(d);
        }
        printf("ok - audit_writer_open failing at each step leaves the key and its fd to the caller\n");
}

static void test_error_after_write(void) {
        AuditWriterOptions o = { .segment_size = 4096, .retention_size = 1, .origin = "test", .vkey = vkey_text };
        AuditSegmentInfo *segs = NULL;
        AuditWriter *w = NULL;
        AuditSealKey *key;
        AuditScanResult s;
        uint64_t before;
        int d, key_fd, e = 0;

        d = new_dir();
        new_key(d, 0, &key, &key_fd);
        scan(d, &s);
        CHECK(audit_writer_open(d, &s, key, key_fd, &o, &w) == 0);
        while (n_segments(d, NULL) < 2)
                CHECK(append_one(w, 1000) == 0);
        CHECK(audit_writer_take_error(w) == 0);
        /* Retention removes only what a witness covers: cover everything so far,
         * the segment being written included. */
        witness_all(w);
        CHECK(audit_writer_take_error(w) == 0);
        CHECK(n_segments(d, NULL) == 2);

        /* The segment being written becomes, at the next roll-over, the first one
         * retention keeps; a directory in its place makes reading its header fail. */
        CHECK(n_segments(d, &segs) == 2);
        CHECK(renameat(d, segs[1].name, d, "moved-aside") == 0);
        CHECK(mkdirat(d, segs[1].name, 0700) == 0);
        for (int i = 0; i < 20 && e == 0; i++) {
                before = audit_writer_next_seq(w);
                CHECK(append_one(w, 1000) == 0); /* written: never reported as failed */
                CHECK(audit_writer_next_seq(w) == before + 1);
                e = audit_writer_take_error(w);
        }
        CHECK(e == -EISDIR);
        CHECK(audit_writer_take_error(w) == 0);
        CHECK(audit_writer_sync(w) == 0);
        audit_writer_free(w);
        free(segs);
        safe_close(d);
        printf("ok - a retention failure after the write is not the append's error (take_error: %s)\n", strerror(-e));
}

static void test_file_size_limit(void) {
        AuditWriter *w = NULL;
        AuditSealKey *key;
        AuditScanResult s;
        uint64_t last;
        size_t n;
        int d, key_fd;

        d = new_dir();
        new_key(d, 0, &key, &key_fd);
        scan(d, &s);
        CHECK(audit_writer_open(d, &s, key, key_fd, &default_options, &w) == 0);
        set_fsize(16384);
        for (int i = 0; i < 100; i++) {
                CHECK(append_one(w, 1000) == 0);
                CHECK(audit_writer_sync(w) == 0);
        }
        /* One record larger than the limit: a clear error, nothing written. */
        last = audit_writer_next_seq(w);
        {
                static uint8_t big[20000];
                AuditRecordFields f = { .kind = AUDIT_KIND_DATA, .direction = AUDIT_DIRECTION_INBOUND, .type = "test",
                                        .payload = big, .payload_len = sizeof(big) };
                CHECK(audit_writer_append(w, &f, NULL, NULL) == -EFBIG);
        }
        CHECK(audit_writer_next_seq(w) == last);
        CHECK(append_one(w, 1000) == 0);
        CHECK(audit_writer_sync(w) == 0);
        set_fsize(RLIM_INFINITY);
        last = audit_writer_next_seq(w) - 1;
        audit_writer_free(w);
        n = n_segments(d, NULL);
        CHECK(n >= 7);
        scan(d, &s);
        CHECK(s.next_seq - 1 == last);
        safe_close(d);
        printf("ok - under RLIMIT_FSIZE=16K, 101 appends of 1000 bytes went on in %zu segments; a record over the "
               "limit is refused with EFBIG; the log verifies\n", n);
}

int main(int argc, char *argv[]) {
        /* As the daemon does: the limit is an error to handle, not a signal that kills. */
        (void) signal(SIGXFSZ, SIG_IGN);
        CHECK(mkdtemp(base));
        make_vkey();
        /* One test by name (open, after-write, fsize), or all. */
        if (argc < 2 || streq(argv[1], "open"))
                test_open_failures();
        if (argc < 2 || streq(argv[1], "after-write"))
                test_error_after_write();
        if (argc < 2 || streq(argv[1], "fsize"))
                test_file_size_limit();
        (void) nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return 0;
}
