/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* callhome-audit's parts, and what they share (nothing outside the CLI includes this):
 *
 *  audit-cli.c           main: the command line, the options every command reads, dispatch
 *  cli-verify.c          verify
 *  cli-acknowledge.c     acknowledge
 *  cli-show.c            show (and --follow), export
 *  cli-record-json.c     a record as JSON (show -o json, export --json)
 *  cli-journal-export.c  a record in systemd's Journal Export Format (export --journal-export)
 *  cli-stats.c           stats
 *  cli-checkpoint.c      checkpoint
 *  cli-setup-keys.c      setup-keys
 *  cli-output.c          escaping of what whoever feeds the log controls
 *  cli-since.c           the time of --since */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "log-store.h"

#define EXIT_VIOLATION 1
#define EXIT_USAGE 2

#define VERIFY_THREADS_DEFAULT_MAX 8U
#define VERIFY_THREADS_MAX 64U

extern const char *arg_dir;
extern const char *arg_key;
extern const char *arg_key_file;
extern const char *arg_checkpoint;
extern const char *arg_checkpoint_key;
extern const char *arg_witness_key;
extern const char *arg_origin;
extern const char *arg_type;
extern const char *arg_txn;
extern uint64_t arg_since;
extern bool arg_json;
extern bool arg_follow;
extern bool arg_journal;
extern bool arg_quiet;
extern int arg_progress;
extern unsigned arg_threads; /* 0: one per online CPU, at most VERIFY_THREADS_DEFAULT_MAX */

typedef struct ShowContext {
        FILE *out;
        uint64_t min_seq;
        uint64_t last_seq;
        bool export_payload;
        bool journal;
        /* stats */
        bool stats;
        json_object *by_type, *by_day, *by_direction;
        uint64_t count, bytes;
} ShowContext;

#define SUMMARY_MAX 60 /* bytes of text shown of a payload */

/* cli-since.c: "YYYY-MM-DD[ HH:MM[:SS]]" (local time) or "@SECONDS", in µs since the epoch; -EINVAL if not */
int parse_since(const char *s, uint64_t *ret);

/* audit-cli.c */
void format_time(uint64_t usec, char *buf, size_t size);
int open_dir(int *ret);
int load_vkey(int dir_fd, CheckpointVerifier *v, bool *have);
int load_key(AuditSealKey **ret);

/* the commands */
int cmd_verify(void);
int cmd_acknowledge(void);
int cmd_show(bool export_payload);
int cmd_stats(void);
int cmd_checkpoint(void);
int cmd_setup_keys(void);

/* cli-show.c */
void summary(const AuditRecord *rec, char *buf, size_t size);
int scan_for_reading(int dir_fd, ShowContext *c, bool warn);

/* cli-record-json.c, cli-journal-export.c, cli-stats.c */
json_object *record_json(const AuditRecord *rec, const AuditSegmentInfo *seg, uint64_t off, bool payload);
void journal_record(FILE *f, const AuditRecord *rec);
void stats_add(json_object *table, const char *key, uint64_t bytes);
