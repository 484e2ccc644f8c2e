/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* callhome-auditd's state and what it does with the log (auditd-manager.c);
 * its D-Bus face is auditd-bus.h. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "log-store.h"

/* An acknowledged-to-be append: answered once its record is on disk. */
typedef struct PendingReply {
        sd_bus_message *call;
        uint64_t seq;
        uint8_t hash[AUDIT_HASH_SIZE];
        char *type;
        char *txn;
        bool delivery;
} PendingReply;

/* A call waiting for the proofs' block cache to cover new_size: a
 * GetConsistencyProof answered then, or a witness call dispatched again. */
typedef struct ProofWaiter {
        sd_bus_message *call;
        uint64_t old_size, new_size;
        bool redispatch;
} ProofWaiter;

typedef struct BusPeers BusPeers;

/* The outbox: outbound transactions without a delivery record. */
typedef struct OutboxEntry {
        uint64_t seq;
        char *txn;
} OutboxEntry;

typedef struct Manager {
        sd_event *event;
        sd_bus *bus;
        sd_event_source *commit_source;
        sd_event_source *seal_timer;
        sd_event_source *checkpoint_timer;

        char *state_dir;
        int dir_fd;
        AuditWriter *writer;
        char *vkey_text;
        CheckpointVerifier vkey;
        CheckpointVerifier witness_key; /* --witness-key: the server whose cosignatures count */
        bool have_witness_key;

        uid_t policy_uid;
        gid_t admin_gid;

        uint64_t segment_size;
        uint64_t retention_size;
        uint64_t epoch_usec;
        uint64_t epoch_start_usec;      /* CLOCK_REALTIME, when the epoch open at start-up began */
        uint64_t last_checkpoint_usec;  /* CLOCK_REALTIME, the last checkpoint found at start-up (0: none) */
        uint64_t checkpoint_usec;
        unsigned group_commit_max;

        MerkleBlocks proof_blocks; /* block roots for GetConsistencyProof, extended as the log grows */

        OutboxEntry *outbox;
        size_t n_outbox, outbox_allocated, outbox_max;

        PendingReply *pending;
        size_t n_pending, pending_allocated;

        char *broken; /* why appends are refused, or NULL */
        char *last_error; /* an error after a durable write (LastError), or NULL */
        uint64_t recovered_bytes;

        /* Readers (auditd-bus.c): callers' credentials, unread replies, proofs being computed. */
        BusPeers *peers;
        sd_event_source *proof_source;
        ProofWaiter *proof_waiters;
        size_t n_proof_waiters;
        uint64_t pending_bytes; /* payload and metadata bytes of the appends awaiting the group commit */
} Manager;

Manager *manager_free(Manager *m);
static inline void manager_freep(Manager **m) {
        if (*m)
                manager_free(*m);
}
int manager_new(Manager **ret);
/* Opens the state directory, scans and recovers the log. Before confinement. */
int manager_open_log(Manager *m);
/* Timers and bus objects on m->event and m->bus (the daemon skeleton's). After confinement. */
int manager_start(Manager *m);

/* Appends a record for a bus caller; the reply waits for the group commit. */
int manager_append(Manager *m, sd_bus_message *call, AuditRecordFields *f, bool delivery, sd_bus_error *error);
int manager_flush(Manager *m);
void manager_note_writer_error(Manager *m);
/* Records that an outside witness covers records 1..size with this root (a witness record,
 * answered with its seq once durable); `fields` as for audit_witness_payload(). */
int manager_add_witness(Manager *m, sd_bus_message *call, const char *by, uint64_t size,
                        const uint8_t root[AUDIT_HASH_SIZE], const char *const *fields, sd_bus_error *error);
/* The RFC 9162 consistency proof old_size -> new_size; -ENODATA if it needs leaves
 * of segments retention removed (old_size before the first kept segment). */
int manager_consistency_proof(Manager *m, uint64_t old_size, uint64_t new_size,
                              uint8_t ret_proof[AUDIT_FRONTIER_MAX][AUDIT_HASH_SIZE], unsigned *ret_count);
#define MANAGER_REMOVED_SEGMENTS_ERROR "The proof needs leaves of removed segments that this device no longer holds."
const OutboxEntry *manager_outbox_find(Manager *m, const char *txn);
