/* SPDX-License-Identifier: Apache-2.0 */
/* The allowlist applied centrally (S7): a snapshot becomes the request
 * element of ipc/soap/callhome.xsd with only the allowed fields; each other
 * field is listed as dropped. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "payload.h"

#define SOAP_NS "urn:callhome:soap:v1"

PolicySnapshot *policy_snapshot_free(PolicySnapshot *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_meters; i++) {
                free(s->meters[i].name);
                free(s->meters[i].unit);
        }
        for (size_t i = 0; i < s->n_supplies; i++) {
                free(s->supplies[i].name);
                free(s->supplies[i].type);
                free(s->supplies[i].unit);
        }
        free(s->meters);
        free(s->supplies);
        free(s->serial);
        free(s->model);
        free(s);
        return NULL;
}

Payload *payload_free(Payload *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_dropped; i++)
                free(p->dropped[i].field);
        free(p->dropped);
        free(p->xml);
        free(p);
        return NULL;
}

static bool all_of(const char *s, const char *set, size_t min, size_t max) {
        size_t n = strlen(s);
        return n >= min && n <= max && strspn(s, set) == n;
}

#define ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

bool payload_name_valid(const char *s) {
        return all_of(s, ALNUM "._:/-", 1, 64);
}

bool payload_device_id_valid(const char *s) {
        return all_of(s, ALNUM "._-", 1, 64) && strchr(ALNUM, s[0]);
}

static int drop(Payload *p, const char *prefix, const char *name, const char *reason) {
        DroppedField *d = realloc(p->dropped, (p->n_dropped + 1) * sizeof(DroppedField));

        if (!d)
                return -ENOMEM;
        p->dropped = d;
        if (asprintf(&d[p->n_dropped].field, "%s.%s", prefix, name) < 0)
                return -ENOMEM;
        d[p->n_dropped++].reason = reason;
        return 0;
}

/* Whether an entry goes out; if not, it is listed with the reason. */
static int keep(const Policy *policy, Payload *p, const char *prefix, const char *name, const char *unit) {
        _cleanup_free_ char *field = NULL;
        int r;

        if (!payload_name_valid(name) || (unit && *unit && !payload_name_valid(unit))) {
                /* Not even its name can be quoted safely: list a placeholder. */
                r = drop(p, prefix, payload_name_valid(name) ? name : "(invalid name)",
                         "not a valid protocol name");
                return r < 0 ? r : 0;
        }
        if (asprintf(&field, "%s.%s", prefix, name) < 0)
                return -ENOMEM;
        if (!policy_allows_field(policy, field)) {
                r = drop(p, prefix, name, "not in the allowlist");
                return r < 0 ? r : 0;
        }
        p->n_kept++;
        return 1;
}

static int format_time(uint64_t usec, char buf[static 32]) {
        time_t t = (time_t) (usec / 1000000);
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                return -ERANGE;
        return 0;
}

static int fail(char **ret_error, const char *what) {
        if (ret_error)
                *ret_error = strdup(what);
        return -EBADMSG;
}

int payload_build(const Policy *policy, const PolicySnapshot *s, PolicyService service, const char *txn, Payload **ret,
                  char **ret_error) {
        _cleanup_(payload_freep) Payload *p = NULL;
        bool meters = service == POLICY_SERVICE_METER_READS;
        char when[32];
        FILE *f;
        int r;

        assert(policy);
        assert(s);
        assert(txn);
        assert(ret);

        if (service != POLICY_SERVICE_METER_READS && service != POLICY_SERVICE_SUPPLIES)
                return -EOPNOTSUPP;
        if (!payload_device_id_valid(s->serial))
                return fail(ret_error, "The collector's serial number is missing or not a valid device id.");
        if (format_time(s->time_usec, when) < 0)
                return fail(ret_error, "The snapshot's time cannot be written as UTC.");
        p = calloc(1, sizeof(Payload));
        if (!p)
                return -ENOMEM;
        p->service = service;
        f = open_memstream(&p->xml, &p->xml_len);
        if (!f)
                return -ENOMEM;
        fprintf(f, "<%s xmlns=\"" SOAP_NS "\"><DeviceId>%s</DeviceId><TransactionId>%s</TransactionId><Time>%s</Time>",
                meters ? "SubmitMeterReads" : "SubmitSupplies", s->serial, txn, when);
        r = 0;
        if (meters)
                for (size_t i = 0; i < s->n_meters && r >= 0; i++) {
                        const SnapshotMeter *m = &s->meters[i];
                        r = keep(policy, p, "meter", m->name, m->unit);
                        if (r > 0) {
                                fprintf(f, "<Meter><Name>%s</Name><Value>%" PRIu64 "</Value>", m->name, m->value);
                                if (*m->unit)
                                        fprintf(f, "<Unit>%s</Unit>", m->unit);
                                fprintf(f, "%s</Meter>", m->decreased ? "<Anomaly>Decreased</Anomaly>" : "");
                        }
                }
        else
                for (size_t i = 0; i < s->n_supplies && r >= 0; i++) {
                        const SnapshotSupply *sp = &s->supplies[i];
                        r = keep(policy, p, "supply", sp->name, sp->unit);
                        if (r > 0 && *sp->type && !payload_name_valid(sp->type))
                                r = -EBADMSG;
                        if (r > 0) {
                                fprintf(f, "<Supply><Name>%s</Name>", sp->name);
                                if (*sp->type)
                                        fprintf(f, "<Type>%s</Type>", sp->type);
                                fprintf(f, "<Level>%" PRIi32 "</Level><MaxCapacity>%" PRIi32 "</MaxCapacity>", sp->level,
                                        sp->max_capacity);
                                if (*sp->unit)
                                        fprintf(f, "<Unit>%s</Unit>", sp->unit);
                                fputs("</Supply>", f);
                        }
                }
        fprintf(f, "</%s>", meters ? "SubmitMeterReads" : "SubmitSupplies");
        if (fclose(f) != 0 || !p->xml)
                return -ENOMEM;
        if (r == -EBADMSG)
                return fail(ret_error, "A supply's type is not a valid protocol name.");
        if (r < 0)
                return r;
        if (p->n_kept == 0)
                return fail(ret_error, meters ? "The allowlist keeps no meter of this snapshot: nothing to send."
                                              : "The allowlist keeps no supply of this snapshot: nothing to send.");
        if (p->n_kept > (meters ? PAYLOAD_METERS_MAX : PAYLOAD_SUPPLIES_MAX))
                return fail(ret_error, meters ? "More than 256 meters are allowed: the protocol takes at most 256."
                                              : "More than 64 supplies are allowed: the protocol takes at most 64.");
        *ret = TAKE_PTR(p);
        return 0;
}
