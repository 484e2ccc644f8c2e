/* SPDX-License-Identifier: Apache-2.0 */
/* Transaction ids: format and parse back, refuse what is not one, and never
 * repeat across restarts, a crash, a lost state file or a reset audit log. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "txnid.h"

static int failures;

static void expect(bool ok, const char *what) {
        printf("%s - %s\n", ok ? "ok" : "FAIL", what);
        if (!ok)
                failures++;
}

#define MAX_IDS 64
static char *issued[MAX_IDS];
static size_t n_issued;

/* One run of policyd: an epoch from the audit sequence, then `count` ids. */
static uint64_t run(int state_fd, uint64_t audit_seq, unsigned count, int want_lost) {
        uint64_t epoch;
        int r = txn_epoch_next(state_fd, audit_seq, &epoch);

        assert(r == want_lost);
        for (unsigned c = 1; c <= count; c++) {
                char *id;
                assert(n_issued < MAX_IDS);
                assert(txn_id_format("CH0000000001", epoch, c, &id) == 0);
                issued[n_issued++] = id;
        }
        return epoch;
}

static bool all_distinct(void) {
        for (size_t i = 0; i < n_issued; i++)
                for (size_t j = i + 1; j < n_issued; j++)
                        if (streq(issued[i], issued[j]))
                                return false;
        return true;
}

int main(void) {
        char tmpl[] = "/tmp/test-txnid.XXXXXX";
        _cleanup_close_ int dir = -EBADF;
        _cleanup_free_ char *id = NULL, *serial = NULL;
        uint64_t e, c;

        /* Format and parse. */
        assert(txn_id_format("CH0000000001", 42, 7, &id) == 0);
        expect(streq(id, "CH0000000001-42.7"), "SERIAL-EPOCH.COUNTER");
        expect(txn_id_parse(id, &serial, &e, &c) == 0 && streq(serial, "CH0000000001") && e == 42 && c == 7,
               "parses back");
        free(serial);
        serial = NULL;
        expect(txn_id_parse("my-serial-3.1", &serial, &e, &c) == 0 && streq(serial, "my-serial") && e == 3 && c == 1,
               "a serial with dashes: the last one separates");
        {
                const char *bad[] = { "", "CH1", "CH1-", "CH1-1", "CH1-0.1", "CH1-1.0", "CH1-01.1", "CH1-1.01", "-1.1",
                                      "CH1-1.1.1", "CH1-1.+1", "CH 1-1.1", "CH1-18446744073709551616.1", ".CH1-1.1" };
                bool ok = true;
                for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                        if (txn_id_parse(bad[i], NULL, &e, &c) != -EINVAL) {
                                printf("# accepted: '%s'\n", bad[i]);
                                ok = false;
                        }
                expect(ok, "ids txn_id_format would not make are refused");
        }
        {
                char longserial[65];
                char *x = NULL;
                memset(longserial, 'A', 64);
                longserial[64] = 0;
                expect(txn_id_format(longserial, UINT64_MAX, UINT64_MAX, &x) == -EINVAL,
                       "longer than TransactionId allows: refused");
                expect(txn_id_format(longserial, 1, 1, &x) == 0 && strlen(x) == 68, "a 64-byte serial fits");
                free(x);
                expect(txn_id_format("bad serial", 1, 1, &x) == -EINVAL && txn_id_format("S", 0, 1, &x) == -EINVAL &&
                       txn_id_format("S", 1, 0, &x) == -EINVAL, "a bad serial, epoch 0 or counter 0: refused");
        }

        /* Never repeated. */
        assert(mkdtemp(tmpl));
        dir = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert(dir >= 0);
        expect(run(dir, 10, 5, 1) == 10, "first run: the audit sequence, no state yet");
        expect(run(dir, 11, 5, 0) == 11, "a restart: the next audit sequence");
        expect(run(dir, 11, 3, 0) == 12, "a crash before the audit record (same sequence seen): stored + 1");
        assert(unlinkat(dir, TXN_EPOCH_FILE, 0) == 0);
        expect(run(dir, 14, 5, 1) == 14, "state file lost: the audit sequence alone, reported as lost");
        expect(run(dir, 1, 5, 0) == 15, "audit log reset: the state file carries on");
        assert(write_file_atomic_at(dir, TXN_EPOCH_FILE, "garbage", 7, 0600) == 0);
        expect(run(dir, 20, 2, 1) == 20, "a damaged state file counts as lost");
        expect(all_distinct(), "no id was issued twice");
        {
                _cleanup_free_ char *buf = NULL;
                size_t len;
                assert(read_small_file_at(dir, TXN_EPOCH_FILE, 64, &buf, &len) == 0);
                expect(streq(buf, "20\n"), "the epoch is stored before any id of the run");
        }

        for (size_t i = 0; i < n_issued; i++)
                free(issued[i]);
        assert(unlinkat(dir, TXN_EPOCH_FILE, 0) == 0 && rmdir(tmpl) == 0);
        printf("%s\n", failures ? "FAILED" : "all passed");
        return failures ? 1 : 0;
}
