/* SPDX-License-Identifier: Apache-2.0 */
/* Per-segment index files (their format is in log-store.h): each record's chain
 * hash and offset, and the daemon's own marks against a cut log. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "fileio.h"
#include "log-index.h"
#include "macro.h"

#define INDEX_MAGIC "CHAUDIDX"

static void index_name(uint64_t first_seq, char ret[AUDIT_FILE_NAME_MAX]) {
        (void) snprintf(ret, AUDIT_FILE_NAME_MAX, "%016" PRIx64 AUDIT_INDEX_SUFFIX, first_seq);
}

int audit_index_header_write(int fd, const AuditIndexHeader *h) {
        uint8_t b[AUDIT_INDEX_HEADER_SIZE] = {};

        memcpy(b, INDEX_MAGIC, 8);
        audit_put_le64(b + 8, h->first_seq);
        audit_put_le64(b + 16, h->synced_through);
        audit_put_le64(b + 24, h->next_segment);
        audit_put_le32(b + 60, crc32c(0, b, 60));
        return audit_pwrite_all(fd, b, sizeof(b), 0);
}

/* -ENODATA: no header yet; -EBADMSG: not an index header. */
static int index_header_read(int fd, AuditIndexHeader *ret) {
        uint8_t b[AUDIT_INDEX_HEADER_SIZE];
        ssize_t n = pread(fd, b, sizeof(b), 0);

        if (n < 0)
                return negative_errno();
        if (n == 0)
                return -ENODATA;
        if (n != (ssize_t) sizeof(b) || memcmp(b, INDEX_MAGIC, 8) != 0 || audit_le32(b + 60) != crc32c(0, b, 60))
                return -EBADMSG;
        *ret = (AuditIndexHeader) { .first_seq = audit_le64(b + 8), .synced_through = audit_le64(b + 16),
                               .next_segment = audit_le64(b + 24) };
        return 0;
}

/* Opens (or creates, with a header saying nothing is synced yet) the index of a segment. */
int audit_index_open(int dir_fd, uint64_t first_seq, bool create, int *ret_fd) {
        char name[AUDIT_FILE_NAME_MAX];
        _cleanup_close_ int fd = -EBADF;
        AuditIndexHeader h;
        int r;

        index_name(first_seq, name);
        fd = openat(dir_fd, name, (create ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (fd < 0)
                return negative_errno();
        if (create) {
                r = index_header_read(fd, &h);
                if (r == -ENODATA)
                        r = audit_index_header_write(fd, &(AuditIndexHeader) { .first_seq = first_seq,
                                                                    .synced_through = first_seq - 1 });
                else if (r == -EBADMSG)
                        r = 0; /* left as it is: audit_log_tail_check() reports it */
                if (r < 0)
                        return r;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static uint64_t index_pos(uint64_t first_seq, uint64_t seq) {
        return AUDIT_INDEX_HEADER_SIZE + (seq - first_seq) * AUDIT_INDEX_ENTRY_SIZE;
}

int audit_index_entry_update(int fd, uint64_t first_seq, uint64_t seq, const uint8_t hash[AUDIT_HASH_SIZE],
                              uint64_t offset) {
        uint8_t e[AUDIT_INDEX_ENTRY_SIZE], cur[AUDIT_INDEX_ENTRY_SIZE];
        uint64_t pos = index_pos(first_seq, seq);

        memcpy(e, hash, AUDIT_HASH_SIZE);
        audit_put_le64(e + AUDIT_HASH_SIZE, offset);
        if (pread(fd, cur, sizeof(cur), (off_t) pos) == (ssize_t) sizeof(cur) && memcmp(cur, e, sizeof(e)) == 0)
                return 0;
        return audit_pwrite_all(fd, e, sizeof(e), pos);
}

int audit_index_entry_read(int fd, uint64_t first_seq, uint64_t seq, uint8_t ret_hash[AUDIT_HASH_SIZE],
                            uint64_t *ret_offset) {
        uint8_t e[AUDIT_INDEX_ENTRY_SIZE];
        ssize_t n;

        if (seq < first_seq)
                return -EINVAL;
        n = pread(fd, e, sizeof(e), (off_t) index_pos(first_seq, seq));
        if (n < 0)
                return negative_errno();
        if (n != (ssize_t) sizeof(e))
                return -ENOENT;
        if (ret_hash)
                memcpy(ret_hash, e, AUDIT_HASH_SIZE);
        if (ret_offset)
                *ret_offset = audit_le64(e + AUDIT_HASH_SIZE);
        return 0;
}

int audit_index_note(AuditIndexCursor *c, int dir_fd, const AuditSegmentInfo *seg, const AuditRecord *rec,
                     uint64_t offset) {
        int r;

        if (c->fd < 0 || c->first_seq != seg->first_seq) {
                c->fd = safe_close(c->fd);
                r = audit_index_open(dir_fd, seg->first_seq, true, &c->fd);
                if (r < 0)
                        return r;
                c->first_seq = seg->first_seq;
        }
        return audit_index_entry_update(c->fd, seg->first_seq, rec->seq, rec->hash, offset);
}

void audit_index_cursor_done(AuditIndexCursor *c) {
        c->fd = safe_close(c->fd);
}

/* The first sequence numbers of the index files in dir_fd ("<16 hex digits>.idx"). */
static int index_files_list(int dir_fd, uint64_t **ret, size_t *ret_n) {
        _cleanup_free_ uint64_t *list = NULL;
        size_t n = 0, allocated = 0;
        struct dirent *de;
        DIR *d;
        int r;

        r = opendir_at(dir_fd, &d);
        if (r < 0)
                return r;
        while ((de = readdir(d))) {
                char hex[17];
                uint64_t first;

                if (strlen(de->d_name) != 16 + strlen(AUDIT_INDEX_SUFFIX) || !streq(de->d_name + 16, AUDIT_INDEX_SUFFIX))
                        continue;
                memcpy(hex, de->d_name, 16);
                hex[16] = '\0';
                if (sscanf(hex, "%16" SCNx64, &first) != 1)
                        continue;
                if (n == allocated) {
                        size_t na = allocated ? allocated * 2 : 16;
                        uint64_t *nl = realloc(list, na * sizeof(*nl));
                        if (!nl) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        list = nl;
                        allocated = na;
                }
                list[n++] = first;
        }
        closedir(d);
        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

/* Index files whose segment is gone (removed by retention, or a log started afresh). */
int audit_index_prune(int dir_fd) {
        _cleanup_free_ AuditSegmentInfo *segs = NULL;
        _cleanup_free_ uint64_t *idx = NULL;
        size_t n = 0, n_idx = 0;
        int r;

        r = audit_segments_list(dir_fd, &segs, &n);
        if (r < 0)
                return r;
        r = index_files_list(dir_fd, &idx, &n_idx);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_idx; i++) {
                char name[AUDIT_FILE_NAME_MAX];
                bool found = false;

                for (size_t j = 0; j < n && !found; j++)
                        found = segs[j].first_seq == idx[i];
                if (found)
                        continue;
                index_name(idx[i], name);
                (void) unlinkat(dir_fd, name, 0);
        }
        return 0;
}

int audit_log_tail_check(int dir_fd, const AuditScanResult *s, char *ret_reason, size_t reason_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint64_t *idx = NULL;
        uint64_t last_seq = s->next_seq - 1, last_first = s->n_segments > 0 ? s->last_segment.first_seq : 0;
        AuditIndexHeader h;
        size_t n_idx = 0;
        int r;

        /* An index file of a segment after the last one: that segment was removed. */
        r = index_files_list(dir_fd, &idx, &n_idx);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_idx; i++)
                if (idx[i] > last_first) {
                        char name[AUDIT_FILE_NAME_MAX];

                        index_name(idx[i], name);
                        (void) snprintf(ret_reason, reason_size,
                                        "the index file %s is there but its segment is gone: segments after seq %" PRIu64
                                        " were removed while the daemon was stopped",
                                        name, last_seq);
                        return 1;
                }
        if (s->n_segments == 0)
                return 0;

        r = audit_index_open(dir_fd, last_first, false, &fd);
        if (r == -ENOENT)
                return 0; /* a log of an earlier version, or a crash right after the segment was created */
        if (r < 0)
                return r;
        r = index_header_read(fd, &h);
        if (r == -ENODATA)
                return 0;
        if (r == -EBADMSG || (r >= 0 && h.first_seq != last_first)) {
                (void) snprintf(ret_reason, reason_size, "the index file of %s is damaged", s->last_segment.name);
                return 1;
        }
        if (r < 0)
                return r;
        if (h.next_segment != 0) {
                (void) snprintf(ret_reason, reason_size,
                                "%s is the last segment, but its index says a segment starting at seq %" PRIu64
                                " followed it: later segments were removed while the daemon was stopped",
                                s->last_segment.name, h.next_segment);
                return 1;
        }
        if (h.synced_through > last_seq) {
                (void) snprintf(ret_reason, reason_size,
                                "records up to seq %" PRIu64 " were durable, but the log now ends at seq %" PRIu64
                                ": it was cut while the daemon was stopped",
                                h.synced_through, last_seq);
                return 1;
        }
        return 0;
}

