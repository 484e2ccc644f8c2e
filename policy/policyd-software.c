/* SPDX-License-Identifier: Apache-2.0 */
/* Software the server offers (SoftwareAvailable), once the policy allows it:
 * the signed manifest first (GetSoftware at offset 0, length 0), verified
 * against the pinned code-signing anchor before a byte of the package is
 * fetched; then the package through the net-worker's Download into a file
 * policyd owns in its staging directory, resumed after the bytes already
 * there when an attempt is cut short; then software.c's checks and the
 * install into the drop directory by rename, the version floor raised. Each
 * step is audited; the outcome is reported. In "automatic" mode the fetch
 * waits for the maintenance window, on the wall clock. */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "bus-util.h"
#include "log.h"
#include "policyd-instruction.h"

void software_job_clear(Job *j) {
        j->staged_fd = safe_close(j->staged_fd);
        j->rauc_match = sd_bus_slot_unref(j->rauc_match);
        free(j->installed);
        free(j->floor_before);
        j->installed = j->floor_before = NULL;
        free(j->staged_name);
        free(j->manifest);
        free(j->signature);
        free(j->signer);
        j->staged_name = NULL;
        j->manifest = j->signature = j->signer = NULL;
}

static int read_software_arg(sd_bus_message *msg, const char *key, void *userdata) {
        Job *j = userdata;
        char **dest = streq(key, "package") ? &j->package : streq(key, "version") ? &j->version
                                                          : streq(key, "sha256") ? &j->sha256 : NULL;
        const char *s;
        int r;

        if (streq(key, "size"))
                return sd_bus_message_read(msg, "v", "t", &j->size);
        if (!dest || *dest)
                return sd_bus_message_skip(msg, "v");
        r = sd_bus_message_read(msg, "v", "s", &s);
        if (r < 0)
                return r;
        *dest = strdup(s);
        return *dest ? 0 : -ENOMEM;
}

bool software_args_valid(const Job *j) {
        return j->package && payload_device_id_valid(j->package) && version_valid(j->version) && j->sha256 &&
               strlen(j->sha256) == 64 && strspn(j->sha256, "0123456789abcdef") == 64 && j->size > 0;
}

int software_read_args(Job *j, sd_bus_message *reply) {
        int r = bus_message_read_dict(reply, read_software_arg, j);

        if (r < 0)
                return r;
        return software_args_valid(j);
}

/* --- the outcome ---------------------------------------------------------------- */

void software_finish(Job *j, const char *verdict, Outcome outcome, const char *why, json_object *extra) {
        Instructions *in = j->owner;
        uint64_t id = j->id;
        int r;

        job_free(j);
        r = instruction_verdict(in, id, "SoftwareAvailable", verdict, outcome, why, extra, NULL, NULL);
        if (r < 0)
                log_error_errno(r, "Instruction %" PRIu64 ": cannot record its outcome: %m", id);
}

static void software_finishf(Job *j, const char *verdict, Outcome outcome, const char *format, ...) _printf_(4, 5);
static void software_finishf(Job *j, const char *verdict, Outcome outcome, const char *format, ...) {
        _cleanup_free_ char *why = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&why, format, ap);
        va_end(ap);
        if (r < 0)
                why = NULL;
        software_finish(j, verdict, outcome, why ?: "out of memory", NULL);
}

/* A bad package is not kept: nothing resumes from it. */
static void software_refuse(Job *j, const char *why) {
        if (j->staged_name)
                (void) unlinkat(j->owner->staging_fd, j->staged_name, 0);
        software_finish(j, "refused", OUTCOME_FAILED, why, NULL);
}

/* --- the steps ------------------------------------------------------------------- */

static int software_step(Job *j);
static int download_start(Job *j);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;
        int r = software_step(j);

        if (r < 0)
                software_finishf(j, "failed", OUTCOME_FAILED, "cannot try again: %s", strerror(-r));
        return 0;
}

/* After a failed exchange: again later (resuming), or give up. */
static void software_retry(Job *j, const sd_bus_error *e) {
        Manager *m = j->owner->m;
        uint64_t now = 0, at;
        int r;

        if (!streq(e->name, NET_ERROR_BUSY))
                j->attempts++;
        log_warning("Software %s %s: attempt %u failed: %s", j->package, j->version, j->attempts, e->message ?: e->name);
        if (j->attempts >= DOWNLOAD_ATTEMPTS_MAX) {
                software_finishf(j, "failed", OUTCOME_FAILED, "not fetched after %u attempts: %s", j->attempts,
                                 e->message ?: e->name);
                return;
        }
        (void) sd_event_now(m->event, CLOCK_BOOTTIME, &now);
        at = retry_next(m->policy, MAX(j->attempts, 1U), now, 0, random_source_kernel, NULL);
        j->timer = sd_event_source_disable_unref(j->timer);
        r = sd_event_add_time(m->event, &j->timer, CLOCK_BOOTTIME, at, 0, on_retry, j);
        if (r < 0)
                software_finishf(j, "failed", OUTCOME_FAILED, "cannot schedule another attempt: %s", strerror(-r));
}

static int on_installable(Job *j) {
        _cleanup_free_ char *installed = NULL, *error = NULL, *why = NULL;
        Instructions *in = j->owner;
        SoftwareOffer offer = {
                .manifest = j->manifest, .manifest_len = j->manifest_len,
                .signature = j->signature, .signature_len = j->signature_len,
                .signer_der = j->signer, .signer_der_len = j->signer_len,
        };
        SoftwareCheck check = {
                .anchor = in->anchor, .package = j->package, .model = in->m->model,
                .max_size = SOFTWARE_SIZE_MAX, .now_usec = 0,
        };
        json_object *extra;
        int r;

        (void) sd_event_now(in->m->event, CLOCK_REALTIME, &check.now_usec);
        j->staged_fd = safe_close(j->staged_fd);
        /* With RAUC the floor goes back to this if RAUC does not install the bundle. */
        if (in->m->rauc) {
                r = software_floor_read(in->m->state_fd, j->package, &j->floor_before);
                if (r < 0)
                        j->floor_before = NULL;         /* software_install() refuses a damaged floor */
        }
        r = software_install(&offer, &check, in->staging_fd, j->staged_name, in->drop_fd, in->m->state_fd, &installed,
                             &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                software_refuse(j, error ?: strerror(-r));
                return 0;
        }
        if (in->m->rauc) {
                j->installed = TAKE_PTR(installed);
                return rauc_install(j);
        }
        extra = json_object_new_object();
        if (extra)
                json_object_object_add(extra, "installed", json_object_new_string(installed));
        if (asprintf(&why, "verified and installed as %s in the drop directory", installed) < 0) {
                json_object_put(extra);
                return -ENOMEM;
        }
        software_finish(j, "installed", OUTCOME_DONE, why, extra);
        return 0;
}

static int on_downloaded(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        static const sd_bus_error unreadable = SD_BUS_ERROR_MAKE_CONST(SD_BUS_ERROR_INVALID_ARGS,
                                                                        "unreadable Download reply");
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        Job *j = userdata;
        uint64_t written = 0, total = 0;
        int r;

        j->slot = sd_bus_slot_unref(j->slot);
        if (!e && sd_bus_message_read(reply, "tt", &written, &total) < 0)
                e = &unreadable;
        /* Each attempt on the record: where it resumed, what it got. */
        if (o) {
                json_object_object_add(o, "instruction", json_object_new_uint64(j->id));
                json_object_object_add(o, "package", json_object_new_string(j->package));
                json_object_object_add(o, "version", json_object_new_string(j->version));
                json_object_object_add(o, "resumed_from", json_object_new_uint64(j->staged_before));
                if (e)
                        json_object_object_add(o, "error", json_object_new_string(e->message ?: e->name));
                else {
                        json_object_object_add(o, "written", json_object_new_uint64(written));
                        json_object_object_add(o, "total", json_object_new_uint64(total));
                }
                (void) manager_audit_append(j->owner->m, "software.download",
                                            json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), NULL, NULL, NULL,
                                            NULL);
        }
        if (e) {
                software_retry(j, e);
                return 0;
        }
        log_info("Software %s %s: %" PRIu64 " bytes fetched after the %" PRIu64 " already staged.", j->package,
                 j->version, written, j->staged_before);
        if (written > 0 && j->staged_before + written < j->size) {
                /* The next piece; progress made, so the failures count from 0 again. */
                j->attempts = 0;
                r = download_start(j);
                if (r < 0)
                        software_finishf(j, "failed", OUTCOME_FAILED, "cannot go on with the download: %s", strerror(-r));
                return 0;
        }
        r = on_installable(j);
        if (r < 0)
                software_finishf(j, "failed", OUTCOME_FAILED, "cannot install: %s", strerror(-r));
        return 0;
}

static int download_start(Job *j) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        Manager *m = j->owner->m;
        struct stat st;
        int r;

        if (j->staged_fd < 0) {
                j->staged_fd = openat(j->owner->staging_fd, j->staged_name,
                                      O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
                if (j->staged_fd < 0)
                        return -errno;
        }
        if (fstat(j->staged_fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        j->staged_before = (uint64_t) st.st_size;
        r = flow_net_new_call(m, "Download", &call);
        if (r >= 0)
                /* 2^64-1: resume after the bytes the file already holds; a piece at a time, so
                 * that each call ends well within the bus' call timeout on a slow line. */
                r = sd_bus_message_append(call, "ssttth", instruction_device_id(j->owner), j->package, UINT64_MAX,
                                          (uint64_t) DOWNLOAD_PIECE, j->size, j->staged_fd);
        if (r < 0)
                return r;
        return flow_net_call(m, call, on_downloaded, j, &j->slot);
}

static int copy_bytes(sd_bus_message *reply, void **ret, size_t *ret_len) {
        const void *p;
        size_t n;
        int r = sd_bus_message_read_array(reply, 'y', &p, &n);

        if (r < 0)
                return r;
        *ret = NULL;
        if (n > 0) {
                *ret = malloc(n);
                if (!*ret)
                        return -ENOMEM;
                memcpy(*ret, p, n);
        }
        *ret_len = n;
        return 0;
}

static int on_manifest(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_free_ char *floor = NULL, *error = NULL;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        Job *j = userdata;
        Instructions *in = j->owner;
        const char *package;
        uint64_t total, offset;
        Manifest man;
        SoftwareOffer offer;
        SoftwareCheck check = { .anchor = in->anchor, .package = j->package, .model = in->m->model,
                                .max_size = SOFTWARE_SIZE_MAX };
        int r;

        j->slot = sd_bus_slot_unref(j->slot);
        if (e) {
                software_retry(j, e);
                return 0;
        }
        r = sd_bus_message_read(reply, "stt", &package, &total, &offset);
        if (r >= 0)
                r = sd_bus_message_skip(reply, "ay");
        if (r >= 0)
                r = copy_bytes(reply, &j->manifest, &j->manifest_len);
        if (r >= 0)
                r = copy_bytes(reply, &j->signature, &j->signature_len);
        if (r >= 0)
                r = copy_bytes(reply, &j->signer, &j->signer_len);
        if (r < 0) {
                software_finishf(j, "failed", OUTCOME_FAILED, "the manifest could not be read: %s", strerror(-r));
                return 0;
        }
        if (!in->anchor || !in->m->model) {
                software_refuse(j, "this device has no code-signing anchor or model configured");
                return 0;
        }
        r = software_floor_read(in->m->state_fd, j->package, &floor);
        if (r < 0) {
                software_refuse(j, "the installed version's record is unreadable");
                return 0;
        }
        check.floor = floor;
        (void) sd_event_now(in->m->event, CLOCK_REALTIME, &check.now_usec);
        offer = (SoftwareOffer) { .manifest = j->manifest, .manifest_len = j->manifest_len,
                                  .signature = j->signature, .signature_len = j->signature_len,
                                  .signer_der = j->signer, .signer_der_len = j->signer_len };
        r = software_verify(&offer, &check, &man, &error);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                software_refuse(j, error ?: strerror(-r));
                return 0;
        }
        if (!streq(man.version, j->version) || man.size != j->size || !streq(man.sha256, j->sha256) || total != man.size) {
                software_refuse(j, "the signed manifest does not match what was offered (version, size or SHA-256)");
                return 0;
        }
        if (asprintf(&j->staged_name, "%s-%s.part", man.package, man.version) < 0)
                return log_oom();
        log_info("Software %s %s: manifest verified; fetching %" PRIu64 " bytes.", j->package, j->version, man.size);
        r = download_start(j);
        if (r < 0)
                software_finishf(j, "failed", OUTCOME_FAILED, "cannot start the download: %s", strerror(-r));
        return 0;
}

static int software_step(Job *j) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        Manager *m = j->owner->m;
        int r;

        if (j->manifest)
                return download_start(j);
        /* Offset 0, length 0: the signed manifest alone, checked before any package byte is fetched. */
        r = flow_net_new_call(m, "GetSoftware", &call);
        if (r >= 0)
                r = sd_bus_message_append(call, "sstu", instruction_device_id(j->owner), j->package, (uint64_t) 0, 0U);
        if (r < 0)
                return r;
        return flow_net_call(m, call, on_manifest, j, &j->slot);
}

static void on_device_id(Manager *m, const char *device_id, const char *error, void *userdata) {
        Job *j = userdata;
        int r;

        j->slot = sd_bus_slot_unref(j->slot);
        if (!device_id) {
                software_finishf(j, "failed", OUTCOME_FAILED, "cannot start the fetch: %s", error);
                return;
        }
        r = software_step(j);
        if (r < 0)
                software_finishf(j, "failed", OUTCOME_FAILED, "cannot start the fetch: %s", strerror(-r));
}

int software_fetch(Job *j) {
        assert(j);
        j->state = JOB_RUNNING;
        j->timer = sd_event_source_disable_unref(j->timer);
        return flow_with_device_id(j->owner->m, on_device_id, j, &j->slot);
}

/* --- the maintenance window ---------------------------------------------------------- */

static int on_window(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;
        const char *off = instruction_service_off(j->owner->m->policy, POLICY_SERVICE_SOFTWARE_UPDATES);
        int r;

        /* The customer may have turned updates off since: the policy of now decides. */
        if (off) {
                software_finish(j, "refused", OUTCOME_REFUSED, off, NULL);
                return 0;
        }
        r = software_fetch(j);
        if (r < 0)
                software_finishf(j, "failed", OUTCOME_FAILED, "cannot start the fetch: %s", strerror(-r));
        return 0;
}

/* The start of the window that holds `now`, or of the next one; 0: it is open now. */
static uint64_t window_next(const Policy *p, uint64_t now_usec) {
        time_t now = (time_t) (now_usec / USEC_PER_SEC), start;
        unsigned hh = 0, mm = 0;
        struct tm tm;

        if (sscanf(p->maintenance_start, "%2u:%2u", &hh, &mm) != 2)
                return 0;
        for (int day = -1; day <= 1; day++) {
                (void) localtime_r(&now, &tm);
                tm.tm_mday += day;
                tm.tm_hour = (int) hh;
                tm.tm_min = (int) mm;
                tm.tm_sec = 0;
                tm.tm_isdst = -1;
                start = mktime(&tm);
                if (start == (time_t) -1)
                        return 0;
                if (now >= start && now < start + (time_t) p->maintenance_minutes * 60)
                        return 0;
                if (start > now)
                        return (uint64_t) start * USEC_PER_SEC;
        }
        return 0;
}

int software_schedule(Job *j) {
        _cleanup_free_ char *why = NULL;
        Manager *m = j->owner->m;
        uint64_t now = 0, at;
        char when[32] = "";
        int r;

        r = sd_event_now(m->event, CLOCK_REALTIME, &now);
        if (r < 0)
                return r;
        at = window_next(m->policy, now);
        if (at == 0) {
                r = instruction_verdict(j->owner, j->id, j->kind, "allowed", OUTCOME_NONE,
                                        "software updates are automatic and the maintenance window is open",
                                        NULL, NULL, NULL);
                if (r < 0)
                        return r;
                return software_fetch(j);
        }
        {
                time_t t = (time_t) (at / USEC_PER_SEC);
                struct tm tm;

                (void) strftime(when, sizeof(when), "%Y-%m-%d %H:%M %Z", localtime_r(&t, &tm));
        }
        if (asprintf(&why, "software updates are automatic: fetched in the maintenance window, at %s", when) < 0)
                return -ENOMEM;
        j->state = JOB_SCHEDULED;
        r = sd_event_add_time(m->event, &j->timer, CLOCK_REALTIME, at, 0, on_window, j);
        if (r < 0)
                return r;
        return instruction_verdict(j->owner, j->id, j->kind, "scheduled", OUTCOME_NONE, why, NULL, NULL, NULL);
}
