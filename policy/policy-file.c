/* SPDX-License-Identifier: Apache-2.0 */
/* The policy file: parsed with hardened libxml2 settings, validated against
 * the built-in schema (ipc/callhome-policy.xsd), then every value set through
 * policy_set(), so a file and a D-Bus setter accept exactly the same. Errors
 * say FILE:LINE: element NAME: what. No I/O, no logging. */
#include <assert.h>
#include <libxml/parser.h>
#include <libxml/xmlschemas.h>
#include <stdarg.h>

#include "policy.h"

#define POLICY_NS "urn:callhome:policy:v1"

extern const char policy_xsd[];
extern const size_t policy_xsd_len;

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlDocPtr, xmlFreeDoc)
DEFINE_TRIVIAL_CLEANUP_FUNC(xmlSchemaValidCtxtPtr, xmlSchemaFreeValidCtxt)
DEFINE_TRIVIAL_CLEANUP_FUNC(xmlSchemaParserCtxtPtr, xmlSchemaFreeParserCtxt)

typedef struct ParseState {
        const char *filename;
        char *error;    /* the first error only */
} ParseState;

static void state_fail(ParseState *st, long line, const char *element, const char *format, ...) _printf_(4, 5);
static void state_fail(ParseState *st, long line, const char *element, const char *format, ...) {
        _cleanup_free_ char *what = NULL;
        va_list ap;

        if (st->error)
                return;
        va_start(ap, format);
        if (vasprintf(&what, format, ap) < 0)
                what = NULL;
        va_end(ap);
        if ((element ? asprintf(&st->error, "%s:%ld: element %s: %s", st->filename, line, element, strna(what))
                     : asprintf(&st->error, "%s:%ld: %s", st->filename, line, strna(what))) < 0)
                st->error = NULL;
}

/* A credential's value must never reach a message: libxml2 quotes values in
 * facet errors and the bytes of bad UTF-8 in parser errors. */
static bool node_is_secret(const xmlNode *n) {
        return n && n->type == XML_ELEMENT_NODE && n->parent && n->parent->name &&
               xmlStrEqual(n->parent->name, BAD_CAST "Proxy") &&
               (xmlStrEqual(n->name, BAD_CAST "User") || xmlStrEqual(n->name, BAD_CAST "Password"));
}

static void on_xml_error(void *userdata, xmlErrorPtr e) {
        ParseState *st = userdata;
        const xmlNode *node = e->node;
        _cleanup_free_ char *msg = NULL;
        char *cut;

        if (st->error || e->level < XML_ERR_ERROR)
                return;
        if (node && node->type != XML_ELEMENT_NODE)
                node = node->parent;
        if (node_is_secret(node)) {
                state_fail(st, xmlGetLineNo(node), (const char *) node->name,
                           "not a valid credential (at most %u characters); its value is not shown.",
                           POLICY_CREDENTIAL_MAX);
                return;
        }
        msg = strdup(e->message ?: "invalid");
        if (!msg)
                return;
        cut = strstr(msg, "\nBytes:");
        if (cut)
                *cut = '\0';
        msg[strcspn(msg, "\n")] = '\0';
        state_fail(st, node ? xmlGetLineNo(node) : e->line, node ? (const char *) node->name : NULL, "%s", msg);
}

/* The schema, parsed once from the copy built into the binary. */
static xmlSchemaPtr policy_schema(void) {
        static xmlSchemaPtr schema = NULL;
        _cleanup_(xmlSchemaFreeParserCtxtp) xmlSchemaParserCtxtPtr pc = NULL;

        if (schema)
                return schema;
        pc = xmlSchemaNewMemParserCtxt(policy_xsd, (int) policy_xsd_len);
        if (!pc)
                return NULL;
        schema = xmlSchemaParse(pc);
        return schema;
}

/* Leaf elements and the settings they hold, by their path below <Policy>. */
static const struct {
        const char *path;
        PolicySetting setting;
} leaves[] = {
        { "RemoteServices", POLICY_SETTING_REMOTE_SERVICES },
        { "MeterReads/Mode", POLICY_SETTING_METER_READS },
        { "MeterReads/Interval", POLICY_SETTING_METER_READS_INTERVAL },
        { "Supplies/Mode", POLICY_SETTING_SUPPLIES },
        { "Supplies/Interval", POLICY_SETTING_SUPPLIES_INTERVAL },
        { "Diagnostics/Mode", POLICY_SETTING_DIAGNOSTICS },
        { "SoftwareUpdates/Mode", POLICY_SETTING_SOFTWARE_UPDATES },
        { "SoftwareUpdates/MaintenanceWindow/Start", POLICY_SETTING_MAINTENANCE_WINDOW_START },
        { "SoftwareUpdates/MaintenanceWindow/Minutes", POLICY_SETTING_MAINTENANCE_WINDOW_MINUTES },
        { "CheckIn/Min", POLICY_SETTING_CHECK_IN_MIN },
        { "CheckIn/Max", POLICY_SETTING_CHECK_IN_MAX },
        { "Retry/MinimumWait", POLICY_SETTING_RETRY_MINIMUM_WAIT },
        { "Retry/IntervalMultiplier", POLICY_SETTING_RETRY_INTERVAL_MULTIPLIER },
        { "ServerURL", POLICY_SETTING_SERVER_URL },
        { "Proxy/URL", POLICY_SETTING_PROXY_URL },
        { "Proxy/User", POLICY_SETTING_PROXY_USER },
        { "Proxy/Password", POLICY_SETTING_PROXY_PASSWORD },
        { "WitnessKey", POLICY_SETTING_WITNESS_KEY },
};

typedef struct Walk {
        ParseState *st;
        Policy *p;
        char *fields[POLICY_ALLOWLIST_MAX + 1];
        size_t n_fields;
        const xmlNode *check_in;
} Walk;

static int walk_leaf(Walk *w, const xmlNode *n, const char *path) {
        _cleanup_free_ char *text = NULL, *error = NULL;
        PolicyValue v = {};
        PolicySetting s = _POLICY_SETTING_INVALID;
        uint64_t u;
        int r;

        text = (char *) xmlNodeGetContent(n);
        if (!text)
                return -ENOMEM;
        if (streq(path, "Allowlist/Field")) {
                if (w->n_fields >= POLICY_ALLOWLIST_MAX)
                        return state_fail(w->st, xmlGetLineNo(n), "Field", "more than %u fields.", POLICY_ALLOWLIST_MAX),
                               -EBADMSG;
                w->fields[w->n_fields++] = TAKE_PTR(text);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(leaves); i++)
                if (streq(leaves[i].path, path))
                        s = leaves[i].setting;
        if (s < 0)
                return state_fail(w->st, xmlGetLineNo(n), (const char *) n->name, "not expected here."), -EBADMSG;
        switch (policy_setting_type(s)) {
        case 'b':
                v.b = streq(text, "true") || streq(text, "1");
                break;
        case 'u': {
                /* The schema bounds it; xs:unsignedInt allows surrounding blanks and a '+'. */
                char *t = text + strspn(text, " \t\r\n+");
                char *e = t + strspn(t, "0123456789");
                if (e == t || e - t > 10)
                        return state_fail(w->st, xmlGetLineNo(n), (const char *) n->name, "not a number."), -EBADMSG;
                *e = '\0';
                u = strtoull(t, NULL, 10);
                if (u > UINT32_MAX)
                        return state_fail(w->st, xmlGetLineNo(n), (const char *) n->name, "out of range."), -EBADMSG;
                v.u = (uint32_t) u;
                break;
        }
        default:
                v.s = text;
        }
        r = policy_set(w->p, s, &v, &error);
        if (policy_setting_is_secret(s))
                explicit_bzero(text, strlen(text));
        if (r == -EINVAL)
                return state_fail(w->st, xmlGetLineNo(n), (const char *) n->name, "%s", strna(error)), -EBADMSG;
        if (s == POLICY_SETTING_CHECK_IN_MAX)
                w->check_in = n;
        return r;
}

static int walk(Walk *w, const xmlNode *parent, const char *prefix) {
        int r;

        for (const xmlNode *n = parent->children; n; n = n->next) {
                _cleanup_free_ char *path = NULL;
                bool leaf = true;

                if (n->type != XML_ELEMENT_NODE)
                        continue;
                if (asprintf(&path, "%s%s%s", prefix, *prefix ? "/" : "", (const char *) n->name) < 0)
                        return -ENOMEM;
                for (const xmlNode *c = n->children; c; c = c->next)
                        if (c->type == XML_ELEMENT_NODE)
                                leaf = false;
                r = leaf && !streq(path, "Allowlist") ? walk_leaf(w, n, path) : walk(w, n, path);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int policy_from_doc(ParseState *st, xmlDocPtr doc, Policy **ret) {
        _cleanup_(policy_freep) Policy *p = NULL;
        _cleanup_free_ char *error = NULL;
        xmlNodePtr root = xmlDocGetRootElement(doc);
        Walk w = { .st = st };
        int r;

        r = policy_new_default(&p);
        if (r < 0)
                return r;
        /* Optional elements absent: no proxy, no witness key. */
        r = policy_set(p, POLICY_SETTING_ALLOWLIST, &(PolicyValue) { .strv = (char *const[]) { NULL } }, NULL);
        if (r < 0)
                return r;
        w.p = p;
        r = walk(&w, root, "");
        if (r >= 0)
                r = policy_set(p, POLICY_SETTING_ALLOWLIST, &(PolicyValue) { .strv = w.fields }, &error);
        for (size_t i = 0; i < w.n_fields; i++)
                free(w.fields[i]);
        if (r == -EINVAL)
                return state_fail(st, xmlGetLineNo(root), "Allowlist", "%s", strna(error)), -EBADMSG;
        if (r < 0)
                return r;
        if (policy_check(p, &error) < 0)
                return state_fail(st, w.check_in ? xmlGetLineNo(w.check_in) : xmlGetLineNo(root), "Max", "%s",
                                  strna(error)), -EBADMSG;
        *ret = TAKE_PTR(p);
        return 0;
}

int policy_parse(const char *buf, size_t len, const char *filename, Policy **ret, char **ret_error) {
        _cleanup_(xmlFreeDocp) xmlDocPtr doc = NULL;
        _cleanup_(xmlSchemaFreeValidCtxtp) xmlSchemaValidCtxtPtr vc = NULL;
        ParseState st = { .filename = filename ?: "policy" };
        xmlSchemaPtr schema;
        xmlNodePtr root;
        int r;

        assert(buf || len == 0);
        assert(ret);

        if (len > POLICY_FILE_MAX) {
                state_fail(&st, 0, NULL, "larger than %u bytes, not read.", POLICY_FILE_MAX);
                r = -EFBIG;
                goto fail;
        }
        /* No DTD, hence no entity can be declared: refused before libxml2 sees it. */
        if (memmem(buf, len, "<!DOCTYPE", 9) || memmem(buf, len, "<!ENTITY", 8)) {
                state_fail(&st, 1, NULL, "a DOCTYPE or ENTITY declaration is not allowed in a policy file.");
                r = -EBADMSG;
                goto fail;
        }
        schema = policy_schema();
        if (!schema)
                return -ENOMEM;

        xmlSetStructuredErrorFunc(&st, on_xml_error);
        /* Never: NOENT (substitute entities), DTDLOAD, DTDATTR, XINCLUDE, HUGE. No network. */
        /* UTF-8 only: a document in another encoding is not read as one, so the check above sees it all. */
        doc = xmlReadMemory(buf, (int) len, st.filename, "UTF-8",
                            XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_BIG_LINES | XML_PARSE_NOWARNING);
        if (doc && (doc->intSubset || doc->extSubset))
                state_fail(&st, 1, NULL, "a DOCTYPE is not allowed in a policy file.");
        root = doc ? xmlDocGetRootElement(doc) : NULL;
        if (doc && !st.error && !root)
                state_fail(&st, 1, NULL, "no root element.");
        if (root && !st.error) {
                vc = xmlSchemaNewValidCtxt(schema);
                if (!vc) {
                        xmlSetStructuredErrorFunc(NULL, NULL);
                        return -ENOMEM;
                }
                xmlSchemaSetValidStructuredErrors(vc, on_xml_error, &st);
                if (xmlSchemaValidateDoc(vc, doc) != 0)
                        state_fail(&st, xmlGetLineNo(root), (const char *) root->name,
                                   "does not validate against callhome-policy.xsd.");
        }
        if (!doc)
                state_fail(&st, 0, NULL, "not well-formed XML.");
        xmlSetStructuredErrorFunc(NULL, NULL);
        if (st.error) {
                r = -EBADMSG;
                goto fail;
        }
        r = policy_from_doc(&st, doc, ret);
        if (r >= 0)
                return 0;
fail:
        if (ret_error)
                *ret_error = TAKE_PTR(st.error);
        free(st.error);
        return r;
}

/* --- writing ---------------------------------------------------------------- */

static void put_escaped(FILE *f, const char *s) {
        for (; *s; s++)
                switch (*s) {
                case '&':
                        fputs("&amp;", f);
                        break;
                case '<':
                        fputs("&lt;", f);
                        break;
                case '>':
                        fputs("&gt;", f);
                        break;
                default:
                        fputc(*s, f);
                }
}

static void put_element(FILE *f, const char *indent, const char *name, const char *value) {
        fprintf(f, "%s<%s>", indent, name);
        put_escaped(f, value);
        fprintf(f, "</%s>\n", name);
}

int policy_format(const Policy *p, char **ret, size_t *ret_len) {
        /* One buffer, never reallocated: no stray copy of a credential is left behind in freed memory. */
        char *buf = calloc(1, POLICY_FILE_MAX + 1);
        size_t len;
        FILE *f;

        assert(p);
        assert(ret);
        if (!buf)
                return -ENOMEM;
        f = fmemopen(buf, POLICY_FILE_MAX + 1, "w");
        if (!f) {
                free(buf);
                return -ENOMEM;
        }
        fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
              "<!-- callhome-policy.xml(5): written by callhome-policyd; changes over D-Bus (org.callhome.Policy1) are audited. -->\n"
              "<Policy xmlns=\"" POLICY_NS "\">\n", f);
        put_element(f, "  ", "RemoteServices", p->remote_services ? "true" : "false");
        fprintf(f, "  <MeterReads><Mode>%s</Mode><Interval>%u</Interval></MeterReads>\n",
                service_mode_to_string(p->mode[POLICY_SERVICE_METER_READS]), p->meter_reads_interval);
        fprintf(f, "  <Supplies><Mode>%s</Mode><Interval>%u</Interval></Supplies>\n",
                service_mode_to_string(p->mode[POLICY_SERVICE_SUPPLIES]), p->supplies_interval);
        fprintf(f, "  <Diagnostics><Mode>%s</Mode></Diagnostics>\n",
                service_mode_to_string(p->mode[POLICY_SERVICE_DIAGNOSTICS]));
        fprintf(f, "  <SoftwareUpdates>\n    <Mode>%s</Mode>\n"
                "    <MaintenanceWindow><Start>%s</Start><Minutes>%u</Minutes></MaintenanceWindow>\n"
                "  </SoftwareUpdates>\n",
                service_mode_to_string(p->mode[POLICY_SERVICE_SOFTWARE_UPDATES]), p->maintenance_start,
                p->maintenance_minutes);
        fprintf(f, "  <CheckIn><Min>%u</Min><Max>%u</Max></CheckIn>\n", p->check_in_min, p->check_in_max);
        fprintf(f, "  <Retry><MinimumWait>%u</MinimumWait><IntervalMultiplier>%u</IntervalMultiplier></Retry>\n",
                p->retry_minimum_wait, p->retry_interval_multiplier);
        put_element(f, "  ", "ServerURL", p->server_url);
        if (*p->proxy_url) {
                fputs("  <Proxy>\n", f);
                put_element(f, "    ", "URL", p->proxy_url);
                if (*p->proxy_user)
                        put_element(f, "    ", "User", p->proxy_user);
                if (*p->proxy_password)
                        put_element(f, "    ", "Password", p->proxy_password);
                fputs("  </Proxy>\n", f);
        }
        fputs("  <Allowlist>\n", f);
        for (size_t i = 0; i < p->n_allowlist; i++)
                put_element(f, "    ", "Field", p->allowlist[i]);
        fputs("  </Allowlist>\n", f);
        if (*p->witness_key)
                put_element(f, "  ", "WitnessKey", p->witness_key);
        fputs("</Policy>\n", f);
        len = (size_t) ftell(f);
        /* What policy_parse() would refuse is never written (the bounds keep a policy well below it). */
        if (fclose(f) != 0 || len >= POLICY_FILE_MAX) {
                erase_and_free(buf, POLICY_FILE_MAX + 1);
                return -ENOBUFS;
        }
        *ret = buf;
        if (ret_len)
                *ret_len = len;
        return 0;
}
