/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* What policyd-instruction.c (verdicts, reports), policyd-consent.c (the
 * customer's consent, diagnostics) and policyd-software.c (fetch, verify,
 * install) share. Private to those three files. */

#include <json-c/json.h>
#include <openssl/x509.h>

#include "policyd.h"
#include "retry.h"
#include "software.h"

#define INSTRUCTIONS_SEEN_MAX 64U       /* ids remembered, so a repeated instruction is not acted on twice */
#define INSTRUCTION_JOBS_MAX 16U        /* instructions held for consent or scheduled, at once */
#define CONSENT_TIMEOUT_DEFAULT_USEC (7ULL * 24 * 3600 * USEC_PER_SEC)
#define REPORT_ATTEMPTS_MAX 5U          /* tries of a report or diagnostics before they wait for a check-in */
#define EXCHANGES_HELD_MAX 32U          /* reports and diagnostics resumed from an earlier run or waiting for a
                                         * check-in, in memory at once; more stay in the outbox meanwhile */
#define DOWNLOAD_ATTEMPTS_MAX 8U        /* Download calls, each resuming after the bytes already written */
#define SOFTWARE_SIZE_MAX (256ULL << 20)
#define DOWNLOAD_PIECE (1ULL << 20)     /* bytes per Download call: 4 GetSoftware ranges */
#define RESULT_DETAIL_MAX 256U          /* callhome.xsd: Detail */
#define DIAGNOSTICS_ITEMS_MAX 64U       /* callhome.xsd: Item maxOccurs */
#define DIAGNOSTICS_ENTRIES_MAX 256U    /* callhome.xsd: Entry maxOccurs */
/* The net-worker is in another exchange (a check-in, a push): try again, it is no failure. */
#define NET_ERROR_BUSY "org.callhome.NetWorker1.Error.Busy"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

typedef enum Outcome {
        OUTCOME_DONE,
        OUTCOME_REFUSED,
        OUTCOME_AWAITING_CONSENT,
        OUTCOME_FAILED,
        _OUTCOME_MAX,
        OUTCOME_NONE = -1,      /* audited, nothing reported yet */
} Outcome;

const char *outcome_to_string(Outcome o);

typedef enum JobState {
        JOB_HELD,               /* waiting for the customer's consent */
        JOB_SCHEDULED,          /* software: waiting for the maintenance window */
        JOB_RUNNING,            /* diagnostics being sent, software being fetched */
} JobState;

typedef struct Instructions Instructions;

/* An instruction that outlives its CheckIn reply: held for consent, scheduled or running. */
typedef struct Job {
        Instructions *owner;
        struct Job *next;
        uint64_t id;
        const char *kind;               /* "DiagnosticsRequested" or "SoftwareAvailable" */
        JobState state;
        uint64_t expires_usec;          /* CLOCK_REALTIME, while held */
        sd_event_source *timer;         /* expiry while held, the window while scheduled, a retry while running */
        sd_bus_slot *slot;              /* the call under way */
        sd_bus_message *approval;       /* the Approve call answered once its verdict is audited */
        uint64_t approval_seq;          /* its audit record, which names the diagnostics' transaction */

        /* DiagnosticsRequested */
        char *reason;
        char **items;

        /* SoftwareAvailable */
        char *package, *version, *sha256;
        uint64_t size;
        void *manifest, *signature, *signer;   /* from GetSoftware at offset 0 */
        size_t manifest_len, signature_len, signer_len;
        int staged_fd;
        char *staged_name;
        uint64_t staged_before;         /* bytes already in the staged file when this attempt began */
        unsigned attempts;
        char *installed;                /* the file in the drop directory, while RAUC installs it */
        char *floor_before;             /* the floor before it, restored if RAUC does not install it */
        sd_bus_slot *rauc_match;        /* RAUC's Completed signal */
} Job;

struct Instructions {
        Manager *m;
        sd_bus_slot *vtable_slot;
        uint64_t seen[INSTRUCTIONS_SEEN_MAX];
        size_t n_seen;
        Job *jobs;
        size_t n_jobs;
        struct Exchange *exchanges;     /* transactions under way */
        size_t n_held;                  /* of those, resumed or waiting for a check-in */
        X509 *anchor;
        int staging_fd, drop_fd;
};

/* policyd-instruction.c */
/* Audits the verdict on instruction `id` ("instruction" record: id, kind,
 * verdict, why, and `extra` if given, which it takes), then, unless outcome is
 * OUTCOME_NONE, reports it with ReportResult under a transaction id named after
 * that record. `done` (may be NULL) gets the record's sequence number, 0 if the
 * audit failed. */
typedef void (*VerdictDone)(Instructions *in, uint64_t seq, void *userdata);
int instruction_verdict(Instructions *in, uint64_t id, const char *kind, const char *verdict, Outcome outcome,
                        const char *why, json_object *extra, VerdictDone done, void *userdata);
/* An instruction judged (or held again at start): if the server sends it again, it is not acted on twice. */
void instruction_mark_seen(Instructions *in, uint64_t id);
/* The device id the server knows (flow_with_device_id() looks it up). */
const char *instruction_device_id(Instructions *in);
/* "SERIAL-iSEQ": a transaction id as unique as the audit record it is named after. */
int instruction_txn_id(Instructions *in, uint64_t seq, char **ret);
/* UTC now as the protocol's Time. */
void instruction_time_now(char ret[static 21]);
/* The outbound record of a transaction (`content`), then `call` to the
 * net-worker, tried again on failure; the reply is audited (inbound record,
 * MarkDelivered) before `done` (may be NULL) gets the server's status, or
 * NULL and why not. Not delivered after REPORT_ATTEMPTS_MAX tries (or while
 * remote services are off), it stays in the outbox and is tried again after
 * the next check-in (instructions_checked_in()); `done` is told at once. */
typedef void (*ExchangeDone)(void *userdata, const char *status, const char *error);
int instruction_exchange(Instructions *in, const char *type, const char *txn, json_object *content,
                         sd_bus_message *call, ExchangeDone done, void *userdata);
/* Why the policy forbids `service` now, or NULL. */
const char *instruction_service_off(const Policy *p, PolicyService s);
Job *job_new(Instructions *in, uint64_t id, const char *kind);
void job_free(Job *j);
Job *job_find(Instructions *in, uint64_t id);

/* policyd-consent.c */
/* The consent members on the bus, and the requests kept on disk held again. */
int consent_register(Instructions *in);
/* Holds j for the customer's consent: signalled, audited "held", reported AwaitingConsent. */
int consent_hold(Job *j, const char *why);
/* The consent request is answered or expired: signalled. */
void consent_removed(Job *j, const char *why);
int diagnostics_read_args(Job *j, sd_bus_message *reply);
/* Whether j's arguments are a diagnostics request's (from the server or kept on disk). */
bool diagnostics_args_valid(const Job *j);

/* policyd-software.c */
int software_read_args(Job *j, sd_bus_message *reply);
/* Whether j's arguments are a software offer's (from the server or kept on disk). */
bool software_args_valid(const Job *j);
/* Automatic mode: fetch in the next maintenance window (now if inside it). */
int software_schedule(Job *j);
/* Fetch, verify and install now; the outcome is audited and reported. */
int software_fetch(Job *j);
void software_job_clear(Job *j);
/* The outcome of a software job, audited and reported; frees j. */
void software_finish(Job *j, const char *verdict, Outcome outcome, const char *why, json_object *extra);

/* policyd-software-rauc.c */
/* Hands the verified bundle j->installed in the drop directory to RAUC's
 * InstallBundle and finishes j with RAUC's answer. */
int rauc_install(Job *j);
