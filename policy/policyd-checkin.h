/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Shared by the check-ins (policyd-checkin.c), the witness (policyd-witness.c)
 * and their bus members (policyd-checkin-bus.c); the rest of policyd sees
 * only policyd.h. */

#include "policyd.h"

#define POLICY_ERROR_REMOTE_SERVICES_OFF "org.callhome.Policy1.Error.RemoteServicesOff"
#define POLICY_ERROR_CHECK_IN_FAILED "org.callhome.Policy1.Error.CheckInFailed"
#define POLICY_ERROR_CLOCK_NOT_SET "org.callhome.Policy1.Error.ClockNotSet"
#define POLICY_ERROR_NO_FORK_FAULT "org.callhome.Policy1.Error.NoForkFault"

#define CHECKIN_STATE_FILE "checkin.json"
#define WITNESS_STATE_FILE "witness.json"
#define CHECKIN_STATE_MAX (16U << 10)
/* CheckInNow calls waiting for the check-in under way. */
#define CHECKIN_CALLERS_MAX 16U

/* A failed net-worker exchange: the error reply (s a{sv}) of
 * ipc/org.callhome.NetWorker1.xml, "ERRORS". Strings point into the reply. */
typedef struct NetError {
        const char *name;               /* without org.callhome.NetWorker1.Error. when it is one of those */
        const char *message;
        const char *fault;              /* "RetryAfter", "NotAuthorized", "BadRequest", "LogFork" or NULL */
        const char *reason;
        uint32_t retry_after;           /* seconds, 0 for none */
        uint64_t acked_size;
        const char *acked_root;
} NetError;

/* Reads the error of `reply` (which must be an error) into *ret; a body that
 * is not (s a{sv}) leaves the details empty. */
void net_error_read(sd_bus_message *reply, NetError *ret);

/* policyd-checkin.c: the status, for the bus members. Times are CLOCK_REALTIME µs, 0 for none. */
uint64_t checkin_last_usec(Manager *m);
uint64_t checkin_next_usec(Manager *m);
const char *checkin_last_error(Manager *m);
void checkin_retry_state(Manager *m, uint32_t *ret_failures, const char **ret_text);
/* Answers `call` once the check-in it starts (or the one under way) is over. */
int checkin_now_for_call(Manager *m, sd_bus_message *call, sd_bus_error *error);

/* policyd-witness.c */
/* Why the last check-in's cosignature was refused (the policy's WitnessKey), or NULL. */
const char *witness_refused(Manager *m);
/* The latest checkpoint the server cosigned: size and base64 root (0 and "" for none). */
void witness_last_cosigned(Manager *m, uint64_t *ret_size, const char **ret_root);
/* ClearForkFault: `call` is answered once the clearing is audited (with uid) and
 * done; 1: taken, or an error for the caller (no fault, the audit log unreachable). */
int witness_clear_fault(Manager *m, sd_bus_message *call, uid_t uid, sd_bus_error *error);

/* policyd-checkin-bus.c: the members of org.callhome.Policy1 for the above. */
int checkin_bus_register(Manager *m);
void checkin_bus_emit_status(Manager *m);
/* ForkFault changed; with a message, ForkDetected too. */
void checkin_bus_emit_fork(Manager *m, const char *message, uint64_t acked_size, const char *acked_root);
