/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The six operations of the callhome SOAP contract (ipc/soap/PROTOCOL.md) as
 * C types: requests the caller fills (borrowed strings), replies the parser
 * allocates. soap-build.c writes requests, soap-parse.c reads replies; neither
 * does I/O, so unit tests and the fuzz target drive them directly. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nw-error.h"

#define SOAP_ENV_NS "http://schemas.xmlsoap.org/soap/envelope/"
#define CALLHOME_NS "urn:callhome:soap:v1"

/* Contract bounds (callhome.xsd). */
#define SOAP_MAX_INSTRUCTIONS 16
#define SOAP_MAX_METERS 256
#define SOAP_MAX_SUPPLIES 64
#define SOAP_MAX_DIAG_ENTRIES 256
#define SOAP_MAX_DIAG_ITEMS 64
#define SOAP_MAX_PROOF_HASHES 64
#define SOAP_MAX_SOFTWARE_LENGTH 262144U

typedef enum SoapOperation {
        SOAP_CHECK_IN,
        SOAP_SUBMIT_METER_READS,
        SOAP_SUBMIT_SUPPLIES,
        SOAP_SUBMIT_DIAGNOSTICS,
        SOAP_GET_SOFTWARE,
        SOAP_REPORT_RESULT,
        _SOAP_OPERATION_MAX,
        _SOAP_OPERATION_INVALID = -EINVAL,
} SoapOperation;

const char *soap_operation_to_string(SoapOperation op) _pure_;
SoapOperation soap_operation_from_string(const char *s) _pure_;

/* ---- requests ---- */

typedef struct SoapWitnessRequest {
        const char *checkpoint;          /* signed note, ≤ 2048 bytes */
        const char *log_key;             /* optional */
        uint64_t proof_from;
        const char *const *proof_hashes; /* base64 of 32 bytes each */
        size_t n_proof_hashes;
} SoapWitnessRequest;

typedef struct SoapCheckIn {
        const char *device_id;
        const char *agent_version;
        uint64_t last_instruction;
        const SoapWitnessRequest *witness; /* optional */
} SoapCheckIn;

typedef struct SoapMeter {
        const char *name;
        uint64_t value;
        const char *unit; /* optional */
        bool decreased;   /* Anomaly = Decreased */
} SoapMeter;

typedef struct SoapMeterReads {
        const char *device_id;
        const char *transaction_id;
        const char *time; /* UTC xs:dateTime with Z */
        const SoapMeter *meters;
        size_t n_meters;
} SoapMeterReads;

typedef struct SoapSupply {
        const char *name;
        const char *type; /* optional */
        int32_t level;
        int32_t max_capacity;
        const char *unit; /* optional */
} SoapSupply;

typedef struct SoapSupplies {
        const char *device_id;
        const char *transaction_id;
        const char *time;
        const SoapSupply *supplies;
        size_t n_supplies;
} SoapSupplies;

typedef struct SoapDiagEntry {
        const char *name;
        const char *value;
} SoapDiagEntry;

typedef struct SoapDiagnostics {
        const char *device_id;
        const char *transaction_id;
        uint64_t instruction_id;
        const char *time;
        const SoapDiagEntry *entries;
        size_t n_entries;
} SoapDiagnostics;

typedef struct SoapGetSoftware {
        const char *device_id;
        const char *package_id;
        uint64_t offset;
        uint32_t length;
} SoapGetSoftware;

typedef enum SoapOutcome {
        SOAP_OUTCOME_DONE,
        SOAP_OUTCOME_REFUSED,
        SOAP_OUTCOME_AWAITING_CONSENT,
        SOAP_OUTCOME_FAILED,
        _SOAP_OUTCOME_MAX,
        _SOAP_OUTCOME_INVALID = -EINVAL,
} SoapOutcome;

const char *soap_outcome_to_string(SoapOutcome o) _pure_;
SoapOutcome soap_outcome_from_string(const char *s) _pure_;

typedef struct SoapReportResult {
        const char *device_id;
        const char *transaction_id;
        uint64_t instruction_id;
        SoapOutcome outcome;
        const char *detail; /* optional */
} SoapReportResult;

/* ---- replies ---- */

typedef enum SoapInstructionKind {
        SOAP_INSTRUCTION_SEND_METER_READS,
        SOAP_INSTRUCTION_SEND_SUPPLIES,
        SOAP_INSTRUCTION_SET_CHECK_IN_INTERVAL,
        SOAP_INSTRUCTION_SOFTWARE_AVAILABLE,
        SOAP_INSTRUCTION_DIAGNOSTICS_REQUESTED,
        _SOAP_INSTRUCTION_MAX,
        _SOAP_INSTRUCTION_INVALID = -EINVAL,
} SoapInstructionKind;

const char *soap_instruction_kind_to_string(SoapInstructionKind k) _pure_;

typedef struct SoapInstruction {
        uint64_t id;
        SoapInstructionKind kind;
        uint32_t seconds;   /* SetCheckInInterval */
        char *package_id;   /* SoftwareAvailable */
        char *version;
        uint64_t size;
        char *sha256;
        char *reason;       /* DiagnosticsRequested */
        char **items;
        size_t n_items;
} SoapInstruction;

typedef struct SoapCheckInReply {
        SoapInstruction *instructions;
        size_t n_instructions;
        bool has_witness;
        uint64_t acked_size;
        char *acked_root;   /* optional */
        char *cosignature;  /* optional */
} SoapCheckInReply;

typedef enum SoapAckStatus {
        SOAP_ACK_ACCEPTED,
        SOAP_ACK_DUPLICATE,
        _SOAP_ACK_MAX,
        _SOAP_ACK_INVALID = -EINVAL,
} SoapAckStatus;

const char *soap_ack_status_to_string(SoapAckStatus s) _pure_;

typedef struct SoapAck {
        char *transaction_id;
        SoapAckStatus status;
} SoapAck;

typedef struct SoapBlob {
        uint8_t *data;
        size_t size;
} SoapBlob;

typedef struct SoapSoftwareReply {
        char *package_id;
        uint64_t total_size;
        uint64_t offset;
        SoapBlob data;
        bool has_manifest;  /* Manifest, ManifestSignature, SignerCertificate */
        SoapBlob manifest;
        SoapBlob manifest_signature;
        SoapBlob signer_certificate;
} SoapSoftwareReply;

typedef struct SoapReply {
        SoapOperation op;
        union {
                SoapCheckInReply check_in;
                SoapAck ack;  /* the four submissions */
                SoapSoftwareReply software;
        };
} SoapReply;

void soap_reply_done(SoapReply *r);

/* ---- building ---- */

typedef struct SoapRequest {
        SoapOperation op;
        union {
                const SoapCheckIn *check_in;
                const SoapMeterReads *meter_reads;
                const SoapSupplies *supplies;
                const SoapDiagnostics *diagnostics;
                const SoapGetSoftware *get_software;
                const SoapReportResult *report_result;
        };
} SoapRequest;

/* Writes the request in the compact wire form of PROTOCOL.md. -EINVAL (err:
 * NW_ERROR_INVALID_REQUEST, saying which field) when an argument breaks the
 * contract; -E2BIG when the message would exceed max_size. */
int soap_build_request(const SoapRequest *req, size_t max_size, char **ret, size_t *ret_size, NwError *err);

/* ---- parsing ---- */

typedef struct SoapParseLimits {
        size_t max_size;      /* bytes of the whole reply */
        unsigned max_depth;   /* element nesting */
        unsigned max_nodes;   /* elements */
} SoapParseLimits;

/* The bounds PROTOCOL.md derives: deepest legitimate path is 6 elements, at
 * most 16 instructions of at most 67 elements each. */
#define SOAP_PARSE_LIMITS_DEFAULT ((SoapParseLimits) { .max_size = 1U << 20, .max_depth = 16, .max_nodes = 4096 })

/* Parses the reply to `op` with a hardened libxml2 (no DTD at all, no entity
 * substitution, no network, no XInclude) and checks it against the expected
 * shape. Returns 0 and the reply; or
 *   -EREMOTEIO  a Fault: err kind NW_ERROR_SOAP_FAULT (or NW_ERROR_RETRY_AFTER
 *               for a RetryAfter detail) with err->fault filled
 *   -EFBIG      over a bound: NW_ERROR_TOO_LARGE
 *   -EBADMSG    anything else: NW_ERROR_MALFORMED_REPLY */
int soap_parse_reply(SoapOperation op, const char *buf, size_t size, const SoapParseLimits *limits,
                     SoapReply *ret, NwError *err);
