/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* From a collector snapshot to what leaves the device: only the fields the
 * policy allows, every other one listed as dropped, in the shape of the
 * protocol's request elements (ipc/soap/callhome.xsd). No I/O, no logging. */

#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

#define PAYLOAD_METERS_MAX 256U   /* callhome.xsd: Meter maxOccurs */
#define PAYLOAD_SUPPLIES_MAX 64U  /* callhome.xsd: Supply maxOccurs */

typedef struct SnapshotMeter {
        char *name;       /* the protocol's Name: "TotalImpressions", "prtMarkerLifeCount.1" */
        char *unit;
        uint64_t value;   /* what is billed: the collector's mark, or the new reading of a decrease */
        bool decreased;
} SnapshotMeter;

typedef struct SnapshotSupply {
        char *name;       /* "prtMarkerSupplies.INDEX" */
        char *type;
        char *unit;
        int32_t level;    /* >= 0, or -1 other, -2 unknown, -3 some remaining (RFC 3805) */
        int32_t max_capacity;
} SnapshotSupply;

typedef struct PolicySnapshot {
        char *serial;
        char *model;
        uint64_t time_usec;     /* CLOCK_REALTIME of the snapshot */
        SnapshotMeter *meters;
        size_t n_meters;
        SnapshotSupply *supplies;
        size_t n_supplies;
} PolicySnapshot;

PolicySnapshot *policy_snapshot_free(PolicySnapshot *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(PolicySnapshot *, policy_snapshot_free);

/* A field dropped from the payload, and why. */
typedef struct DroppedField {
        char *field;      /* "meter.LargeFormatSheets" */
        const char *reason;
} DroppedField;

typedef struct Payload {
        PolicyService service;
        char *xml;        /* the request element, the exact bytes handed on and audited */
        size_t xml_len;
        DroppedField *dropped;
        size_t n_dropped;
        size_t n_kept;
} Payload;

Payload *payload_free(Payload *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Payload *, payload_free);

/* Builds the SubmitMeterReads (POLICY_SERVICE_METER_READS) or SubmitSupplies
 * (POLICY_SERVICE_SUPPLIES) element for snapshot s under policy p, with
 * transaction id txn. -EOPNOTSUPP for another service; -EBADMSG with
 * *ret_error when nothing valid can be built (no serial, nothing allowed,
 * more entries than the protocol takes). */
int payload_build(const Policy *p, const PolicySnapshot *s, PolicyService service, const char *txn, Payload **ret,
                  char **ret_error);

/* The protocol's Name and DeviceId patterns (ipc/soap/callhome.xsd). */
bool payload_name_valid(const char *s);
bool payload_device_id_valid(const char *s);
