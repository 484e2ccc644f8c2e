/* SPDX-License-Identifier: Apache-2.0 */
/* Requests in the compact wire form of PROTOCOL.md, written with libxml2's
 * text writer (it does the escaping): prefix "s" for the envelope, the payload
 * in the default namespace declared on the Body's child, no whitespace. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/xmlwriter.h>

#include "soap-message.h"
#include "soap-util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlTextWriterPtr, xmlFreeTextWriter);
DEFINE_TRIVIAL_CLEANUP_FUNC(xmlBufferPtr, xmlBufferFree);

static const char *const operation_table[_SOAP_OPERATION_MAX] = {
        [SOAP_CHECK_IN] = "CheckIn",
        [SOAP_SUBMIT_METER_READS] = "SubmitMeterReads",
        [SOAP_SUBMIT_SUPPLIES] = "SubmitSupplies",
        [SOAP_SUBMIT_DIAGNOSTICS] = "SubmitDiagnostics",
        [SOAP_GET_SOFTWARE] = "GetSoftware",
        [SOAP_REPORT_RESULT] = "ReportResult",
};

static const char *const outcome_table[_SOAP_OUTCOME_MAX] = {
        [SOAP_OUTCOME_DONE] = "Done",
        [SOAP_OUTCOME_REFUSED] = "Refused",
        [SOAP_OUTCOME_AWAITING_CONSENT] = "AwaitingConsent",
        [SOAP_OUTCOME_FAILED] = "Failed",
};

const char *soap_operation_to_string(SoapOperation op) {
        return op >= 0 && op < _SOAP_OPERATION_MAX ? operation_table[op] : NULL;
}

SoapOperation soap_operation_from_string(const char *s) {
        assert(s);
        for (int i = 0; i < _SOAP_OPERATION_MAX; i++)
                if (streq(operation_table[i], s))
                        return (SoapOperation) i;
        return _SOAP_OPERATION_INVALID;
}

const char *soap_outcome_to_string(SoapOutcome o) {
        return o >= 0 && o < _SOAP_OUTCOME_MAX ? outcome_table[o] : NULL;
}

SoapOutcome soap_outcome_from_string(const char *s) {
        assert(s);
        for (int i = 0; i < _SOAP_OUTCOME_MAX; i++)
                if (streq(outcome_table[i], s))
                        return (SoapOutcome) i;
        return _SOAP_OUTCOME_INVALID;
}

#define INVALID(err, ...) nw_error_set((err), -EINVAL, NW_ERROR_INVALID_REQUEST, __VA_ARGS__)

/* Every writer call returns < 0 on failure (out of memory, in practice). */
#define W(call)                              \
        do {                                 \
                if ((call) < 0)              \
                        return -ENOMEM;      \
        } while (0)

static int write_text(xmlTextWriterPtr w, const char *element, const char *value) {
        W(xmlTextWriterWriteElement(w, BAD_CAST element, BAD_CAST value));
        return 0;
}

static int write_u64(xmlTextWriterPtr w, const char *element, uint64_t value) {
        char buf[21];

        (void) snprintf(buf, sizeof(buf), "%" PRIu64, value);
        return write_text(w, element, buf);
}

static int write_i32(xmlTextWriterPtr w, const char *element, int32_t value) {
        char buf[12];

        (void) snprintf(buf, sizeof(buf), "%" PRId32, value);
        return write_text(w, element, buf);
}

static int check_common(const char *device_id, const char *transaction_id, const char *time, NwError *err) {
        if (!device_id || !soap_valid_device_id(device_id))
                return INVALID(err, "DeviceId is not [A-Za-z0-9][A-Za-z0-9._-]{0,63}");
        if (transaction_id && !soap_valid_transaction_id(transaction_id))
                return INVALID(err, "TransactionId is not [A-Za-z0-9._:-]{1,96}");
        if (time && !soap_valid_utc_time(time))
                return INVALID(err, "Time is not a UTC date and time such as 2026-03-01T10:00:00Z");
        return 0;
}

static int write_head(xmlTextWriterPtr w, const char *device_id, const char *transaction_id) {
        int r;

        r = write_text(w, "DeviceId", device_id);
        if (r < 0)
                return r;
        return transaction_id ? write_text(w, "TransactionId", transaction_id) : 0;
}

static int build_check_in(xmlTextWriterPtr w, const SoapCheckIn *m, NwError *err) {
        const SoapWitnessRequest *wi = m->witness;
        int r;

        r = check_common(m->device_id, NULL, NULL, err);
        if (r < 0)
                return r;
        if (!m->agent_version || !soap_valid_agent_version(m->agent_version))
                return INVALID(err, "AgentVersion is not [A-Za-z0-9.+~_-]{1,32}");
        if (wi) {
                if (!wi->checkpoint || wi->checkpoint[0] == '\0' || strlen(wi->checkpoint) > 2048 ||
                    !soap_valid_text(wi->checkpoint, 2048))
                        return INVALID(err, "Witness Checkpoint must be 1 to 2048 characters of text");
                if (wi->log_key && (strlen(wi->log_key) > 190 || !soap_valid_text(wi->log_key, 190) ||
                                    strchr(wi->log_key, ' ') || strchr(wi->log_key, '\n')))
                        return INVALID(err, "Witness LogKey is not a verifier key");
                if (wi->n_proof_hashes > SOAP_MAX_PROOF_HASHES)
                        return INVALID(err, "Witness carries %zu proof hashes, at most %d allowed",
                                       wi->n_proof_hashes, SOAP_MAX_PROOF_HASHES);
                for (size_t i = 0; i < wi->n_proof_hashes; i++)
                        if (!wi->proof_hashes[i] || !soap_valid_base64(wi->proof_hashes[i], 32))
                                return INVALID(err, "Witness ProofHash %zu is not base64 of 32 bytes", i);
        }

        r = write_head(w, m->device_id, NULL);
        if (r < 0)
                return r;
        r = write_text(w, "AgentVersion", m->agent_version);
        if (r < 0)
                return r;
        r = write_u64(w, "LastInstruction", m->last_instruction);
        if (r < 0)
                return r;
        if (wi) {
                W(xmlTextWriterStartElement(w, BAD_CAST "Witness"));
                r = write_text(w, "Checkpoint", wi->checkpoint);
                if (r >= 0 && wi->log_key)
                        r = write_text(w, "LogKey", wi->log_key);
                if (r >= 0)
                        r = write_u64(w, "ProofFrom", wi->proof_from);
                for (size_t i = 0; r >= 0 && i < wi->n_proof_hashes; i++)
                        r = write_text(w, "ProofHash", wi->proof_hashes[i]);
                if (r < 0)
                        return r;
                W(xmlTextWriterEndElement(w));
        }
        return 0;
}

static int build_meter_reads(xmlTextWriterPtr w, const SoapMeterReads *m, NwError *err) {
        int r;

        r = check_common(m->device_id, m->transaction_id ?: "", m->time ?: "", err);
        if (r < 0)
                return r;
        if (m->n_meters < 1 || m->n_meters > SOAP_MAX_METERS)
                return INVALID(err, "%zu meters: 1 to %d allowed", m->n_meters, SOAP_MAX_METERS);
        for (size_t i = 0; i < m->n_meters; i++) {
                if (!m->meters[i].name || !soap_valid_name(m->meters[i].name))
                        return INVALID(err, "Meter %zu: Name is not [A-Za-z0-9._:/-]{1,64}", i);
                if (m->meters[i].unit && !soap_valid_name(m->meters[i].unit))
                        return INVALID(err, "Meter %zu: Unit is not [A-Za-z0-9._:/-]{1,64}", i);
        }

        r = write_head(w, m->device_id, m->transaction_id);
        if (r >= 0)
                r = write_text(w, "Time", m->time);
        for (size_t i = 0; r >= 0 && i < m->n_meters; i++) {
                const SoapMeter *e = m->meters + i;

                W(xmlTextWriterStartElement(w, BAD_CAST "Meter"));
                r = write_text(w, "Name", e->name);
                if (r >= 0)
                        r = write_u64(w, "Value", e->value);
                if (r >= 0 && e->unit)
                        r = write_text(w, "Unit", e->unit);
                if (r >= 0 && e->decreased)
                        r = write_text(w, "Anomaly", "Decreased");
                if (r >= 0)
                        W(xmlTextWriterEndElement(w));
        }
        return r;
}

static int build_supplies(xmlTextWriterPtr w, const SoapSupplies *m, NwError *err) {
        int r;

        r = check_common(m->device_id, m->transaction_id ?: "", m->time ?: "", err);
        if (r < 0)
                return r;
        if (m->n_supplies < 1 || m->n_supplies > SOAP_MAX_SUPPLIES)
                return INVALID(err, "%zu supplies: 1 to %d allowed", m->n_supplies, SOAP_MAX_SUPPLIES);
        for (size_t i = 0; i < m->n_supplies; i++) {
                const SoapSupply *e = m->supplies + i;

                if (!e->name || !soap_valid_name(e->name))
                        return INVALID(err, "Supply %zu: Name is not [A-Za-z0-9._:/-]{1,64}", i);
                if ((e->type && !soap_valid_name(e->type)) || (e->unit && !soap_valid_name(e->unit)))
                        return INVALID(err, "Supply %zu: Type or Unit is not [A-Za-z0-9._:/-]{1,64}", i);
                if (e->level < -3 || e->max_capacity < -2)
                        return INVALID(err, "Supply %zu: Level must be ≥ -3 and MaxCapacity ≥ -2", i);
        }

        r = write_head(w, m->device_id, m->transaction_id);
        if (r >= 0)
                r = write_text(w, "Time", m->time);
        for (size_t i = 0; r >= 0 && i < m->n_supplies; i++) {
                const SoapSupply *e = m->supplies + i;

                W(xmlTextWriterStartElement(w, BAD_CAST "Supply"));
                r = write_text(w, "Name", e->name);
                if (r >= 0 && e->type)
                        r = write_text(w, "Type", e->type);
                if (r >= 0)
                        r = write_i32(w, "Level", e->level);
                if (r >= 0)
                        r = write_i32(w, "MaxCapacity", e->max_capacity);
                if (r >= 0 && e->unit)
                        r = write_text(w, "Unit", e->unit);
                if (r >= 0)
                        W(xmlTextWriterEndElement(w));
        }
        return r;
}

static int build_diagnostics(xmlTextWriterPtr w, const SoapDiagnostics *m, NwError *err) {
        int r;

        r = check_common(m->device_id, m->transaction_id ?: "", m->time ?: "", err);
        if (r < 0)
                return r;
        if (m->instruction_id < 1)
                return INVALID(err, "InstructionId must be at least 1");
        if (m->n_entries > SOAP_MAX_DIAG_ENTRIES)
                return INVALID(err, "%zu diagnostic entries: at most %d allowed", m->n_entries,
                               SOAP_MAX_DIAG_ENTRIES);
        for (size_t i = 0; i < m->n_entries; i++) {
                if (!m->entries[i].name || !soap_valid_name(m->entries[i].name))
                        return INVALID(err, "Entry %zu: Name is not [A-Za-z0-9._:/-]{1,64}", i);
                if (!m->entries[i].value || !soap_valid_text(m->entries[i].value, 4096))
                        return INVALID(err, "Entry %zu: Value must be at most 4096 characters of text", i);
        }

        r = write_head(w, m->device_id, m->transaction_id);
        if (r >= 0)
                r = write_u64(w, "InstructionId", m->instruction_id);
        if (r >= 0)
                r = write_text(w, "Time", m->time);
        for (size_t i = 0; r >= 0 && i < m->n_entries; i++) {
                W(xmlTextWriterStartElement(w, BAD_CAST "Entry"));
                r = write_text(w, "Name", m->entries[i].name);
                if (r >= 0)
                        r = write_text(w, "Value", m->entries[i].value);
                if (r >= 0)
                        W(xmlTextWriterEndElement(w));
        }
        return r;
}

static int build_get_software(xmlTextWriterPtr w, const SoapGetSoftware *m, NwError *err) {
        char len[11];
        int r;

        r = check_common(m->device_id, NULL, NULL, err);
        if (r < 0)
                return r;
        if (!m->package_id || !soap_valid_device_id(m->package_id))
                return INVALID(err, "PackageId is not [A-Za-z0-9][A-Za-z0-9._-]{0,63}");
        if (m->length > SOAP_MAX_SOFTWARE_LENGTH)
                return INVALID(err, "Length %" PRIu32 " is over %u", m->length, SOAP_MAX_SOFTWARE_LENGTH);

        r = write_head(w, m->device_id, NULL);
        if (r >= 0)
                r = write_text(w, "PackageId", m->package_id);
        if (r >= 0)
                r = write_u64(w, "Offset", m->offset);
        if (r < 0)
                return r;
        (void) snprintf(len, sizeof(len), "%" PRIu32, m->length);
        return write_text(w, "Length", len);
}

static int build_report_result(xmlTextWriterPtr w, const SoapReportResult *m, NwError *err) {
        int r;

        r = check_common(m->device_id, m->transaction_id ?: "", NULL, err);
        if (r < 0)
                return r;
        if (m->instruction_id < 1)
                return INVALID(err, "InstructionId must be at least 1");
        if (!soap_outcome_to_string(m->outcome))
                return INVALID(err, "Outcome is not one of Done, Refused, AwaitingConsent, Failed");
        if (m->detail && !soap_valid_text(m->detail, 256))
                return INVALID(err, "Detail must be at most 256 characters of text");

        r = write_head(w, m->device_id, m->transaction_id);
        if (r >= 0)
                r = write_u64(w, "InstructionId", m->instruction_id);
        if (r >= 0)
                r = write_text(w, "Outcome", soap_outcome_to_string(m->outcome));
        if (r >= 0 && m->detail)
                r = write_text(w, "Detail", m->detail);
        return r;
}

int soap_build_request(const SoapRequest *req, size_t max_size, char **ret, size_t *ret_size, NwError *err) {
        _cleanup_(xmlBufferFreep) xmlBufferPtr buf = NULL;
        _cleanup_(xmlFreeTextWriterp) xmlTextWriterPtr w = NULL;
        const char *name;
        char *out;
        size_t n;
        int r;

        assert(req);
        assert(ret);
        assert(ret_size);

        name = soap_operation_to_string(req->op);
        if (!name || !req->check_in)
                return INVALID(err, "Unknown operation");

        buf = xmlBufferCreate();
        if (!buf)
                return -ENOMEM;
        w = xmlNewTextWriterMemory(buf, 0);
        if (!w)
                return -ENOMEM;

        W(xmlTextWriterStartElementNS(w, BAD_CAST "s", BAD_CAST "Envelope", BAD_CAST SOAP_ENV_NS));
        W(xmlTextWriterStartElementNS(w, BAD_CAST "s", BAD_CAST "Body", NULL));
        W(xmlTextWriterStartElementNS(w, NULL, BAD_CAST name, BAD_CAST CALLHOME_NS));

        switch (req->op) {
        case SOAP_CHECK_IN:
                r = build_check_in(w, req->check_in, err);
                break;
        case SOAP_SUBMIT_METER_READS:
                r = build_meter_reads(w, req->meter_reads, err);
                break;
        case SOAP_SUBMIT_SUPPLIES:
                r = build_supplies(w, req->supplies, err);
                break;
        case SOAP_SUBMIT_DIAGNOSTICS:
                r = build_diagnostics(w, req->diagnostics, err);
                break;
        case SOAP_GET_SOFTWARE:
                r = build_get_software(w, req->get_software, err);
                break;
        case SOAP_REPORT_RESULT:
                r = build_report_result(w, req->report_result, err);
                break;
        default:
                assert(false);
                r = -EINVAL;
        }
        if (r < 0)
                return r == -ENOMEM ? nw_error_set(err, r, NW_ERROR_INVALID_REQUEST, "Out of memory") : r;

        for (int i = 0; i < 3; i++) /* the operation's element, Body, Envelope */
                W(xmlTextWriterEndElement(w));
        W(xmlTextWriterFlush(w));

        n = (size_t) xmlBufferLength(buf);
        if (n > max_size)
                return nw_error_set(err, -E2BIG, NW_ERROR_INVALID_REQUEST,
                                    "The %s request would be %zu bytes, over the limit of %zu", name, n, max_size);
        out = malloc(n + 1);
        if (!out)
                return -ENOMEM;
        memcpy(out, xmlBufferContent(buf), n);
        out[n] = '\0';
        *ret = out;
        *ret_size = n;
        return 0;
}
