/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Transaction ids, unique for the life of the device: "SERIAL-EPOCH.COUNTER"
 * (TransactionId of the SOAP protocol, [A-Za-z0-9._:-]{1,96}).
 *
 * COUNTER counts 1, 2, ... in memory within one run of policyd. EPOCH is new
 * for every run and larger than every earlier one, taken from two durable
 * sources so that losing either one reuses no id:
 *   - the sequence number auditd gave the run's first record (policyd appends
 *     one when it starts; auditd makes it durable before replying and never
 *     gives a number twice), and
 *   - the previous run's epoch, kept in policyd's state dir (TXN_EPOCH_FILE,
 *     written atomically and durably before the first id of the run).
 * EPOCH = max(audit sequence, stored epoch + 1). A lost state file is covered
 * by the audit sequence (larger than every sequence given before, so than every
 * earlier epoch while the audit log was never reset); a reset audit log is
 * covered by the state file. Only losing both (or one after the other without
 * a run in between that stores the epoch) could repeat an id. See
 * callhome-policyd(8). */

#include <stdint.h>

#define TXN_EPOCH_FILE "txn-epoch"
#define TXN_ID_MAX 96U

/* Chooses this run's epoch from audit_seq and the epoch stored in state_fd
 * (missing: none), and stores it before returning. Returns 0, or 1 when the
 * stored epoch was missing or unreadable (say so in the log); -errno when it
 * could not be stored (then issue no id). */
int txn_epoch_next(int state_fd, uint64_t audit_seq, uint64_t *ret_epoch);

/* "SERIAL-EPOCH.COUNTER"; -EINVAL for a serial that is not a DeviceId, epoch
 * or counter 0, or an id longer than TXN_ID_MAX. */
int txn_id_format(const char *serial, uint64_t epoch, uint64_t counter, char **ret);

/* The reverse; -EINVAL for anything txn_id_format() would not make. ret_serial
 * may be NULL. */
int txn_id_parse(const char *id, char **ret_serial, uint64_t *ret_epoch, uint64_t *ret_counter);
