/* SPDX-License-Identifier: Apache-2.0 */
/* Replies from the network, read by the least trusted process: libxml2 with no
 * DTD (a DOCTYPE stops the parser before its internal subset is read), no
 * entity substitution, no network, no XInclude, and caps on size, depth and
 * element count enforced from the SAX callbacks while parsing; then the tree
 * is checked against the one shape the contract allows for the operation. */
#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "parse-util.h"
#include "soap-message.h"
#include "soap-util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlDocPtr, xmlFreeDoc);
DEFINE_TRIVIAL_CLEANUP_FUNC(xmlParserCtxtPtr, xmlFreeParserCtxt);

static const char *const instruction_kind_table[_SOAP_INSTRUCTION_MAX] = {
        [SOAP_INSTRUCTION_SEND_METER_READS] = "SendMeterReads",
        [SOAP_INSTRUCTION_SEND_SUPPLIES] = "SendSupplies",
        [SOAP_INSTRUCTION_SET_CHECK_IN_INTERVAL] = "SetCheckInInterval",
        [SOAP_INSTRUCTION_SOFTWARE_AVAILABLE] = "SoftwareAvailable",
        [SOAP_INSTRUCTION_DIAGNOSTICS_REQUESTED] = "DiagnosticsRequested",
};

static const char *const ack_status_table[_SOAP_ACK_MAX] = {
        [SOAP_ACK_ACCEPTED] = "Accepted",
        [SOAP_ACK_DUPLICATE] = "Duplicate",
};

const char *soap_instruction_kind_to_string(SoapInstructionKind k) {
        return k >= 0 && k < _SOAP_INSTRUCTION_MAX ? instruction_kind_table[k] : NULL;
}

const char *soap_ack_status_to_string(SoapAckStatus s) {
        return s >= 0 && s < _SOAP_ACK_MAX ? ack_status_table[s] : NULL;
}

static void blob_done(SoapBlob *b) {
        free(b->data);
        *b = (SoapBlob) {};
}

static void instruction_done(SoapInstruction *i) {
        free(i->package_id);
        free(i->version);
        free(i->sha256);
        free(i->reason);
        for (size_t k = 0; k < i->n_items; k++)
                free(i->items[k]);
        free(i->items);
        *i = (SoapInstruction) {};
}

void soap_reply_done(SoapReply *r) {
        if (!r)
                return;
        switch (r->op) {
        case SOAP_CHECK_IN:
                for (size_t i = 0; i < r->check_in.n_instructions; i++)
                        instruction_done(r->check_in.instructions + i);
                free(r->check_in.instructions);
                free(r->check_in.acked_root);
                free(r->check_in.cosignature);
                break;
        case SOAP_GET_SOFTWARE:
                free(r->software.package_id);
                blob_done(&r->software.data);
                blob_done(&r->software.manifest);
                blob_done(&r->software.manifest_signature);
                blob_done(&r->software.signer_certificate);
                break;
        case SOAP_SUBMIT_METER_READS:
        case SOAP_SUBMIT_SUPPLIES:
        case SOAP_SUBMIT_DIAGNOSTICS:
        case SOAP_REPORT_RESULT:
                free(r->ack.transaction_id);
                break;
        default:
                break;
        }
        *r = (SoapReply) { .op = _SOAP_OPERATION_INVALID };
}

/* ---- the guard: runs inside the parser ---- */

typedef struct ParseGuard {
        const SoapParseLimits *limits;
        unsigned depth, elements;
        bool doctype, too_deep, too_many;
        startElementNsSAX2Func start;
        endElementNsSAX2Func end;
} ParseGuard;

static void guard_stop(void *ctx) {
        xmlStopParser((xmlParserCtxtPtr) ctx);
}

static void guard_doctype(void *ctx, const xmlChar *name, const xmlChar *external_id, const xmlChar *system_id) {
        ParseGuard *g = ((xmlParserCtxtPtr) ctx)->_private;

        g->doctype = true;
        guard_stop(ctx);
}

static void guard_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
                              const xmlChar *system_id, xmlChar *content) {
        ParseGuard *g = ((xmlParserCtxtPtr) ctx)->_private;

        g->doctype = true;
        guard_stop(ctx);
}

static void guard_start(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri,
                        int nb_namespaces, const xmlChar **namespaces, int nb_attributes, int nb_defaulted,
                        const xmlChar **attributes) {
        ParseGuard *g = ((xmlParserCtxtPtr) ctx)->_private;

        if (++g->depth > g->limits->max_depth) {
                g->too_deep = true;
                guard_stop(ctx);
                return;
        }
        if (++g->elements > g->limits->max_nodes) {
                g->too_many = true;
                guard_stop(ctx);
                return;
        }
        g->start(ctx, localname, prefix, uri, nb_namespaces, namespaces, nb_attributes, nb_defaulted, attributes);
}

static void guard_end(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri) {
        ParseGuard *g = ((xmlParserCtxtPtr) ctx)->_private;

        g->depth--;
        g->end(ctx, localname, prefix, uri);
}

static int parse_hardened(const char *buf, size_t size, const SoapParseLimits *limits, xmlDocPtr *ret,
                          NwError *err) {
        _cleanup_(xmlFreeParserCtxtp) xmlParserCtxtPtr ctxt = NULL;
        _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
        ParseGuard g = { .limits = limits };
        const xmlError *e;

        if (size > limits->max_size || size > INT_MAX)
                return nw_error_set(err, -EFBIG, NW_ERROR_TOO_LARGE, "Reply of %zu bytes is over the limit of %zu",
                                    size, limits->max_size);

        ctxt = xmlNewParserCtxt();
        if (!ctxt)
                return -ENOMEM;
        ctxt->_private = &g;
        g.start = ctxt->sax->startElementNs;
        g.end = ctxt->sax->endElementNs;
        ctxt->sax->startElementNs = guard_start;
        ctxt->sax->endElementNs = guard_end;
        ctxt->sax->internalSubset = guard_doctype;
        ctxt->sax->externalSubset = guard_doctype;
        ctxt->sax->entityDecl = guard_entity_decl;

        /* Deliberately absent: XML_PARSE_NOENT (substitution), XML_PARSE_DTDLOAD,
         * XML_PARSE_DTDATTR, XML_PARSE_DTDVALID, XML_PARSE_XINCLUDE, XML_PARSE_HUGE. */
        /* UTF-8, as the contract says, whatever the document declares: no iconv
         * (which would load gconv modules from disk) and no other charset. */
        doc = xmlCtxtReadMemory(ctxt, buf, (int) size, NULL, "UTF-8",
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
        if (g.doctype)
                return nw_error_set(err, -EBADMSG, NW_ERROR_MALFORMED_REPLY,
                                    "Reply carries a DOCTYPE; no DTD is accepted");
        if (g.too_deep)
                return nw_error_set(err, -EFBIG, NW_ERROR_TOO_LARGE, "Reply nests elements deeper than %u",
                                    limits->max_depth);
        if (g.too_many)
                return nw_error_set(err, -EFBIG, NW_ERROR_TOO_LARGE, "Reply has more than %u elements",
                                    limits->max_nodes);
        e = xmlCtxtGetLastError(ctxt);
        if (!doc || !ctxt->wellFormed || (e && e->level >= XML_ERR_ERROR)) {
                const char *m = e && e->message ? e->message : "not well-formed\n";
                size_t n = strcspn(m, "\n");

                return nw_error_set(err, -EBADMSG, NW_ERROR_MALFORMED_REPLY, "Reply is not XML: line %d: %.*s",
                                    e ? e->line : 0, (int) n, m);
        }
        if (doc->intSubset || doc->extSubset)
                return nw_error_set(err, -EBADMSG, NW_ERROR_MALFORMED_REPLY, "Reply carries a DTD");

        *ret = TAKE_PTR(doc);
        return 0;
}

/* ---- the shape ---- */

#define MALFORMED(err, ...) nw_error_set((err), -EBADMSG, NW_ERROR_MALFORMED_REPLY, __VA_ARGS__)

static bool is_blank(const xmlChar *s) {
        return !s || s[strspn((const char *) s, " \t\r\n")] == '\0';
}

static bool elem_is(const xmlNode *n, const char *name, const char *ns) {
        if (!xmlStrEqual(n->name, BAD_CAST name))
                return false;
        if (!ns)
                return !n->ns;
        return n->ns && xmlStrEqual(n->ns->href, BAD_CAST ns);
}

/* The next element from *pos on, skipping whitespace and comments; NULL at the end. */
static int peek_elem(xmlNode *pos, xmlNode **ret, NwError *err) {
        for (xmlNode *n = pos; n; n = n->next) {
                switch (n->type) {
                case XML_ELEMENT_NODE:
                        if (n->properties)
                                return MALFORMED(err, "Element <%s> has attributes; the contract uses none",
                                                 (const char *) n->name);
                        *ret = n;
                        return 0;
                case XML_TEXT_NODE:
                        if (!is_blank(n->content))
                                return MALFORMED(err, "Text where only elements belong");
                        break;
                case XML_COMMENT_NODE:
                        break;
                default:
                        return MALFORMED(err, "Unexpected XML node of type %d", (int) n->type);
                }
        }
        *ret = NULL;
        return 0;
}

/* Takes the element `name` in `ns` at *pos. Absent and optional: 0 and *ret = NULL. */
static int take(xmlNode **pos, const char *name, const char *ns, bool optional, xmlNode **ret, NwError *err) {
        xmlNode *n;
        int r;

        r = peek_elem(*pos, &n, err);
        if (r < 0)
                return r;
        if (n && elem_is(n, name, ns)) {
                *pos = n->next;
                *ret = n;
                return 0;
        }
        if (optional) {
                *ret = NULL;
                return 0;
        }
        if (!n)
                return MALFORMED(err, "Expected <%s>, found the end of its parent", name);
        return MALFORMED(err, "Expected <%s>, found <%.64s>", name, (const char *) n->name);
}

static int take_end(xmlNode *pos, const char *parent, NwError *err) {
        xmlNode *n;
        int r;

        r = peek_elem(pos, &n, err);
        if (r < 0)
                return r;
        if (n)
                return MALFORMED(err, "Unexpected <%.64s> in <%s>", (const char *) n->name, parent);
        return 0;
}

/* The one element among parent's children (whitespace and comments aside). */
static int only_child(xmlNode *parent, xmlNode **ret, NwError *err) {
        xmlNode *n;
        int r;

        r = peek_elem(parent->children, &n, err);
        if (r < 0)
                return r;
        if (!n)
                return MALFORMED(err, "<%s> is empty", (const char *) parent->name);
        r = take_end(n->next, (const char *) parent->name, err);
        if (r < 0)
                return r;
        *ret = n;
        return 0;
}

/* The text of a leaf element, at most max bytes; no child elements. */
static int leaf_text(xmlNode *e, size_t max, char **ret, NwError *err) {
        _cleanup_free_ char *s = NULL;

        for (xmlNode *n = e->children; n; n = n->next)
                if (n->type != XML_TEXT_NODE)
                        return MALFORMED(err, "<%s> must hold text only", (const char *) e->name);
        s = (char *) xmlNodeGetContent(e);
        if (!s) {
                s = strdup("");
                if (!s)
                        return -ENOMEM;
        }
        if (strlen(s) > max)
                return MALFORMED(err, "<%s> is longer than %zu bytes", (const char *) e->name, max);
        *ret = TAKE_PTR(s);
        return 0;
}

/* Leaf text with XML whitespace around it removed (the numeric and token types collapse it). */
static int leaf_token(xmlNode *e, size_t max, char **ret, NwError *err) {
        _cleanup_free_ char *s = NULL;
        size_t a, n;
        int r;

        r = leaf_text(e, max + 64, &s, err);
        if (r < 0)
                return r;
        a = strspn(s, " \t\r\n");
        n = strlen(s + a);
        while (n > 0 && strchr(" \t\r\n", s[a + n - 1]))
                n--;
        if (n > max)
                return MALFORMED(err, "<%s> is longer than %zu bytes", (const char *) e->name, max);
        memmove(s, s + a, n);
        s[n] = '\0';
        *ret = TAKE_PTR(s);
        return 0;
}

static int leaf_u64(xmlNode *e, uint64_t min, uint64_t max, uint64_t *ret, NwError *err) {
        _cleanup_free_ char *s = NULL;
        uint64_t v;
        int r;

        r = leaf_token(e, 20, &s, err);
        if (r < 0)
                return r;
        if (safe_atou64(s, &v) < 0 || v < min || v > max)
                return MALFORMED(err, "<%s> is not a number from %" PRIu64 " to %" PRIu64, (const char *) e->name,
                                 min, max);
        *ret = v;
        return 0;
}

typedef bool (*TokenCheck)(const char *s);

static int take_u64(xmlNode **pos, const char *name, uint64_t min, uint64_t max, uint64_t *ret, NwError *err) {
        xmlNode *e;
        int r;

        r = take(pos, name, CALLHOME_NS, false, &e, err);
        if (r < 0)
                return r;
        return leaf_u64(e, min, max, ret, err);
}

/* A token element checked by `check`; optional ones leave *ret NULL when absent. */
static int take_token(xmlNode **pos, const char *name, bool optional, size_t max, TokenCheck check, char **ret,
                      NwError *err) {
        _cleanup_free_ char *s = NULL;
        xmlNode *e;
        int r;

        r = take(pos, name, CALLHOME_NS, optional, &e, err);
        if (r < 0 || !e)
                return r;
        r = leaf_token(e, max, &s, err);
        if (r < 0)
                return r;
        if (check && !check(s))
                return MALFORMED(err, "<%s> is not of its contract type", name);
        *ret = TAKE_PTR(s);
        return 0;
}

static int take_text(xmlNode **pos, const char *name, bool optional, size_t max_chars, char **ret, NwError *err) {
        _cleanup_free_ char *s = NULL;
        xmlNode *e;
        int r;

        r = take(pos, name, CALLHOME_NS, optional, &e, err);
        if (r < 0 || !e)
                return r;
        r = leaf_text(e, max_chars * 4, &s, err);
        if (r < 0)
                return r;
        if (!soap_valid_text(s, max_chars))
                return MALFORMED(err, "<%s> is longer than %zu characters", name, max_chars);
        *ret = TAKE_PTR(s);
        return 0;
}

static bool valid_hash(const char *s) {
        return soap_valid_base64(s, 32);
}

static int take_blob(xmlNode **pos, const char *name, bool optional, SoapBlob *ret, bool *ret_present,
                     NwError *err) {
        _cleanup_free_ char *s = NULL;
        xmlNode *e;
        int r;

        r = take(pos, name, CALLHOME_NS, optional, &e, err);
        if (r < 0)
                return r;
        if (ret_present)
                *ret_present = e;
        if (!e)
                return 0;
        r = leaf_text(e, SIZE_MAX, &s, err);
        if (r < 0)
                return r;
        r = soap_base64_decode(s, strlen(s), &ret->data, &ret->size);
        if (r == -EINVAL)
                return MALFORMED(err, "<%s> is not base64", name);
        return r;
}

/* ---- faults ---- */

static int parse_fault(xmlNode *fault, NwError *err) {
        _cleanup_(nw_fault_done) NwFault f = {};
        _cleanup_free_ char *code = NULL;
        xmlNode *pos = fault->children, *e, *detail, *d;
        const char *colon, *local;
        xmlNs *ns;
        int r;

        r = take(&pos, "faultcode", NULL, false, &e, err);
        if (r < 0)
                return r;
        r = leaf_token(e, 256, &code, err);
        if (r < 0)
                return r;
        colon = strchr(code, ':');
        if (colon) {
                _cleanup_free_ char *prefix = strndup(code, (size_t) (colon - code));
                if (!prefix)
                        return -ENOMEM;
                ns = xmlSearchNs(fault->doc, e, BAD_CAST prefix);
                local = colon + 1;
        } else {
                ns = xmlSearchNs(fault->doc, e, NULL);
                local = code;
        }
        if (!ns || !xmlStrEqual(ns->href, BAD_CAST SOAP_ENV_NS))
                return MALFORMED(err, "Fault code is not in the SOAP envelope namespace");
        if (streq(local, "Server") || !strncmp(local, "Server.", 7))
                f.server = true;
        else if (!streq(local, "Client") && strncmp(local, "Client.", 7))
                return MALFORMED(err, "Fault code is neither Client nor Server");

        r = take(&pos, "faultstring", NULL, false, &e, err);
        if (r < 0)
                return r;
        r = leaf_text(e, 4096, &f.string, err);
        if (r < 0)
                return r;
        r = take(&pos, "faultactor", NULL, true, &e, err);
        if (r < 0)
                return r;
        r = take(&pos, "detail", NULL, false, &detail, err);
        if (r < 0)
                return r;
        r = take_end(pos, "Fault", err);
        if (r < 0)
                return r;

        r = only_child(detail, &d, err);
        if (r < 0)
                return r;
        if (!d->ns || !xmlStrEqual(d->ns->href, BAD_CAST CALLHOME_NS))
                return MALFORMED(err, "Fault detail holds no callhome detail element");
        f.detail = nw_fault_detail_from_string((const char *) d->name);
        pos = d->children;
        switch (f.detail) {
        case NW_FAULT_RETRY_AFTER: {
                uint64_t s;
                r = take_u64(&pos, "Seconds", 1, 86400, &s, err);
                f.seconds = (uint32_t) s;
                break;
        }
        case NW_FAULT_NOT_AUTHORIZED:
        case NW_FAULT_BAD_REQUEST:
                r = take_text(&pos, "Reason", false, 256, &f.reason, err);
                break;
        case NW_FAULT_LOG_FORK:
                r = take_u64(&pos, "AckedSize", 0, UINT64_MAX, &f.acked_size, err);
                if (r >= 0)
                        r = take_token(&pos, "AckedRoot", false, 44, valid_hash, &f.acked_root, err);
                if (r >= 0)
                        r = take_text(&pos, "Reason", false, 256, &f.reason, err);
                break;
        default:
                return MALFORMED(err, "Unknown fault detail <%.64s>", (const char *) d->name);
        }
        if (r < 0)
                return r;
        r = take_end(pos, (const char *) d->name, err);
        if (r < 0)
                return r;

        if (err) {
                if (f.detail == NW_FAULT_RETRY_AFTER) {
                        err->retry_after = f.seconds;
                        (void) nw_error_set(err, -EREMOTEIO, NW_ERROR_RETRY_AFTER,
                                            "Server asks to retry after %" PRIu32 " s: %.300s", f.seconds, f.string);
                } else
                        (void) nw_error_set(err, -EREMOTEIO, NW_ERROR_SOAP_FAULT, "%s fault: %.200s: %.200s",
                                            nw_fault_detail_to_string(f.detail), f.string, strna(f.reason));
                nw_fault_done(&err->fault);
                err->fault = f;
                err->has_fault = true;
                f = (NwFault) {};
        }
        return -EREMOTEIO;
}

/* ---- replies ---- */

static int parse_instruction(xmlNode *parent, SoapInstruction *ins, NwError *err) {
        xmlNode *pos = parent->children, *e;
        uint64_t v;
        int r;

        r = take_u64(&pos, "Id", 1, UINT64_MAX, &ins->id, err);
        if (r < 0)
                return r;
        r = peek_elem(pos, &e, err);
        if (r < 0)
                return r;
        if (!e || !e->ns || !xmlStrEqual(e->ns->href, BAD_CAST CALLHOME_NS))
                return MALFORMED(err, "Instruction %" PRIu64 " has no typed element", ins->id);
        ins->kind = _SOAP_INSTRUCTION_INVALID;
        for (int k = 0; k < _SOAP_INSTRUCTION_MAX; k++)
                if (xmlStrEqual(e->name, BAD_CAST instruction_kind_table[k]))
                        ins->kind = (SoapInstructionKind) k;
        if (ins->kind < 0)
                return MALFORMED(err, "Instruction %" PRIu64 " is of unknown kind <%.64s>", ins->id,
                                 (const char *) e->name);
        r = take_end(e->next, "Instruction", err);
        if (r < 0)
                return r;

        pos = e->children;
        switch (ins->kind) {
        case SOAP_INSTRUCTION_SEND_METER_READS:
        case SOAP_INSTRUCTION_SEND_SUPPLIES:
                break;
        case SOAP_INSTRUCTION_SET_CHECK_IN_INTERVAL:
                r = take_u64(&pos, "Seconds", 60, 2678400, &v, err);
                if (r < 0)
                        return r;
                ins->seconds = (uint32_t) v;
                break;
        case SOAP_INSTRUCTION_SOFTWARE_AVAILABLE:
                r = take_token(&pos, "PackageId", false, 64, soap_valid_device_id, &ins->package_id, err);
                if (r >= 0)
                        r = take_token(&pos, "Version", false, 27, soap_valid_software_version, &ins->version,
                                       err);
                if (r >= 0)
                        r = take_u64(&pos, "Size", 0, UINT64_MAX, &ins->size, err);
                if (r >= 0)
                        r = take_token(&pos, "Sha256", false, 64, soap_valid_sha256_hex, &ins->sha256, err);
                if (r < 0)
                        return r;
                break;
        case SOAP_INSTRUCTION_DIAGNOSTICS_REQUESTED:
                r = take_text(&pos, "Reason", false, 256, &ins->reason, err);
                if (r < 0)
                        return r;
                for (;;) {
                        char *item = NULL;

                        r = take_token(&pos, "Item", true, 64, soap_valid_name, &item, err);
                        if (r < 0)
                                return r;
                        if (!item)
                                break;
                        if (ins->n_items >= SOAP_MAX_DIAG_ITEMS) {
                                free(item);
                                return MALFORMED(err, "More than %d diagnostic items", SOAP_MAX_DIAG_ITEMS);
                        }
                        if (!ins->items) {
                                ins->items = calloc(SOAP_MAX_DIAG_ITEMS, sizeof(char *));
                                if (!ins->items) {
                                        free(item);
                                        return -ENOMEM;
                                }
                        }
                        ins->items[ins->n_items++] = item;
                }
                break;
        default:
                assert(false);
        }
        return take_end(pos, (const char *) e->name, err);
}

static int parse_check_in(xmlNode *resp, SoapCheckInReply *out, NwError *err) {
        xmlNode *pos = resp->children, *e;
        int r;

        for (;;) {
                r = take(&pos, "Instruction", CALLHOME_NS, true, &e, err);
                if (r < 0)
                        return r;
                if (!e)
                        break;
                if (out->n_instructions >= SOAP_MAX_INSTRUCTIONS)
                        return MALFORMED(err, "More than %d instructions", SOAP_MAX_INSTRUCTIONS);
                if (!out->instructions) {
                        out->instructions = calloc(SOAP_MAX_INSTRUCTIONS, sizeof(SoapInstruction));
                        if (!out->instructions)
                                return -ENOMEM;
                }
                r = parse_instruction(e, out->instructions + out->n_instructions++, err);
                if (r < 0)
                        return r;
        }
        r = take(&pos, "Witness", CALLHOME_NS, true, &e, err);
        if (r < 0)
                return r;
        if (e) {
                xmlNode *wpos = e->children;

                out->has_witness = true;
                r = take_u64(&wpos, "AckedSize", 0, UINT64_MAX, &out->acked_size, err);
                if (r >= 0)
                        r = take_token(&wpos, "AckedRoot", true, 44, valid_hash, &out->acked_root, err);
                if (r >= 0)
                        r = take_text(&wpos, "Cosignature", true, 512, &out->cosignature, err);
                if (r >= 0)
                        r = take_end(wpos, "Witness", err);
                if (r < 0)
                        return r;
        }
        return take_end(pos, "CheckInResponse", err);
}

static bool valid_ack_status(const char *s) {
        return streq(s, "Accepted") || streq(s, "Duplicate");
}

static int parse_ack(xmlNode *resp, SoapAck *out, NwError *err) {
        _cleanup_free_ char *status = NULL;
        xmlNode *pos = resp->children;
        int r;

        r = take_token(&pos, "TransactionId", false, 96, soap_valid_transaction_id, &out->transaction_id, err);
        if (r >= 0)
                r = take_token(&pos, "Status", false, 9, valid_ack_status, &status, err);
        if (r < 0)
                return r;
        out->status = streq(status, "Accepted") ? SOAP_ACK_ACCEPTED : SOAP_ACK_DUPLICATE;
        return take_end(pos, (const char *) resp->name, err);
}

static int parse_software(xmlNode *resp, SoapSoftwareReply *out, NwError *err) {
        xmlNode *pos = resp->children;
        bool sig = false, cert = false;
        int r;

        r = take_token(&pos, "PackageId", false, 64, soap_valid_device_id, &out->package_id, err);
        if (r >= 0)
                r = take_u64(&pos, "TotalSize", 0, UINT64_MAX, &out->total_size, err);
        if (r >= 0)
                r = take_u64(&pos, "Offset", 0, UINT64_MAX, &out->offset, err);
        if (r >= 0)
                r = take_blob(&pos, "Data", false, &out->data, NULL, err);
        if (r >= 0)
                r = take_blob(&pos, "Manifest", true, &out->manifest, &out->has_manifest, err);
        if (r >= 0)
                r = take_blob(&pos, "ManifestSignature", true, &out->manifest_signature, &sig, err);
        if (r >= 0)
                r = take_blob(&pos, "SignerCertificate", true, &out->signer_certificate, &cert, err);
        if (r < 0)
                return r;
        if (out->has_manifest != sig || sig != cert)
                return MALFORMED(err, "Manifest, ManifestSignature and SignerCertificate come together or not at all");
        return take_end(pos, "GetSoftwareResponse", err);
}

int soap_parse_reply(SoapOperation op, const char *buf, size_t size, const SoapParseLimits *limits,
                     SoapReply *ret, NwError *err) {
        _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
        _cleanup_(soap_reply_done) SoapReply reply = { .op = op };
        const char *opname = soap_operation_to_string(op);
        char want[64];
        xmlNode *root = NULL, *pos, *e, *body, *child;
        int r;

        assert(buf || size == 0);
        assert(opname);
        assert(ret);

        r = parse_hardened(buf ?: "", size, limits ?: &SOAP_PARSE_LIMITS_DEFAULT, &doc, err);
        if (r < 0)
                return r;
        assert(doc);

        for (xmlNode *n = doc->children; n; n = n->next) {
                if (n->type == XML_ELEMENT_NODE)
                        root = n;
                else if (n->type != XML_COMMENT_NODE)
                        return MALFORMED(err, "Reply holds a processing instruction or other node outside its root");
        }
        if (!root || !elem_is(root, "Envelope", SOAP_ENV_NS) || root->properties)
                return MALFORMED(err, "Reply is not a SOAP 1.1 Envelope");
        pos = root->children;
        r = take(&pos, "Header", SOAP_ENV_NS, true, &e, err);
        if (r < 0)
                return r;
        if (e) {
                r = peek_elem(e->children, &child, err);
                if (r < 0)
                        return r;
                if (child)
                        return MALFORMED(err, "Reply has a SOAP Header block <%.64s>; callhome defines none",
                                         (const char *) child->name);
        }
        r = take(&pos, "Body", SOAP_ENV_NS, false, &body, err);
        if (r < 0)
                return r;
        r = take_end(pos, "Envelope", err);
        if (r < 0)
                return r;
        r = only_child(body, &child, err);
        if (r < 0)
                return r;

        if (elem_is(child, "Fault", SOAP_ENV_NS))
                return parse_fault(child, err);

        (void) snprintf(want, sizeof(want), "%sResponse", opname);
        if (!elem_is(child, want, CALLHOME_NS))
                return MALFORMED(err, "Expected <%s> in the reply Body, found <%.64s>", want,
                                 (const char *) child->name);

        switch (op) {
        case SOAP_CHECK_IN:
                r = parse_check_in(child, &reply.check_in, err);
                break;
        case SOAP_GET_SOFTWARE:
                r = parse_software(child, &reply.software, err);
                break;
        default:
                r = parse_ack(child, &reply.ack, err);
        }
        if (r < 0)
                return r;
        *ret = reply;
        reply = (SoapReply) { .op = _SOAP_OPERATION_INVALID };
        return 0;
}
