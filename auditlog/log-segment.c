/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "log-scan-internal.h"

#define AUDIT_SEGMENTS_MAX 65536U

void audit_segment_name(uint64_t first_seq, char ret[AUDIT_FILE_NAME_MAX]) {
        (void) snprintf(ret, AUDIT_FILE_NAME_MAX, "%016" PRIx64 AUDIT_SEGMENT_SUFFIX, first_seq);
}

static int parse_segment_name(const char *name, uint64_t *ret) {
        uint64_t v = 0;

        if (strlen(name) != 16 + strlen(AUDIT_SEGMENT_SUFFIX) || !streq(name + 16, AUDIT_SEGMENT_SUFFIX))
                return -EINVAL;
        for (int i = 0; i < 16; i++) {
                char c = name[i];
                int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
                if (d < 0)
                        return -EINVAL;
                v = v << 4 | (uint64_t) d;
        }
        if (v == 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int segment_cmp(const void *a, const void *b) {
        const AuditSegmentInfo *x = a, *y = b;
        return x->first_seq < y->first_seq ? -1 : x->first_seq > y->first_seq;
}

int audit_segments_list(int dir_fd, AuditSegmentInfo **ret, size_t *ret_n) {
        _cleanup_free_ AuditSegmentInfo *list = NULL;
        size_t n = 0, allocated = 0;
        DIR *d;
        struct dirent *de;
        int r;

        r = opendir_at(dir_fd, &d);
        if (r < 0)
                return r;
        while ((errno = 0, de = readdir(d))) {
                uint64_t first;
                struct stat st;

                if (parse_segment_name(de->d_name, &first) < 0)
                        continue;
                if (fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT)
                                continue; /* removed since readdir() */
                        r = negative_errno();
                        closedir(d);
                        return r;
                }
                if (n >= AUDIT_SEGMENTS_MAX) {
                        closedir(d);
                        return -E2BIG;
                }
                if (n == allocated) {
                        size_t na = allocated ? allocated * 2 : 16;
                        AuditSegmentInfo *nl = realloc(list, na * sizeof(*nl));
                        if (!nl) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        list = nl;
                        allocated = na;
                }
                list[n].first_seq = first;
                list[n].not_regular = S_ISREG(st.st_mode) ? 0 : (uint32_t) (st.st_mode & S_IFMT);
                list[n].size = S_ISREG(st.st_mode) ? (uint64_t) st.st_size : 0;
                audit_segment_name(first, list[n].name);
                n++;
        }
        if (errno != 0) {
                r = negative_errno();
                closedir(d);
                return r;
        }
        closedir(d);
        if (n > 0)
                qsort(list, n, sizeof(*list), segment_cmp);
        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

const char *file_type_name(uint32_t type) {
        switch (type) {
        case S_IFLNK:
                return "a symbolic link";
        case S_IFIFO:
                return "a FIFO";
        case S_IFDIR:
                return "a directory";
        case S_IFSOCK:
                return "a socket";
        case S_IFCHR:
                return "a character device";
        case S_IFBLK:
                return "a block device";
        default:
                return "of an unknown type";
        }
}

/* Maps a segment file; an empty one gives *ret_size = 0 and no map. */
int segment_map(int dir_fd, const AuditSegmentInfo *seg, uint8_t **ret_map, uint64_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        uint8_t *map;

        /* Never blocks (a FIFO put there since the listing) nor follows a link. */
        fd = openat(dir_fd, seg->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (st.st_size == 0) {
                *ret_map = NULL;
                *ret_size = 0;
                return 0;
        }
        map = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)
                return negative_errno();
        (void) madvise(map, (size_t) st.st_size, MADV_SEQUENTIAL | MADV_WILLNEED);
        *ret_map = map;
        *ret_size = (uint64_t) st.st_size;
        return 0;
}

/* The header on its own: well-formed and agreeing with the file name. The
 * violation names fault_seq, the record expected at this point. */
bool segment_header_check(AuditScanResult *s, const AuditSegmentInfo *seg, const uint8_t *map, uint64_t size,
                                 uint64_t fault_seq, AuditSegmentHeader *h) {
        const char *reason = NULL;
        AuditParseResult pr;

        pr = audit_segment_header_parse(map, (size_t) size, h, &reason);
        if (pr != AUDIT_PARSE_OK) {
                violation(s, fault_seq, seg->name, 0, "segment header: %s", pr == AUDIT_PARSE_SHORT ? "truncated" : reason);
                return false;
        }
        if (h->first_seq != seg->first_seq) {
                violation(s, fault_seq, seg->name, 0,
                          "segment header says it starts at seq %" PRIu64 ", its name says %" PRIu64, h->first_seq,
                          seg->first_seq);
                return false;
        }
        return true;
}

/* Each epoch ends in a seal record, so no epoch number is larger than the
 * number of records before it: a log that starts at seq 1 starts in epoch 0, a
 * log trimmed by retention starts at most first_seq - 1 epochs in. */
const char *first_header_implausible(const AuditSegmentHeader *h) {
        if (h->first_seq == 1 && (!all_zero(h->prev_hash, AUDIT_HASH_SIZE) || h->epoch != 0))
                return "first segment of the log does not start from the empty state";
        if (h->epoch > h->first_seq - 1)
                return "first segment of the log starts in an epoch beyond the records before it";
        return NULL;
}

int audit_record_read(int seg_fd, uint64_t offset, uint8_t **ret_buf, AuditRecord *ret) {
        _cleanup_free_ uint8_t *buf = NULL;
        uint8_t head[8];
        uint32_t size;
        ssize_t n;

        n = pread(seg_fd, head, sizeof(head), (off_t) offset);
        if (n < 0)
                return negative_errno();
        if (n != sizeof(head))
                return -EBADMSG;
        size = audit_record_peek_size(head, sizeof(head));
        if (size < AUDIT_RECORD_MIN_SIZE || size > AUDIT_RECORD_MAX_SIZE)
                return -EBADMSG;
        buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        n = pread(seg_fd, buf, size, (off_t) offset);
        if (n < 0)
                return negative_errno();
        if ((size_t) n != size || audit_record_parse(buf, size, true, ret, NULL) != AUDIT_PARSE_OK)
                return -EBADMSG;
        *ret_buf = TAKE_PTR(buf);
        return 0;
}
