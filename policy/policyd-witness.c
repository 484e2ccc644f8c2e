/* SPDX-License-Identifier: Apache-2.0 */
/* The witness: each check-in carries the audit log's latest checkpoint and the
 * RFC 9162 consistency proof from the tree size the server last acknowledged
 * (ipc/soap/PROTOCOL.md, "Witness"). The server's cosignature is audited and
 * handed to auditd (AddCosignedCheckpoint), so that retention can rely on it.
 * When the policy names the server's WitnessKey, the cosignature must verify
 * with it first (the check auditd makes, auditlog/checkpoint.c); one that does
 * not is refused: audited (witness.refused), said in the journal and in
 * LastError, and auditd never sees it. Without a WitnessKey policyd trusts the
 * cosignature for the mutual TLS channel it came over; auditd checks it only
 * when it was started with its own --witness-key.
 * A LogFork fault — the log does not extend what the server saw — is raised
 * loudly (ForkFault, the ForkDetected signal, an audit record, the journal),
 * kept across restarts, and stops automatic sending until an administrator
 * clears it. */
#include <assert.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "bus-util.h"
#include "checkpoint.h"
#include "fileio.h"
#include "log.h"
#include "parse-util.h"
#include "policyd-checkin.h"

#define AUDIT_NAME "org.callhome.Audit1"
#define AUDIT_PATH "/org/callhome/Audit1"
#define WITNESS_PROOF_MAX 64U           /* the protocol's bound on ProofHash */
#define WITNESS_NOTE_MAX 2048U          /* … and on Checkpoint */
#define HASH_SIZE 32U
#define EM_DASH "\xe2\x80\x94"                /* a signed note's signature lines start "— " */

typedef struct Witness {
        /* Kept in WITNESS_STATE_FILE. */
        uint64_t acked_size;            /* the tree head the server holds the log to */
        char *acked_root;
        uint64_t cosigned_size;         /* the latest checkpoint the server cosigned */
        char *cosigned_root;
        char *fault;                    /* the fork fault not cleared yet, or NULL */
        char *refused;                  /* why the last check-in's cosignature was refused, or NULL */

        /* Prepared for the check-in under way. */
        char *note;                     /* the signed checkpoint, NULL: no witness */
        uint64_t note_size;
        char *note_root;
        char *log_key;                  /* first contact only */
        uint64_t proof_from;
        char **proof;                   /* base64, NULL terminated */
        WitnessReady ready;
        void *userdata;
        sd_bus_slot *slot;              /* the Audit1 call under way */
        sd_bus_slot *cosign_slot;       /* AddCosignedCheckpoint */
        sd_bus_slot *clear_slot;        /* the audit record of ClearForkFault */
} Witness;

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

/* --- the state on disk ------------------------------------------------------------ */

static int state_save(Manager *m) {
        Witness *w = m->witness;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        const char *text;
        int r;

        if (!o)
                return log_oom();
        json_object_object_add(o, "acked_size", json_object_new_uint64(w->acked_size));
        json_object_object_add(o, "acked_root", json_object_new_string(w->acked_root ?: ""));
        json_object_object_add(o, "cosigned_size", json_object_new_uint64(w->cosigned_size));
        json_object_object_add(o, "cosigned_root", json_object_new_string(w->cosigned_root ?: ""));
        if (w->fault)
                json_object_object_add(o, "fork_fault", json_object_new_string(w->fault));
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!text)
                return log_oom();
        r = write_file_atomic_at(m->state_fd, WITNESS_STATE_FILE, text, strlen(text), 0600);
        if (r < 0)
                return log_error_errno(r, "Witness: cannot write %s/%s: %m", m->state_dir, WITNESS_STATE_FILE);
        return 0;
}

static int set_string(char **p, const char *s) {
        char *c = s && *s ? strdup(s) : NULL;

        if (s && *s && !c)
                return -ENOMEM;
        free(*p);
        *p = c;
        return 0;
}

static int state_load(Manager *m) {
        Witness *w = m->witness;
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *v;
        int r;

        /* Without it, sent without a proof, a longer log gets the server's head back, and proves from it next time. */
        r = manager_read_json_state(m, "Witness", WITNESS_STATE_FILE, CHECKIN_STATE_MAX, &o);
        if (r < 0 || !o)
                return r;
        if (json_object_object_get_ex(o, "acked_size", &v))
                w->acked_size = json_object_get_uint64(v);
        if (json_object_object_get_ex(o, "cosigned_size", &v))
                w->cosigned_size = json_object_get_uint64(v);
        r = 0;
        if (json_object_object_get_ex(o, "acked_root", &v))
                r = set_string(&w->acked_root, json_object_get_string(v));
        if (r >= 0 && json_object_object_get_ex(o, "cosigned_root", &v))
                r = set_string(&w->cosigned_root, json_object_get_string(v));
        if (r >= 0 && json_object_object_get_ex(o, "fork_fault", &v))
                r = set_string(&w->fault, json_object_get_string(v));
        if (r < 0)
                return log_oom();
        if (w->fault)
                log_full(LOG_CRIT, "Witness: automatic sending stays stopped: %s", w->fault);
        return 0;
}

/* --- preparing the witness of a check-in --------------------------------------------- */

static void prepared_clear(Witness *w) {
        w->note = (free(w->note), NULL);
        w->note_root = (free(w->note_root), NULL);
        w->log_key = (free(w->log_key), NULL);
        w->proof = strv_free(w->proof);
        w->note_size = w->proof_from = 0;
}

static void prepared_done(Manager *m) {
        Witness *w = m->witness;
        WitnessReady ready = w->ready;

        w->slot = sd_bus_slot_unref(w->slot);
        w->ready = NULL;
        if (ready)
                ready(m, w->userdata);
}

/* Something was missing: the check-in goes without a witness (never with a proof
 * that does not hold, which the server would take for a fork). */
static void prepared_fail(Manager *m, const char *what, const char *why) {
        log_warning("Witness: %s (%s); this check-in carries no checkpoint.", what, why);
        prepared_clear(m->witness);
        prepared_done(m);
}

/* The note's size and root: "origin\nsize\nbase64(root)\n\n— ...". */
static int note_parse(const char *note, uint64_t *ret_size, char **ret_root) {
        const char *a = strchr(note, '\n'), *b, *c;
        _cleanup_free_ char *size = NULL;

        if (!a || !(b = strchr(a + 1, '\n')) || !(c = strchr(b + 1, '\n')))
                return -EBADMSG;
        size = strndup(a + 1, (size_t) (b - a - 1));
        if (!size)
                return -ENOMEM;
        if (safe_atou64(size, ret_size) < 0)
                return -EBADMSG;
        *ret_root = strndup(b + 1, (size_t) (c - b - 1));
        return *ret_root ? 0 : -ENOMEM;
}

static int on_log_key(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        const char *key;

        /* Optional: a server configured with the key does without. */
        if (!sd_bus_message_is_method_error(reply, NULL) && sd_bus_message_read(reply, "v", "s", &key) >= 0 && *key &&
            set_string(&m->witness->log_key, key) < 0)
                log_oom();
        prepared_done(m);
        return 0;
}

/* Until the server cosigned once, the log's verifier key rides along, for a server
 * that trusts on first use. */
static void prepared_log_key(Manager *m) {
        Witness *w = m->witness;
        int r;

        w->slot = sd_bus_slot_unref(w->slot);
        if (w->cosigned_size > 0)
                return prepared_done(m);
        r = sd_bus_call_method_async(m->bus, &w->slot, AUDIT_NAME, AUDIT_PATH, "org.freedesktop.DBus.Properties", "Get",
                                     on_log_key, m, "ss", AUDIT_NAME, "CheckpointKey");
        if (r < 0)
                prepared_done(m);
}

static int on_proof(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        Witness *w = m->witness;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const void *hash;
        size_t len, n = 0;
        int r;

        if (e)
                return prepared_fail(m, "no consistency proof from auditd", e->message ?: e->name), 0;
        w->proof = calloc(WITNESS_PROOF_MAX + 1, sizeof(char *));
        if (!w->proof)
                return prepared_fail(m, "no consistency proof", strerror(ENOMEM)), 0;
        r = sd_bus_message_enter_container(reply, 'a', "ay");
        while (r >= 0 && (r = sd_bus_message_read_array(reply, 'y', &hash, &len)) > 0) {
                if (len != HASH_SIZE || n >= WITNESS_PROOF_MAX) {
                        r = -EBADMSG;
                        break;
                }
                w->proof[n] = malloc(4 * HASH_SIZE / 3 + 4);
                if (!w->proof[n]) {
                        r = -ENOMEM;
                        break;
                }
                (void) EVP_EncodeBlock((unsigned char *) w->proof[n++], hash, (int) len);
        }
        if (r < 0)
                return prepared_fail(m, "the consistency proof could not be read", strerror(-r)), 0;
        prepared_log_key(m);
        return 0;
}

static int on_checkpoint(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        Witness *w = m->witness;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *note;
        int r;

        w->slot = sd_bus_slot_unref(w->slot);
        if (e)
                return prepared_fail(m, "no checkpoint from auditd", e->message ?: e->name), 0;
        r = sd_bus_message_read(reply, "s", &note);
        if (r < 0 || strlen(note) > WITNESS_NOTE_MAX)
                return prepared_fail(m, "auditd's checkpoint is unusable", r < 0 ? strerror(-r) : "too long"), 0;
        r = note_parse(note, &w->note_size, &w->note_root);
        if (r >= 0)
                r = set_string(&w->note, note);
        if (r < 0)
                return prepared_fail(m, "auditd's checkpoint could not be read", strerror(-r)), 0;
        w->proof_from = w->acked_size;
        if (w->acked_size > 0 && w->acked_size < w->note_size)
                r = sd_bus_call_method_async(m->bus, &w->slot, AUDIT_NAME, AUDIT_PATH, AUDIT_NAME, "GetConsistencyProof",
                                             on_proof, m, "tt", w->acked_size, w->note_size);
        else {
                /* The same size needs no proof; a smaller one cannot have any, and the server says LogFork. */
                if (w->acked_size > w->note_size)
                        log_full(LOG_CRIT, "Witness: the audit log holds %" PRIu64 " records, fewer than the %" PRIu64
                                 " the server witnessed.", w->note_size, w->acked_size);
                return prepared_log_key(m), 0;
        }
        if (r < 0)
                prepared_fail(m, "auditd could not be asked", strerror(-r));
        return 0;
}

int witness_prepare(Manager *m, WitnessReady ready, void *userdata) {
        Witness *w = m->witness;
        int r;

        assert(w);
        assert(ready);
        assert(!w->ready);
        prepared_clear(w);
        w->ready = ready;
        w->userdata = userdata;
        r = sd_bus_call_method_async(m->bus, &w->slot, AUDIT_NAME, AUDIT_PATH, AUDIT_NAME, "GetCheckpoint",
                                     on_checkpoint, m, NULL);
        if (r < 0)
                w->ready = NULL;
        return r;
}

int witness_append(Manager *m, sd_bus_message *call) {
        Witness *w = m->witness;
        int r;

        assert(w);
        assert(call);
        r = sd_bus_message_open_container(call, 'a', "{sv}");
        if (r >= 0 && w->note)
                r = sd_bus_message_append(call, "{sv}", "checkpoint", "s", w->note);
        if (r >= 0 && w->note && w->log_key)
                r = sd_bus_message_append(call, "{sv}", "log_key", "s", w->log_key);
        if (r >= 0 && w->note)
                r = sd_bus_message_append(call, "{sv}", "proof_from", "t", w->proof_from);
        if (r >= 0 && w->note && w->proof) {
                r = sd_bus_message_open_container(call, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(call, "s", "proof_hashes");
                if (r >= 0)
                        r = sd_bus_message_open_container(call, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_append_strv(call, w->proof);
                if (r >= 0)
                        r = sd_bus_message_close_container(call);
                if (r >= 0)
                        r = sd_bus_message_close_container(call);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(call);
        return r;
}

/* --- the server's answer ------------------------------------------------------------------- */

static void audit_json(Manager *m, const char *type, json_object *o, const char *uid) {
        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);

        if (!text || manager_audit_append(m, type, text, uid, NULL, NULL, NULL) < 0)
                log_error("Audit: cannot record %s.", type);
}

typedef struct Cosigned {
        Manager *m;
        uint64_t size;
        char *root;
        char *cosignature;
        char *witness_key;              /* the policy's WitnessKey it was checked with, NULL: none set */
} Cosigned;

static Cosigned *cosigned_free(Cosigned *c) {
        if (c) {
                free(c->root);
                free(c->cosignature);
                free(c->witness_key);
                free(c);
        }
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Cosigned *, cosigned_free)

/* auditd holds the cosigned checkpoint (its witness record), or says why not: audited either way. */
static int on_cosigned_added(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(cosigned_freep) Cosigned *c = userdata;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uint64_t seq = 0;

        c->m->witness->cosign_slot = sd_bus_slot_unref(c->m->witness->cosign_slot);
        if (e)
                log_error("Witness: auditd did not take the checkpoint of %" PRIu64 " records the server cosigned: %s",
                          c->size, e->message ?: e->name);
        else {
                (void) sd_bus_message_read(reply, "t", &seq);
                log_info("Witness: the server cosigned the checkpoint of %" PRIu64 " records; auditd holds it "
                         "(record %" PRIu64 ").", c->size, seq);
        }
        if (!o)
                return log_oom(), 0;
        json_object_object_add(o, "size", json_object_new_uint64(c->size));
        json_object_object_add(o, "root", json_object_new_string(c->root));
        json_object_object_add(o, "cosignature", json_object_new_string(c->cosignature));
        if (c->witness_key)
                json_object_object_add(o, "witness_key", json_object_new_string(c->witness_key));
        if (e)
                json_object_object_add(o, "error", json_object_new_string(e->message ?: e->name));
        else
                json_object_object_add(o, "witness_seq", json_object_new_uint64(seq));
        audit_json(c->m, "witness.cosigned", o, NULL);
        return 0;
}

/* The checkpoint sent with the server's cosignature line appended: what auditd takes. */
static char *cosigned_note(Witness *w, const char *cosignature) {
        char *note;

        return asprintf(&note, "%s%s\n", w->note, cosignature) < 0 ? NULL : note;
}

/* Why the server's cosignature of the checkpoint sent does not verify with the witness key `k`
 * (the policy's WitnessKey), or NULL when it does. */
static const char *cosignature_fault(Witness *w, const char *k, const char *cosignature, char *buf, size_t size) {
        _cleanup_free_ char *note = NULL;
        char name[CHECKPOINT_NAME_MAX + 1];
        const char *start, *space;
        CheckpointVerifier v;

        if (checkpoint_witness_vkey_parse(k, strlen(k), &v) < 0)
                return "the policy's WitnessKey is not a witness verifier key";
        /* "— NAME SIGNATURE", NAME as a key's (printable, so it can be said in the journal) */
        if (strncmp(cosignature, EM_DASH " ", strlen(EM_DASH " ")) != 0 || cosignature[strcspn(cosignature, "\r\n")] ||
            !(space = strchr(start = cosignature + strlen(EM_DASH " "), ' ')) || space == start ||
            (size_t) (space - start) > CHECKPOINT_NAME_MAX)
                return "it is malformed (not one line \"" EM_DASH " NAME SIGNATURE\")";
        memcpy(name, start, (size_t) (space - start));
        name[space - start] = '\0';
        if (!checkpoint_name_valid(name))
                return "it is malformed (its witness name is not printable ASCII without spaces or '+')";
        if (!streq(name, v.name)) {
                (void) snprintf(buf, size, "it is by the witness \"%s\", not by \"%s\" the policy's WitnessKey names",
                                name, v.name);
                return buf;
        }
        note = cosigned_note(w, cosignature);
        if (!note)
                return "out of memory";
        if (checkpoint_cosignature_verify(note, strlen(note), &v, NULL) < 0)
                return "it does not verify with the policy's WitnessKey (a cosignature by another key, of another "
                       "checkpoint, or malformed)";
        return NULL;
}

/* With a WitnessKey in the policy, the cosignature must verify with it before anything takes it. One
 * that does not is refused: said in the journal and in LastError, audited, and not handed to auditd.
 * Returns whether it was refused. */
static bool cosignature_refused(Manager *m, const char *cosignature) {
        Witness *w = m->witness;
        const char *k = m->policy->witness_key, *why;
        _cleanup_(json_object_putp) json_object *o = NULL;
        char buf[CHECKPOINT_NAME_MAX * 2 + 128];

        if (!k || !*k)
                return false;
        why = cosignature_fault(w, k, cosignature, buf, sizeof(buf));
        if (!why)
                return false;
        free(w->refused);
        if (asprintf(&w->refused, "The Communication Server's cosignature of the audit log's checkpoint of %" PRIu64
                     " records was refused: %s. It was not handed to the audit log: the server is not the witness the "
                     "policy's WitnessKey names, or that key is wrong.", w->note_size, why) < 0)
                w->refused = NULL;
        log_error("Witness: %s", w->refused ?: why);
        o = json_object_new_object();
        if (!o)
                return log_oom(), true;
        json_object_object_add(o, "size", json_object_new_uint64(w->note_size));
        json_object_object_add(o, "root", json_object_new_string(w->note_root));
        json_object_object_add(o, "cosignature", json_object_new_string(cosignature));
        json_object_object_add(o, "witness_key", json_object_new_string(k));
        json_object_object_add(o, "reason", json_object_new_string(why));
        audit_json(m, "witness.refused", o, NULL);
        return true;
}

static int cosigned_hand_over(Manager *m, const char *cosignature) {
        Witness *w = m->witness;
        const char *k = m->policy->witness_key;
        _cleanup_(cosigned_freep) Cosigned *c = calloc(1, sizeof(Cosigned));
        _cleanup_free_ char *note = cosigned_note(w, cosignature);
        int r;

        if (!c || !note)
                return -ENOMEM;
        *c = (Cosigned) { .m = m, .size = w->note_size, .root = strdup(w->note_root), .cosignature = strdup(cosignature),
                          .witness_key = k && *k ? strdup(k) : NULL };
        if (!c->root || !c->cosignature || (k && *k && !c->witness_key))
                return -ENOMEM;
        r = set_string(&w->cosigned_root, w->note_root);
        if (r < 0)
                return r;
        w->cosigned_size = w->note_size;
        w->cosign_slot = sd_bus_slot_unref(w->cosign_slot);
        r = sd_bus_call_method_async(m->bus, &w->cosign_slot, AUDIT_NAME, AUDIT_PATH, AUDIT_NAME, "AddCosignedCheckpoint",
                                     on_cosigned_added, c, "s", note);
        if (r < 0)
                return r;
        TAKE_PTR(c);
        return 0;
}

static void fault_raise(Manager *m, const NetError *e) {
        Witness *w = m->witness;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        _cleanup_free_ char *text = NULL;

        if (asprintf(&text, "The Communication Server reports that this printer's audit log does not extend the one it "
                     "witnessed (it holds %" PRIu64 " records with root %s; this log's checkpoint has %" PRIu64 "): %s. "
                     "The log may have been truncated, rewritten or forked. Automatic sending is stopped until an "
                     "administrator calls ClearForkFault.", e->acked_size, e->acked_root ?: "?", w->note_size,
                     e->reason ?: e->message) < 0)
                return (void) log_oom();
        log_full(LOG_ALERT, "Witness: %s", text);
        free(w->fault);
        w->fault = TAKE_PTR(text);
        (void) state_save(m);
        if (o) {
                json_object_object_add(o, "acked_size", json_object_new_uint64(e->acked_size));
                json_object_object_add(o, "acked_root", json_object_new_string(e->acked_root ?: ""));
                json_object_object_add(o, "checkpoint_size", json_object_new_uint64(w->note_size));
                json_object_object_add(o, "checkpoint_root", json_object_new_string(w->note_root ?: ""));
                json_object_object_add(o, "reason", json_object_new_string(e->reason ?: e->message));
                audit_json(m, "witness.fork", o, NULL);
        } else
                log_oom();
        checkin_bus_emit_fork(m, w->fault, e->acked_size, e->acked_root ?: "");
}

typedef struct WitnessReply {
        uint64_t acked_size;
        const char *acked_root;
        const char *cosignature;
        bool has_size;
} WitnessReply;

static int read_reply_entry(sd_bus_message *reply, const char *key, void *userdata) {
        WitnessReply *wr = userdata;

        if (streq(key, "acked_size")) {
                wr->has_size = true;
                return sd_bus_message_read(reply, "v", "t", &wr->acked_size);
        }
        if (streq(key, "acked_root"))
                return sd_bus_message_read(reply, "v", "s", &wr->acked_root);
        if (streq(key, "cosignature"))
                return sd_bus_message_read(reply, "v", "s", &wr->cosignature);
        return sd_bus_message_skip(reply, "v");
}

int witness_reply(Manager *m, sd_bus_message *reply) {
        Witness *w = m->witness;
        WitnessReply wr = {};
        int r;

        assert(w);
        assert(reply);
        if (sd_bus_message_is_method_error(reply, NULL)) {
                NetError e;

                net_error_read(reply, &e);
                if (streq_ptr(e.fault, "LogFork"))
                        fault_raise(m, &e);
                return 0;
        }
        r = bus_message_read_dict(reply, read_reply_entry, &wr);
        if (r < 0)
                return r;
        w->refused = (free(w->refused), NULL);  /* a refusal stands until the next reply */
        if (!wr.has_size)
                return 0;
        if (wr.acked_size != w->acked_size || !streq_ptr(wr.acked_root, w->acked_root)) {
                /* The server holds the log to this head: the next proof starts there. */
                w->acked_size = wr.acked_size;
                r = set_string(&w->acked_root, wr.acked_root);
                if (r < 0)
                        return r;
        }
        if (!wr.cosignature) {
                if (w->note)
                        log_notice("Witness: the server holds the log at %" PRIu64 " records and did not cosign this "
                                   "checkpoint of %" PRIu64 "; the next check-in proves from there.",
                                   wr.acked_size, w->note_size);
        } else if (!w->note || wr.acked_size != w->note_size || !streq_ptr(wr.acked_root, w->note_root))
                log_warning("Witness: the server's cosignature is not for the checkpoint sent (%" PRIu64 " records), "
                            "ignoring.", w->note_size);
        else if (w->cosigned_size == w->note_size && streq_ptr(w->cosigned_root, w->note_root))
                /* auditd holds this one already: another witness record would add nothing. */
                log_debug("Witness: the checkpoint of %" PRIu64 " records was cosigned before.", w->note_size);
        else if (!cosignature_refused(m, wr.cosignature)) {
                r = cosigned_hand_over(m, wr.cosignature);
                if (r < 0)
                        log_error_errno(r, "Witness: cannot hand the cosigned checkpoint to auditd: %m");
        }
        (void) state_save(m);
        checkin_bus_emit_status(m);
        return 0;
}

/* --- the interface ---------------------------------------------------------------------------- */

const char *witness_fault(Manager *m) {
        return m->witness ? m->witness->fault : NULL;
}

const char *witness_refused(Manager *m) {
        return m->witness ? m->witness->refused : NULL;
}

void witness_last_cosigned(Manager *m, uint64_t *ret_size, const char **ret_root) {
        *ret_size = m->witness->cosigned_size;
        *ret_root = m->witness->cosigned_root ?: "";
}

typedef struct ClearCall {
        Manager *m;
        sd_bus_message *call;
        uid_t uid;
} ClearCall;

static ClearCall *clear_call_free(ClearCall *cc) {
        if (cc) {
                sd_bus_message_unref(cc->call);
                free(cc);
        }
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(ClearCall *, clear_call_free)

/* Recorded: now the fault goes. No record, no clearing. */
static int on_clear_audited(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(clear_call_freep) ClearCall *cc = userdata;
        Manager *m = cc->m;
        Witness *w = m->witness;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        w->clear_slot = sd_bus_slot_unref(w->clear_slot);
        if (e) {
                log_error("Witness: the fork fault was not cleared: the audit log could not record it: %s",
                          e->message ?: e->name);
                (void) sd_bus_reply_method_errorf(cc->call, POLICY_ERROR_AUDIT_UNAVAILABLE,
                                                  "The fork fault was not cleared: the audit log "
                                                  "(org.callhome.Audit1) could not record it: %s", e->message ?: e->name);
                return 0;
        }
        log_notice("Witness: the fork fault was cleared by uid %u (audited); automatic sending resumes.",
                   (unsigned) cc->uid);
        w->fault = (free(w->fault), NULL);
        (void) state_save(m);
        checkin_bus_emit_fork(m, NULL, 0, NULL);
        flow_policy_changed(m); /* the pushes the fault held back are scheduled again now */
        (void) sd_bus_reply_method_return(cc->call, NULL);
        return 0;
}

int witness_clear_fault(Manager *m, sd_bus_message *call, uid_t uid, sd_bus_error *error) {
        Witness *w = m->witness;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        _cleanup_(clear_call_freep) ClearCall *cc = NULL;
        const char *text;
        char uid_text[16];
        int r;

        assert(w);
        assert(call);
        if (!w->fault)
                return sd_bus_error_set(error, POLICY_ERROR_NO_FORK_FAULT, "There is no fork fault to clear.");
        if (w->clear_slot)
                return sd_bus_error_set(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                        "The fork fault is being cleared already; try again when that call is answered.");
        cc = calloc(1, sizeof(ClearCall));
        if (!o || !cc)
                return -ENOMEM;
        *cc = (ClearCall) { .m = m, .call = sd_bus_message_ref(call), .uid = uid };
        json_object_object_add(o, "uid", json_object_new_int64((int64_t) uid));
        json_object_object_add(o, "fault", json_object_new_string(w->fault));
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!text)
                return -ENOMEM;
        (void) snprintf(uid_text, sizeof(uid_text), "%u", (unsigned) uid);
        r = manager_audit_append(m, "witness.fork-cleared", text, uid_text, on_clear_audited, cc, &w->clear_slot);
        if (r < 0)
                return sd_bus_error_setf(error, POLICY_ERROR_AUDIT_UNAVAILABLE, "The fork fault was not cleared: the "
                                         "audit log could not be asked to record it: %s", strerror(-r));
        TAKE_PTR(cc);
        return 1;
}

int witness_new(Manager *m) {
        assert(m);
        assert(!m->witness);
        m->witness = calloc(1, sizeof(Witness));
        if (!m->witness)
                return -ENOMEM;
        return state_load(m);
}

void witness_free(Manager *m) {
        Witness *w = m->witness;

        if (!w)
                return;
        prepared_clear(w);
        sd_bus_slot_unref(w->slot);
        /* The slot's userdata is freed with it only by its callback: free it here. */
        if (w->cosign_slot)
                cosigned_free(sd_bus_slot_get_userdata(w->cosign_slot));
        sd_bus_slot_unref(w->cosign_slot);
        if (w->clear_slot)
                clear_call_free(sd_bus_slot_get_userdata(w->clear_slot));
        sd_bus_slot_unref(w->clear_slot);
        free(w->acked_root);
        free(w->cosigned_root);
        free(w->fault);
        free(w->refused);
        free(w);
        m->witness = NULL;
}
