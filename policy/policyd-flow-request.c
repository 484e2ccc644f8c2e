/* SPDX-License-Identifier: Apache-2.0 */
/* From the outbound record to the net-worker's call. The record holds the
 * exact request element payload_build() made (and Preview shows); the call
 * carries the same fields, read back from those bytes. So what is sent is
 * what was recorded, on the first attempt and after a crash alike. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "parse-util.h"
#include "policyd-flow.h"

#define SOAP_NS "urn:callhome:soap:v1"

static const char *const record_types[_SEND_KIND_MAX] = {
        [SEND_METER_READS] = "meter-reads",
        [SEND_SUPPLIES] = "supplies",
};

const char *send_kind_record_type(SendKind k) {
        return k >= 0 && k < _SEND_KIND_MAX ? record_types[k] : NULL;
}

const char *send_kind_operation(SendKind k) {
        return k == SEND_METER_READS ? "SubmitMeterReads" : "SubmitSupplies";
}

const char *send_kind_words(SendKind k) {
        return k == SEND_METER_READS ? "Meter reads" : "Supplies";
}

SendKind send_kind_from_record_type(const char *s) {
        for (SendKind k = 0; k < _SEND_KIND_MAX; k++)
                if (s && streq(s, record_types[k]))
                        return k;
        return (SendKind) -EINVAL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlDoc *, xmlFreeDoc);

static bool is(const xmlNode *n, const char *name) {
        return n && n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, (const xmlChar *) name) && n->ns &&
               xmlStrEqual(n->ns->href, (const xmlChar *) SOAP_NS);
}

static const xmlNode *next_element(const xmlNode *n) {
        while (n && n->type != XML_ELEMENT_NODE)
                n = n->next;
        return n;
}

/* The text of element `name` at *n (then *n moves past it); NULL if *n is not it.
 * An optional element that is absent gives "" when `optional`. */
static const char *text_of(const xmlNode **n, const char *name, bool optional) {
        const xmlNode *e = next_element(*n);

        if (!is(e, name))
                return optional ? "" : NULL;
        *n = e->next;
        if (!e->children)
                return "";
        if (e->children->type != XML_TEXT_NODE || e->children->next)
                return NULL;
        return (const char *) e->children->content;
}

static int read_int(const char *s, int32_t min, int32_t *ret) {
        long long v;
        char *end;

        if (!s || !*s)
                return -EBADMSG;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || *end || v < min || v > INT32_MAX)
                return -EBADMSG;
        *ret = (int32_t) v;
        return 0;
}

static int append_meter(sd_bus_message *call, const xmlNode *e) {
        const xmlNode *c = e->children;
        const char *name = text_of(&c, "Name", false), *value = text_of(&c, "Value", false);
        const char *unit = text_of(&c, "Unit", true), *anomaly = text_of(&c, "Anomaly", true);
        uint64_t v;

        if (!name || !value || !unit || !anomaly || next_element(c) || safe_atou64(value, &v) < 0 ||
            !(streq(anomaly, "") || streq(anomaly, "Decreased")))
                return -EBADMSG;
        return sd_bus_message_append(call, "(stsb)", name, v, unit, (int) streq(anomaly, "Decreased"));
}

static int append_supply(sd_bus_message *call, const xmlNode *e) {
        const xmlNode *c = e->children;
        const char *name = text_of(&c, "Name", false), *type = text_of(&c, "Type", true);
        const char *level = text_of(&c, "Level", false), *max = text_of(&c, "MaxCapacity", false);
        const char *unit = text_of(&c, "Unit", true);
        int32_t l, mc;

        if (!name || !type || !unit || read_int(level, -3, &l) < 0 || read_int(max, -2, &mc) < 0 || next_element(c))
                return -EBADMSG;
        return sd_bus_message_append(call, "(ssiis)", name, type, l, mc, unit);
}

int flow_request_append(sd_bus_message *call, SendKind kind, const char *txn, const char *xml, size_t xml_len) {
        _cleanup_(xmlFreeDocp) xmlDoc *doc = NULL;
        const char *device, *id, *when, *item = kind == SEND_METER_READS ? "Meter" : "Supply";
        const xmlNode *root, *n;
        int r;

        assert(call);
        assert(txn);
        if (!xml || xml_len == 0 || xml_len > INT_MAX)
                return -EBADMSG;
        /* No DTD, no entities, no network: the bytes are our own, but read them as if they were not. */
        doc = xmlReadMemory(xml, (int) xml_len, NULL, "UTF-8", XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        if (!doc || doc->intSubset)
                return -EBADMSG;
        root = xmlDocGetRootElement(doc);
        if (!is(root, send_kind_operation(kind)))
                return -EBADMSG;
        n = root->children;
        device = text_of(&n, "DeviceId", false);
        id = text_of(&n, "TransactionId", false);
        when = text_of(&n, "Time", false);
        if (!device || !id || !when || !streq(id, txn))
                return -EBADMSG;
        r = sd_bus_message_append(call, "sss", device, id, when);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(call, 'a', kind == SEND_METER_READS ? "(stsb)" : "(ssiis)");
        if (r < 0)
                return r;
        for (n = next_element(n); n; n = next_element(n->next)) {
                if (!is(n, item))
                        return -EBADMSG;
                r = kind == SEND_METER_READS ? append_meter(call, n) : append_supply(call, n);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(call);
}
