/* SPDX-License-Identifier: Apache-2.0 */
/* The confinement profiles' names and service users, and user and group
 * lookup: what callhome-audit needs of confine, in a file of its own so that a
 * program using only these links neither libseccomp nor libcap-ng. */
#include <grp.h>
#include <pwd.h>

#include "confine.h"
#include "macro.h"

static const char *const profile_names[_CONFINE_PROFILE_MAX] = {
        [CONFINE_PROFILE_COLLECTOR] = "collector",
        [CONFINE_PROFILE_NET_WORKER] = "net-worker",
        [CONFINE_PROFILE_AUDITD] = "auditd",
        [CONFINE_PROFILE_POLICYD] = "policyd",
};

static const char *const profile_users[_CONFINE_PROFILE_MAX] = {
        [CONFINE_PROFILE_COLLECTOR] = "callhome-collector",
        [CONFINE_PROFILE_NET_WORKER] = "callhome-net",
        [CONFINE_PROFILE_AUDITD] = "callhome-audit",
        [CONFINE_PROFILE_POLICYD] = "callhome-policy",
};

const char *confine_profile_to_string(ConfineProfile p) {
        return p >= 0 && p < _CONFINE_PROFILE_MAX ? profile_names[p] : NULL;
}

ConfineProfile confine_profile_from_string(const char *s) {
        for (int i = 0; i < _CONFINE_PROFILE_MAX; i++)
                if (streq(s, profile_names[i]))
                        return (ConfineProfile) i;
        return _CONFINE_PROFILE_INVALID;
}

const char *confine_profile_user(ConfineProfile p) {
        return p >= 0 && p < _CONFINE_PROFILE_MAX ? profile_users[p] : NULL;
}
int confine_lookup_user(const char *user, uid_t *ret_uid, gid_t *ret_gid) {
        struct passwd pw, *result = NULL;
        char buf[4096];
        int r;

        r = getpwnam_r(user, &pw, buf, sizeof(buf), &result);
        if (r != 0)
                return -r;
        if (!result)
                return -ESRCH;
        if (ret_uid)
                *ret_uid = pw.pw_uid;
        if (ret_gid)
                *ret_gid = pw.pw_gid;
        return 0;
}

int confine_lookup_group(const char *group, gid_t *ret_gid) {
        struct group gr, *result = NULL;
        char buf[16384];
        int r;

        r = getgrnam_r(group, &gr, buf, sizeof(buf), &result);
        if (r != 0)
                return -r;
        if (!result)
                return -ESRCH;
        *ret_gid = gr.gr_gid;
        return 0;
}
