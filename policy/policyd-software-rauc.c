/* SPDX-License-Identifier: Apache-2.0 */
/* RAUC as the installer (callhome-policyd --rauc): a bundle that passed every
 * check of software.c and lies in the drop directory is handed to RAUC's
 * de.pengutronix.rauc.Installer.InstallBundle on the system bus; RAUC's
 * Completed signal (and its LastError) is the outcome; an installed bundle is
 * removed from the drop directory, being in its slot. The version floor was
 * raised when the bundle was moved into the drop directory; if RAUC does not
 * install it, the floor goes back to what it was and the bundle is removed,
 * so the same version may be offered again. Nothing here blocks: the signal
 * match is added and the call made asynchronously. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>

#include "log.h"
#include "policyd-instruction.h"

#define RAUC_NAME "de.pengutronix.rauc"
#define RAUC_PATH "/"
#define RAUC_INTERFACE "de.pengutronix.rauc.Installer"

/* RAUC did not install it: the floor and the drop directory as they were. */
static void rauc_failed(Job *j, const char *why) {
        Instructions *in = j->owner;
        _cleanup_free_ char *floor = NULL, *text = NULL;
        int r;

        if (j->floor_before)
                r = software_floor_raise(in->m->state_fd, j->package, j->floor_before);
        else if (asprintf(&floor, SOFTWARE_FLOOR_PREFIX "%s", j->package) < 0)
                r = -ENOMEM;
        else
                r = unlinkat(in->m->state_fd, floor, 0) < 0 && errno != ENOENT ? -errno : 0;
        if (r < 0)
                log_error_errno(r, "Software %s: cannot put the version floor back to %s: %m", j->package,
                                j->floor_before ?: "none");
        if (j->installed && unlinkat(in->drop_fd, j->installed, 0) < 0)
                log_warning_errno(errno, "Software: cannot remove %s from the drop directory, ignoring: %m", j->installed);
        if (asprintf(&text, "RAUC did not install %s: %s", strna(j->installed), why) < 0)
                text = NULL;
        software_finish(j, "failed", OUTCOME_FAILED, text ?: why, NULL);
}

static int on_last_error(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Job *j = userdata;
        const char *error = NULL;

        j->slot = sd_bus_slot_unref(j->slot);
        if (sd_bus_message_is_method_error(reply, NULL) || sd_bus_message_read(reply, "v", "s", &error) < 0 ||
            !error || !*error)
                error = "it gave no reason";
        rauc_failed(j, error);
        return 0;
}

static int on_completed(sd_bus_message *signal, void *userdata, sd_bus_error *ret_error) {
        _cleanup_free_ char *why = NULL;
        Job *j = userdata;
        json_object *extra;
        int32_t result;
        int r;

        if (sd_bus_message_read(signal, "i", &result) < 0)
                return 0;
        j->rauc_match = sd_bus_slot_unref(j->rauc_match);
        if (result != 0) {
                j->slot = sd_bus_slot_unref(j->slot);
                r = sd_bus_call_method_async(j->owner->m->bus, &j->slot, RAUC_NAME, RAUC_PATH,
                                             "org.freedesktop.DBus.Properties", "Get", on_last_error, j, "ss",
                                             RAUC_INTERFACE, "LastError");
                if (r < 0)
                        rauc_failed(j, "it reported a failure");
                return 0;
        }
        /* In the slot now: the bundle need not take space in the drop directory any more. */
        if (unlinkat(j->owner->drop_fd, j->installed, 0) < 0)
                log_warning_errno(errno, "Software: cannot remove %s from the drop directory, ignoring: %m", j->installed);
        extra = json_object_new_object();
        if (extra) {
                json_object_object_add(extra, "installed", json_object_new_string(j->installed));
                json_object_object_add(extra, "installer", json_object_new_string("rauc"));
        }
        if (asprintf(&why, "verified and installed by RAUC from %s", j->installed) < 0)
                why = NULL;
        software_finish(j, "installed", OUTCOME_DONE, why ?: "installed by RAUC", extra);
        return 0;
}

static int on_install_called(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        Job *j = userdata;

        j->slot = sd_bus_slot_unref(j->slot);
        if (e)
                rauc_failed(j, e->message ?: e->name);
        else
                log_info("Software %s %s: RAUC is installing %s.", j->package, j->version, j->installed);
        return 0;
}

/* The match is in place: no Completed can be missed now. */
static int on_match_added(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        _cleanup_free_ char *path = NULL;
        Job *j = userdata;
        int r;

        if (e) {
                rauc_failed(j, e->message ?: e->name);
                return 0;
        }
        if (asprintf(&path, "%s/%s", j->owner->m->drop_dir, j->installed) < 0) {
                rauc_failed(j, "out of memory");
                return 0;
        }
        r = sd_bus_call_method_async(j->owner->m->bus, &j->slot, RAUC_NAME, RAUC_PATH, RAUC_INTERFACE, "InstallBundle",
                                     on_install_called, j, "sa{sv}", path, 0);
        if (r < 0)
                rauc_failed(j, strerror(-r));
        return 0;
}

int rauc_install(Job *j) {
        int r = sd_bus_match_signal_async(j->owner->m->bus, &j->rauc_match, RAUC_NAME, RAUC_PATH, RAUC_INTERFACE,
                                          "Completed", on_completed, on_match_added, j);

        if (r < 0)
                rauc_failed(j, strerror(-r));
        return 0;
}
