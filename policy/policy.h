/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The customer's policy: what it holds, its file format (callhome-policy.xml(5),
 * validated against ipc/callhome-policy.xsd) and each setting as a D-Bus
 * property of org.callhome.Policy1. No I/O and no logging here: the daemon,
 * the unit tests and the fuzz target drive it alike. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define POLICY_FILE_MAX (64U << 10)     /* a policy file larger than this is refused unread */
#define POLICY_ALLOWLIST_MAX 256U
#define POLICY_CREDENTIAL_MAX 256U
#define POLICY_URL_MAX 1024U
#define POLICY_INTERVAL_MIN 60U
#define POLICY_INTERVAL_MAX 2678400U    /* 31 days */

typedef enum ServiceMode {
        SERVICE_MODE_OFF,
        SERVICE_MODE_ASK,
        SERVICE_MODE_AUTOMATIC,
        _SERVICE_MODE_MAX,
        _SERVICE_MODE_INVALID = -EINVAL,
} ServiceMode;

typedef enum PolicyService {
        POLICY_SERVICE_METER_READS,
        POLICY_SERVICE_SUPPLIES,
        POLICY_SERVICE_DIAGNOSTICS,
        POLICY_SERVICE_SOFTWARE_UPDATES,
        _POLICY_SERVICE_MAX,
        _POLICY_SERVICE_INVALID = -EINVAL,
} PolicyService;

const char *service_mode_to_string(ServiceMode m);
ServiceMode service_mode_from_string(const char *s);
/* "meter-reads", "supplies", "diagnostics", "software-updates". */
const char *policy_service_to_string(PolicyService s);
PolicyService policy_service_from_string(const char *s);

typedef struct Policy {
        bool remote_services;                   /* the master switch */
        ServiceMode mode[_POLICY_SERVICE_MAX];
        uint32_t meter_reads_interval;          /* seconds */
        uint32_t supplies_interval;
        char maintenance_start[6];              /* "HH:MM", local time */
        uint32_t maintenance_minutes;
        uint32_t check_in_min, check_in_max;    /* seconds */
        uint32_t retry_minimum_wait;            /* TR-069 m, seconds */
        uint32_t retry_interval_multiplier;     /* TR-069 k, per mille */
        char *server_url;
        char *proxy_url;                        /* "" for none */
        char *proxy_user;                       /* secret: never shown, never logged */
        char *proxy_password;                   /* secret: never shown, never logged */
        char **allowlist;                       /* NULL terminated */
        size_t n_allowlist;
        char *witness_key;                      /* "" for none */
} Policy;

/* Remote services off, every service off, the standard counters and supplies allowed. */
int policy_new_default(Policy **ret);
Policy *policy_free(Policy *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Policy *, policy_free);
int policy_copy(const Policy *p, Policy **ret);

/* Parses and validates a policy file held in buf (any bytes, not NUL
 * terminated). `filename` only names the file in the error. On failure
 * *ret_error (if given) says "FILE:LINE: element NAME: what is wrong"; the
 * return is -EBADMSG (not a valid policy), -EFBIG or -ENOMEM. */
int policy_parse(const char *buf, size_t len, const char *filename, Policy **ret, char **ret_error);

/* The policy as a file policy_parse() accepts, credentials included. */
int policy_format(const Policy *p, char **ret, size_t *ret_len);

/* Frees a NULL-terminated list of strings and the strings. */
char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);

/* Whether an outbound field ("meter.TotalImpressions") is on the allowlist. */
bool policy_allows_field(const Policy *p, const char *field);

/* --- the settings as D-Bus properties ---------------------------------------- */

typedef enum PolicySetting {
        POLICY_SETTING_REMOTE_SERVICES,
        POLICY_SETTING_METER_READS,
        POLICY_SETTING_METER_READS_INTERVAL,
        POLICY_SETTING_SUPPLIES,
        POLICY_SETTING_SUPPLIES_INTERVAL,
        POLICY_SETTING_DIAGNOSTICS,
        POLICY_SETTING_SOFTWARE_UPDATES,
        POLICY_SETTING_MAINTENANCE_WINDOW_START,
        POLICY_SETTING_MAINTENANCE_WINDOW_MINUTES,
        POLICY_SETTING_CHECK_IN_MIN,
        POLICY_SETTING_CHECK_IN_MAX,
        POLICY_SETTING_RETRY_MINIMUM_WAIT,
        POLICY_SETTING_RETRY_INTERVAL_MULTIPLIER,
        POLICY_SETTING_SERVER_URL,
        POLICY_SETTING_PROXY_URL,
        POLICY_SETTING_PROXY_USER,              /* write-only */
        POLICY_SETTING_PROXY_PASSWORD,          /* write-only */
        POLICY_SETTING_ALLOWLIST,
        POLICY_SETTING_WITNESS_KEY,
        _POLICY_SETTING_MAX,
        _POLICY_SETTING_INVALID = -EINVAL,
} PolicySetting;

/* The D-Bus property name ("MeterReadsInterval"), and back. */
const char *policy_setting_to_string(PolicySetting s);
PolicySetting policy_setting_from_string(const char *s);
/* 'b', 'u', 's' or 'a' (as) */
char policy_setting_type(PolicySetting s);
/* A credential: accepted, never read back, masked in every record. */
bool policy_setting_is_secret(PolicySetting s);

typedef struct PolicyValue {
        bool b;
        uint32_t u;
        const char *s;
        char *const *strv; /* NULL terminated */
} PolicyValue;

/* The current value (strings point into p). */
void policy_get(const Policy *p, PolicySetting s, PolicyValue *ret);
/* Validates v and sets it in p. On a bad value returns -EINVAL and
 * *ret_error says what to change (it never quotes a secret's value). */
int policy_set(Policy *p, PolicySetting s, const PolicyValue *v, char **ret_error);
/* Checks what one setting alone cannot (CheckIn min <= max). */
int policy_check(const Policy *p, char **ret_error);
/* The value as text for an audit record: a secret is "(set)" or "(none)". */
int policy_setting_format(const Policy *p, PolicySetting s, char **ret);
