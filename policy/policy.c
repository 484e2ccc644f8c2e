/* SPDX-License-Identifier: Apache-2.0 */
/* The policy in memory: defaults, copies, the allowlist, and each setting as
 * a D-Bus property (get, validated set, text for the audit record). */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>

#include "checkpoint.h"
#include "policy.h"

static const char *const service_mode_table[_SERVICE_MODE_MAX] = {
        [SERVICE_MODE_OFF] = "off",
        [SERVICE_MODE_ASK] = "ask",
        [SERVICE_MODE_AUTOMATIC] = "automatic",
};

static const char *const policy_service_table[_POLICY_SERVICE_MAX] = {
        [POLICY_SERVICE_METER_READS] = "meter-reads",
        [POLICY_SERVICE_SUPPLIES] = "supplies",
        [POLICY_SERVICE_DIAGNOSTICS] = "diagnostics",
        [POLICY_SERVICE_SOFTWARE_UPDATES] = "software-updates",
};

static const char *const policy_setting_table[_POLICY_SETTING_MAX] = {
        [POLICY_SETTING_REMOTE_SERVICES] = "RemoteServices",
        [POLICY_SETTING_METER_READS] = "MeterReads",
        [POLICY_SETTING_METER_READS_INTERVAL] = "MeterReadsInterval",
        [POLICY_SETTING_SUPPLIES] = "Supplies",
        [POLICY_SETTING_SUPPLIES_INTERVAL] = "SuppliesInterval",
        [POLICY_SETTING_DIAGNOSTICS] = "Diagnostics",
        [POLICY_SETTING_SOFTWARE_UPDATES] = "SoftwareUpdates",
        [POLICY_SETTING_MAINTENANCE_WINDOW_START] = "MaintenanceWindowStart",
        [POLICY_SETTING_MAINTENANCE_WINDOW_MINUTES] = "MaintenanceWindowMinutes",
        [POLICY_SETTING_CHECK_IN_MIN] = "CheckInIntervalMin",
        [POLICY_SETTING_CHECK_IN_MAX] = "CheckInIntervalMax",
        [POLICY_SETTING_RETRY_MINIMUM_WAIT] = "RetryMinimumWait",
        [POLICY_SETTING_RETRY_INTERVAL_MULTIPLIER] = "RetryIntervalMultiplier",
        [POLICY_SETTING_SERVER_URL] = "ServerURL",
        [POLICY_SETTING_PROXY_URL] = "ProxyURL",
        [POLICY_SETTING_PROXY_USER] = "ProxyUser",
        [POLICY_SETTING_PROXY_PASSWORD] = "ProxyPassword",
        [POLICY_SETTING_ALLOWLIST] = "Allowlist",
        [POLICY_SETTING_WITNESS_KEY] = "WitnessKey",
};

static int lookup(const char *const *table, size_t n, const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (table[i] && streq(table[i], s))
                        return (int) i;
        return -EINVAL;
}

const char *service_mode_to_string(ServiceMode m) {
        return m >= 0 && m < _SERVICE_MODE_MAX ? service_mode_table[m] : NULL;
}
ServiceMode service_mode_from_string(const char *s) {
        return (ServiceMode) lookup(service_mode_table, _SERVICE_MODE_MAX, s);
}
const char *policy_service_to_string(PolicyService s) {
        return s >= 0 && s < _POLICY_SERVICE_MAX ? policy_service_table[s] : NULL;
}
PolicyService policy_service_from_string(const char *s) {
        return (PolicyService) lookup(policy_service_table, _POLICY_SERVICE_MAX, s);
}
const char *policy_setting_to_string(PolicySetting s) {
        return s >= 0 && s < _POLICY_SETTING_MAX ? policy_setting_table[s] : NULL;
}
PolicySetting policy_setting_from_string(const char *s) {
        return (PolicySetting) lookup(policy_setting_table, _POLICY_SETTING_MAX, s);
}

char policy_setting_type(PolicySetting s) {
        switch (s) {
        case POLICY_SETTING_REMOTE_SERVICES:
                return 'b';
        case POLICY_SETTING_METER_READS_INTERVAL:
        case POLICY_SETTING_SUPPLIES_INTERVAL:
        case POLICY_SETTING_MAINTENANCE_WINDOW_MINUTES:
        case POLICY_SETTING_CHECK_IN_MIN:
        case POLICY_SETTING_CHECK_IN_MAX:
        case POLICY_SETTING_RETRY_MINIMUM_WAIT:
        case POLICY_SETTING_RETRY_INTERVAL_MULTIPLIER:
                return 'u';
        case POLICY_SETTING_ALLOWLIST:
                return 'a';
        default:
                return 's';
        }
}

bool policy_setting_is_secret(PolicySetting s) {
        return s == POLICY_SETTING_PROXY_USER || s == POLICY_SETTING_PROXY_PASSWORD;
}

/* The counters the Printer MIB and PWG 5106.1 define, and every supply level. */
static const char *const default_allowlist[] = {
        "meter.TotalImpressions", "meter.MonochromeImpressions", "meter.FullColorImpressions",
        "meter.HighlightColorImpressions", "meter.BlankImpressions", "meter.TotalTwoSidedImpressions",
        "meter.TotalSheets", "meter.prtMarkerLifeCount.*", "supply.prtMarkerSupplies.*",
};

static char **strv_copy(char *const *l, size_t *ret_n) {
        size_t n = 0;
        char **c;

        while (l && l[n])
                n++;
        c = calloc(n + 1, sizeof(char *));
        if (!c)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                c[i] = strdup(l[i]);
                if (!c[i]) {
                        for (size_t j = 0; j < i; j++)
                                free(c[j]);
                        free(c);
                        return NULL;
                }
        }
        if (ret_n)
                *ret_n = n;
        return c;
}

char **strv_free(char **l) {
        for (size_t i = 0; l && l[i]; i++)
                free(l[i]);
        free(l);
        return NULL;
}

static void secret_free(char *s) {
        if (s)
                erase_and_free(s, strlen(s));
}

Policy *policy_free(Policy *p) {
        if (!p)
                return NULL;
        free(p->server_url);
        free(p->proxy_url);
        secret_free(p->proxy_user);
        secret_free(p->proxy_password);
        strv_free(p->allowlist);
        free(p->witness_key);
        free(p);
        return NULL;
}

int policy_new_default(Policy **ret) {
        _cleanup_(policy_freep) Policy *p = NULL;
        char *list[ELEMENTSOF(default_allowlist) + 1] = {};

        assert(ret);
        p = calloc(1, sizeof(Policy));
        if (!p)
                return -ENOMEM;
        *p = (Policy) {
                .meter_reads_interval = 86400,
                .supplies_interval = 86400,
                .maintenance_start = "02:00",
                .maintenance_minutes = 120,
                .check_in_min = 3600,
                .check_in_max = 86400,
                .retry_minimum_wait = 5,
                .retry_interval_multiplier = 2000,
        };
        for (size_t i = 0; i < ELEMENTSOF(default_allowlist); i++)
                list[i] = (char *) default_allowlist[i];
        p->server_url = strdup("https://callhome.invalid/soap");
        p->proxy_url = strdup("");
        p->proxy_user = strdup("");
        p->proxy_password = strdup("");
        p->witness_key = strdup("");
        p->allowlist = strv_copy(list, &p->n_allowlist);
        if (!p->server_url || !p->proxy_url || !p->proxy_user || !p->proxy_password || !p->witness_key || !p->allowlist)
                return -ENOMEM;
        *ret = TAKE_PTR(p);
        return 0;
}

int policy_copy(const Policy *p, Policy **ret) {
        _cleanup_(policy_freep) Policy *c = NULL;

        assert(p);
        assert(ret);
        c = malloc(sizeof(Policy));
        if (!c)
                return -ENOMEM;
        *c = *p;
        c->server_url = c->proxy_url = c->proxy_user = c->proxy_password = c->witness_key = NULL;
        c->allowlist = NULL;
        c->server_url = strdup(p->server_url);
        c->proxy_url = strdup(p->proxy_url);
        c->proxy_user = strdup(p->proxy_user);
        c->proxy_password = strdup(p->proxy_password);
        c->witness_key = strdup(p->witness_key);
        c->allowlist = strv_copy(p->allowlist, &c->n_allowlist);
        if (!c->server_url || !c->proxy_url || !c->proxy_user || !c->proxy_password || !c->witness_key || !c->allowlist)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

static bool field_matches(const char *pattern, const char *field) {
        size_t n = strlen(pattern);

        if (n > 0 && pattern[n - 1] == '*')
                return strncmp(pattern, field, n - 1) == 0;
        return streq(pattern, field);
}

bool policy_allows_field(const Policy *p, const char *field) {
        assert(p);
        assert(field);
        for (size_t i = 0; i < p->n_allowlist; i++)
                if (field_matches(p->allowlist[i], field))
                        return true;
        return false;
}

/* --- validation, shared by the file and the setters -------------------------- */

static bool chars_in(const char *s, const char *extra) {
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      strchr(extra, *s)))
                        return false;
        return true;
}

static int fail(char **ret_error, const char *format, ...) _printf_(2, 3);
static int fail(char **ret_error, const char *format, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return -EINVAL;
}

/* https://host[:port][/path]: no credentials, nothing the net-worker would refuse. */
static int check_url(const char *url, const char *scheme, bool path, const char *what, char **ret_error) {
        const char *host, *end;

        if (strlen(url) > POLICY_URL_MAX)
                return fail(ret_error, "%s is longer than %u characters.", what, POLICY_URL_MAX);
        if (strncmp(url, scheme, strlen(scheme)) != 0)
                return fail(ret_error, "%s must start with %s.", what, scheme);
        host = url + strlen(scheme);
        end = host + strcspn(host, "/");
        if (memchr(host, '@', (size_t) (end - host)))
                return fail(ret_error, "%s must not hold credentials (user@host); set them apart.", what);
        if (end == host || *host == ':')
                return fail(ret_error, "%s names no host.", what);
        if (!chars_in(host, path ? ".-[]:/_~!$&'()*+,;=@%" : ".-[]:/"))
                return fail(ret_error, "%s holds a character a URL may not have unescaped.", what);
        if (!path && !strchr(host, ':'))
                return fail(ret_error, "%s needs a port (http://host:port).", what);
        if (!path && *end && !streq(end, "/"))
                return fail(ret_error, "%s is http://host:port, without a path.", what);
        return 0;
}

static int check_field(const char *f, char **ret_error) {
        const char *name;
        size_t n;

        if (strncmp(f, "meter.", 6) == 0)
                name = f + 6;
        else if (strncmp(f, "supply.", 7) == 0)
                name = f + 7;
        else
                return fail(ret_error, "Allowlist entry '%.80s' must start with meter. or supply.", f);
        n = strlen(name);
        if (n > 0 && name[n - 1] == '*')
                n--;
        if ((n == 0 && name[0] != '*') || n > 64 || memchr(name, '*', n) || !chars_in(name + n, "*") ||
            strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/-") != n)
                return fail(ret_error, "Allowlist entry '%.80s' is not meter.NAME or supply.NAME, NAME 1-64 of "
                            "[A-Za-z0-9._:/-] (a trailing * matches any rest).", f);
        return 0;
}

/* A witness's C2SP note verifier key for tlog-cosignature/v1, "name+keyid+base64(0x04 || Ed25519 public
 * key)", parsed and its key id checked by the code auditd checks cosignatures with (auditlog/checkpoint.c). */
static int check_witness_key(const char *k, char **ret_error) {
        CheckpointVerifier v;

        if (!*k)
                return 0;
        if (k[strcspn(k, "\r\n")] || checkpoint_witness_vkey_parse(k, strlen(k), &v) < 0)
                return fail(ret_error, "WitnessKey is not a witness verifier key (C2SP tlog-cosignature/v1): "
                            "NAME+KEYID+KEY, NAME printable ASCII without spaces or '+', KEYID the 8 lowercase hex "
                            "digits of the key id, KEY the base64 of the byte 0x04 and the 32-byte Ed25519 public "
                            "key; or empty for none.");
        return 0;
}

/* A secret's old value is wiped as it goes. */
static int set_string(char **field, const char *v, bool secret) {
        char *c = strdup(v);

        if (!c)
                return -ENOMEM;
        if (secret)
                secret_free(*field);
        else
                free(*field);
        *field = c;
        return 0;
}

static int set_interval(uint32_t *field, uint32_t v, const char *name, char **ret_error) {
        if (v < POLICY_INTERVAL_MIN || v > POLICY_INTERVAL_MAX)
                return fail(ret_error, "%s must be %u to %u seconds (a minute to 31 days), not %u.", name,
                            POLICY_INTERVAL_MIN, POLICY_INTERVAL_MAX, v);
        *field = v;
        return 0;
}

static int set_mode(Policy *p, PolicyService svc, const char *v, const char *name, char **ret_error) {
        ServiceMode m = service_mode_from_string(v);

        if (m < 0)
                return fail(ret_error, "%s must be off, ask or automatic, not '%.40s'.", name, v);
        if (svc == POLICY_SERVICE_DIAGNOSTICS && m == SERVICE_MODE_AUTOMATIC)
                return fail(ret_error, "Diagnostics must be off or ask: they are never sent without consent.");
        p->mode[svc] = m;
        return 0;
}

int policy_set(Policy *p, PolicySetting s, const PolicyValue *v, char **ret_error) {
        size_t n = 0;
        int r;

        assert(p);
        assert(v);

        switch (s) {
        case POLICY_SETTING_REMOTE_SERVICES:
                p->remote_services = v->b;
                return 0;
        case POLICY_SETTING_METER_READS:
                return set_mode(p, POLICY_SERVICE_METER_READS, v->s, "MeterReads", ret_error);
        case POLICY_SETTING_SUPPLIES:
                return set_mode(p, POLICY_SERVICE_SUPPLIES, v->s, "Supplies", ret_error);
        case POLICY_SETTING_DIAGNOSTICS:
                return set_mode(p, POLICY_SERVICE_DIAGNOSTICS, v->s, "Diagnostics", ret_error);
        case POLICY_SETTING_SOFTWARE_UPDATES:
                return set_mode(p, POLICY_SERVICE_SOFTWARE_UPDATES, v->s, "SoftwareUpdates", ret_error);
        case POLICY_SETTING_METER_READS_INTERVAL:
                return set_interval(&p->meter_reads_interval, v->u, "MeterReadsInterval", ret_error);
        case POLICY_SETTING_SUPPLIES_INTERVAL:
                return set_interval(&p->supplies_interval, v->u, "SuppliesInterval", ret_error);
        case POLICY_SETTING_CHECK_IN_MIN:
                return set_interval(&p->check_in_min, v->u, "CheckInIntervalMin", ret_error);
        case POLICY_SETTING_CHECK_IN_MAX:
                return set_interval(&p->check_in_max, v->u, "CheckInIntervalMax", ret_error);
        case POLICY_SETTING_MAINTENANCE_WINDOW_START: {
                const char *t = v->s;
                if (strlen(t) != 5 || t[2] != ':' || !strchr("012", t[0]) || !strchr("0123456789", t[1]) ||
                    (t[0] == '2' && t[1] > '3') || !strchr("012345", t[3]) || !strchr("0123456789", t[4]) ||
                    !t[0] || !t[1] || !t[3] || !t[4])
                        return fail(ret_error, "MaintenanceWindowStart must be HH:MM (00:00 to 23:59), local time.");
                memcpy(p->maintenance_start, t, sizeof(p->maintenance_start));
                return 0;
        }
        case POLICY_SETTING_MAINTENANCE_WINDOW_MINUTES:
                if (v->u < 15 || v->u > 1440)
                        return fail(ret_error, "MaintenanceWindowMinutes must be 15 to 1440, not %u.", v->u);
                p->maintenance_minutes = v->u;
                return 0;
        case POLICY_SETTING_RETRY_MINIMUM_WAIT:
                if (v->u < 1 || v->u > 65535)
                        return fail(ret_error, "RetryMinimumWait (TR-069 m) must be 1 to 65535 seconds, not %u.", v->u);
                p->retry_minimum_wait = v->u;
                return 0;
        case POLICY_SETTING_RETRY_INTERVAL_MULTIPLIER:
                if (v->u < 1000 || v->u > 65535)
                        return fail(ret_error, "RetryIntervalMultiplier (TR-069 k, per mille: 2000 doubles) must be "
                                    "1000 to 65535, not %u.", v->u);
                p->retry_interval_multiplier = v->u;
                return 0;
        case POLICY_SETTING_SERVER_URL:
                r = check_url(v->s, "https://", true, "ServerURL", ret_error);
                return r < 0 ? r : set_string(&p->server_url, v->s, false);
        case POLICY_SETTING_PROXY_URL:
                if (*v->s) {
                        r = check_url(v->s, "http://", false, "ProxyURL", ret_error);
                        if (r < 0)
                                return r;
                }
                return set_string(&p->proxy_url, v->s, false);
        case POLICY_SETTING_PROXY_USER:
        case POLICY_SETTING_PROXY_PASSWORD: {
                const char *name = policy_setting_to_string(s);
                if (strlen(v->s) > POLICY_CREDENTIAL_MAX)
                        return fail(ret_error, "%s must be at most %u bytes.", name, POLICY_CREDENTIAL_MAX);
                for (const char *c = v->s; *c; c++)
                        if ((unsigned char) *c < ' ' || *c == 0x7f)
                                return fail(ret_error, "%s must hold no control characters.", name);
                return set_string(s == POLICY_SETTING_PROXY_USER ? &p->proxy_user : &p->proxy_password, v->s, true);
        }
        case POLICY_SETTING_ALLOWLIST: {
                char **c;
                for (; v->strv && v->strv[n]; n++) {
                        r = check_field(v->strv[n], ret_error);
                        if (r < 0)
                                return r;
                }
                if (n > POLICY_ALLOWLIST_MAX)
                        return fail(ret_error, "Allowlist holds at most %u entries.", POLICY_ALLOWLIST_MAX);
                c = strv_copy(v->strv, &n);
                if (!c)
                        return -ENOMEM;
                strv_free(p->allowlist);
                p->allowlist = c;
                p->n_allowlist = n;
                return 0;
        }
        case POLICY_SETTING_WITNESS_KEY:
                r = check_witness_key(v->s, ret_error);
                return r < 0 ? r : set_string(&p->witness_key, v->s, false);
        default:
                return fail(ret_error, "No such setting.");
        }
}

int policy_check(const Policy *p, char **ret_error) {
        assert(p);
        if (p->check_in_min > p->check_in_max)
                return fail(ret_error, "CheckInIntervalMin (%u s) must not be above CheckInIntervalMax (%u s); "
                            "change both at once with Change().", p->check_in_min, p->check_in_max);
        if (!*p->proxy_url && (*p->proxy_user || *p->proxy_password))
                return fail(ret_error, "ProxyUser and ProxyPassword need a ProxyURL; set them together with Change().");
        return 0;
}

void policy_get(const Policy *p, PolicySetting s, PolicyValue *ret) {
        assert(p);
        assert(ret);
        *ret = (PolicyValue) {};
        switch (s) {
        case POLICY_SETTING_REMOTE_SERVICES:
                ret->b = p->remote_services;
                break;
        case POLICY_SETTING_METER_READS:
                ret->s = service_mode_to_string(p->mode[POLICY_SERVICE_METER_READS]);
                break;
        case POLICY_SETTING_SUPPLIES:
                ret->s = service_mode_to_string(p->mode[POLICY_SERVICE_SUPPLIES]);
                break;
        case POLICY_SETTING_DIAGNOSTICS:
                ret->s = service_mode_to_string(p->mode[POLICY_SERVICE_DIAGNOSTICS]);
                break;
        case POLICY_SETTING_SOFTWARE_UPDATES:
                ret->s = service_mode_to_string(p->mode[POLICY_SERVICE_SOFTWARE_UPDATES]);
                break;
        case POLICY_SETTING_METER_READS_INTERVAL:
                ret->u = p->meter_reads_interval;
                break;
        case POLICY_SETTING_SUPPLIES_INTERVAL:
                ret->u = p->supplies_interval;
                break;
        case POLICY_SETTING_MAINTENANCE_WINDOW_START:
                ret->s = p->maintenance_start;
                break;
        case POLICY_SETTING_MAINTENANCE_WINDOW_MINUTES:
                ret->u = p->maintenance_minutes;
                break;
        case POLICY_SETTING_CHECK_IN_MIN:
                ret->u = p->check_in_min;
                break;
        case POLICY_SETTING_CHECK_IN_MAX:
                ret->u = p->check_in_max;
                break;
        case POLICY_SETTING_RETRY_MINIMUM_WAIT:
                ret->u = p->retry_minimum_wait;
                break;
        case POLICY_SETTING_RETRY_INTERVAL_MULTIPLIER:
                ret->u = p->retry_interval_multiplier;
                break;
        case POLICY_SETTING_SERVER_URL:
                ret->s = p->server_url;
                break;
        case POLICY_SETTING_PROXY_URL:
                ret->s = p->proxy_url;
                break;
        case POLICY_SETTING_PROXY_USER:
                ret->s = p->proxy_user;
                break;
        case POLICY_SETTING_PROXY_PASSWORD:
                ret->s = p->proxy_password;
                break;
        case POLICY_SETTING_ALLOWLIST:
                ret->strv = p->allowlist;
                break;
        case POLICY_SETTING_WITNESS_KEY:
                ret->s = p->witness_key;
                break;
        default:
                assert(!"no such setting");
        }
}

int policy_setting_format(const Policy *p, PolicySetting s, char **ret) {
        PolicyValue v;
        char *out = NULL;
        size_t len = 0;
        FILE *f;

        assert(p);
        assert(ret);
        policy_get(p, s, &v);
        if (policy_setting_is_secret(s))
                out = strdup(*v.s ? "(set)" : "(none)");
        else if (policy_setting_type(s) == 'b')
                out = strdup(v.b ? "true" : "false");
        else if (policy_setting_type(s) == 'u')
                return asprintf(ret, "%u", v.u) < 0 ? -ENOMEM : 0;
        else if (policy_setting_type(s) == 's')
                out = strdup(v.s);
        else {
                f = open_memstream(&out, &len);
                if (!f)
                        return -ENOMEM;
                for (size_t i = 0; v.strv && v.strv[i]; i++)
                        fprintf(f, "%s%s", i ? " " : "", v.strv[i]);
                if (fclose(f) != 0) {
                        free(out);
                        return -ENOMEM;
                }
        }
        if (!out)
                return -ENOMEM;
        *ret = out;
        return 0;
}
