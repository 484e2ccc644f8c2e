/* SPDX-License-Identifier: Apache-2.0 */
/* Callers known without blocking the loop, and replies they must read: see bus-peers.h. */
#include <assert.h>
#include <stdbool.h>

#include "bus-peers.h"

#define DBUS_NAME "org.freedesktop.DBus"
#define DBUS_PATH "/org/freedesktop/DBus"
/* Elements a held call may have: enough for any well-formed call of ours. */
#define HELD_ELEMENTS_MAX 4096U

typedef struct BusPeer BusPeer;
struct BusPeer {
        BusPeers *peers;
        BusPeer *next;
        char *name;

        bool known;
        uid_t uid;
        gid_t *gids;
        size_t n_gids;
        sd_bus_slot *lookup;

        sd_bus_message **held; /* calls awaiting the look-up, or (known) the caller's reading, in order */
        size_t n_held;
        uint64_t held_bytes;

        uint64_t unread;  /* reply bytes not known to be read */
        uint64_t pinged;  /* of which sent before the Ping in flight */
        unsigned calls;   /* calls let through whose replies are not known to be read */
        unsigned pinged_calls; /* of which let through before the Ping in flight */
        sd_bus_slot *ping;
};

typedef struct BusPeersFilter {
        sd_bus_message_handler_t callback;
        void *userdata;
} BusPeersFilter;

struct BusPeers {
        sd_bus *bus;
        char *path;
        sd_bus_slot *filter, *match;
        BusPeer *list;
        size_t n_peers;
        uint64_t held_bytes;     /* held for their look-ups */
        uint64_t waiting_bytes;  /* held for their callers' reading (bus_peers_limit_calls()) */
        uint64_t unread, unread_max;
        unsigned calls_max;      /* 0: calls are not counted */
        BusPeersFilter *filters; /* the daemon's own, behind the guard (bus_peers_add_filter()) */
        size_t n_filters;
};

static BusPeers *registered;

static BusPeer *peer_find(BusPeers *p, const char *name) {
        for (BusPeer *e = p->list; e; e = e->next)
                if (streq(e->name, name))
                        return e;
        return NULL;
}

/* A known caller's calls wait for its reading; an unknown one's for its look-up. */
static uint64_t *peer_hold_counter(BusPeer *e) {
        return e->known ? &e->peers->waiting_bytes : &e->peers->held_bytes;
}

static void peer_release_held(BusPeer *e) {
        for (size_t i = 0; i < e->n_held; i++)
                sd_bus_message_unref(e->held[i]);
        free(e->held);
        e->held = NULL;
        e->n_held = 0;
        *peer_hold_counter(e) -= e->held_bytes;
        e->held_bytes = 0;
}

/* The held calls dispatched again, in the order received: they meet the filter anew. */
static void peer_replay_held(BusPeer *e) {
        for (size_t i = 0; i < e->n_held; i++)
                (void) sd_bus_enqueue_for_read(e->peers->bus, e->held[i]);
        peer_release_held(e);
}

static void peer_drop(BusPeer *e) {
        BusPeers *p = e->peers;

        for (BusPeer **pp = &p->list; *pp; pp = &(*pp)->next)
                if (*pp == e) {
                        *pp = e->next;
                        break;
                }
        p->n_peers--;
        p->unread -= e->unread;
        sd_bus_slot_unref(e->lookup);
        sd_bus_slot_unref(e->ping);
        peer_release_held(e);
        free(e->gids);
        free(e->name);
        free(e);
}

/* An upper bound of a message's body, walked without copying; -E2BIG past HELD_ELEMENTS_MAX elements. */
static int body_size(sd_bus_message *m, uint64_t *size, unsigned *budget) {
        for (;;) {
                const char *contents;
                char type;
                int r;

                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r <= 0)
                        return r;
                if (*budget == 0)
                        return -E2BIG;
                (*budget)--;
                *size += 8; /* alignment and length */
                if (type == 'a' && contents && strlen(contents) == 1 && strchr("ybnqiuxtd", contents[0])) {
                        const void *a;
                        size_t n;

                        r = sd_bus_message_read_array(m, contents[0], &a, &n);
                        *size += n;
                } else if (strchr("aver", type)) {
                        r = sd_bus_message_enter_container(m, type, contents);
                        if (r >= 0)
                                r = body_size(m, size, budget);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(m);
                } else if (strchr("sog", type)) {
                        const char *s;

                        r = sd_bus_message_read_basic(m, type, &s);
                        if (r >= 0)
                                *size += strlen(s);
                } else {
                        uint64_t v;

                        r = sd_bus_message_read_basic(m, type, &v);
                }
                if (r < 0)
                        return r;
        }
}

static int message_size(sd_bus_message *m, uint64_t *ret) {
        unsigned budget = HELD_ELEMENTS_MAX;
        uint64_t size = 256; /* the header */
        int r;

        r = body_size(m, &size, &budget);
        (void) sd_bus_message_rewind(m, true);
        if (r < 0)
                return r;
        *ret = size;
        return 0;
}

static int reply_limits(sd_bus_message *m, const char *what) {
        return sd_bus_reply_method_errorf(m, BUS_ERROR_LIMITS_EXCEEDED, "%s; try again.", what);
}

int bus_credentials_read(sd_bus_message *reply, uid_t *ret_uid, gid_t **ret_gids, size_t *ret_n_gids) {
        _cleanup_free_ gid_t *gids = NULL;
        bool have_uid = false;
        size_t n_gids = 0;
        const char *key;
        uid_t uid = (uid_t) -1;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "UnixUserID")) {
                        uint32_t u;

                        r = sd_bus_message_read(reply, "v", "u", &u);
                        uid = (uid_t) u;
                        have_uid = r >= 0;
                } else if (streq(key, "UnixGroupIDs")) {
                        const uint32_t *g;
                        size_t n;

                        r = sd_bus_message_enter_container(reply, 'v', "au");
                        if (r < 0)
                                return r;
                        r = sd_bus_message_read_array(reply, 'u', (const void **) &g, &n);
                        if (r < 0)
                                return r;
                        free(gids);
                        n_gids = 0;
                        gids = malloc((n / sizeof(uint32_t) + 1) * sizeof(gid_t));
                        if (!gids)
                                return -ENOMEM;
                        for (size_t i = 0; i < n / sizeof(uint32_t); i++)
                                gids[n_gids++] = (gid_t) g[i];
                        r = sd_bus_message_exit_container(reply);
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (!have_uid)
                return -ENODATA;
        if (ret_uid)
                *ret_uid = uid;
        if (ret_gids) {
                *ret_gids = TAKE_PTR(gids);
                *ret_n_gids = n_gids;
        }
        return 0;
}

static int on_credentials(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BusPeer *e = userdata;
        const sd_bus_error *err = sd_bus_message_get_error(reply);
        int r = err ? -EIO : bus_credentials_read(reply, &e->uid, &e->gids, &e->n_gids);

        e->lookup = sd_bus_slot_unref(e->lookup);
        if (r < 0) {
                /* Not a denial: the caller may be rightful, we could not tell. */
                for (size_t i = 0; i < e->n_held; i++)
                        (void) sd_bus_reply_method_errorf(e->held[i], SD_BUS_ERROR_FAILED,
                                                          "Cannot learn the caller's credentials from the bus (%s); try again.",
                                                          err ? err->message : strerror(-r));
                peer_drop(e);
                return 0;
        }
        /* Released while still unknown (their bytes are counted as held for the look-up);
         * the filter now lets them pass. */
        peer_replay_held(e);
        e->known = true;
        return 0;
}

/* A new entry, its credentials asked for. */
static int peer_new(BusPeers *p, const char *name, BusPeer **ret) {
        BusPeer *e;
        int r;

        if (p->n_peers >= BUS_PEERS_MAX) {
                /* The bus drops signals to a service whose queue is full, a NameOwnerChanged
                 * among them: forget the oldest idle entry (at worst it is looked up again). */
                BusPeer *idle = NULL;

                for (BusPeer *i = p->list; i; i = i->next)
                        if (i->known && i->n_held == 0 && i->unread == 0 && i->calls == 0)
                                idle = i;
                if (!idle)
                        return -ENOBUFS;
                peer_drop(idle);
        }
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->name = strdup(name);
        if (!e->name) {
                free(e);
                return -ENOMEM;
        }
        e->peers = p;
        e->next = p->list;
        p->list = e;
        p->n_peers++;
        r = sd_bus_call_method_async(p->bus, &e->lookup, DBUS_NAME, DBUS_PATH, DBUS_NAME, "GetConnectionCredentials",
                                     on_credentials, e, "s", name);
        if (r < 0) {
                peer_drop(e);
                return r;
        }
        *ret = e;
        return 0;
}

/* A method call that is judged by the caller's credentials. */
static bool guarded(BusPeers *p, sd_bus_message *m) {
        const char *path = sd_bus_message_get_path(m), *iface = sd_bus_message_get_interface(m);

        if (!path || !streq(path, p->path))
                return false;
        return !iface || (!streq(iface, "org.freedesktop.DBus.Introspectable") && !streq(iface, "org.freedesktop.DBus.Peer"));
}

static int ping_start(BusPeer *e);

static int hold(BusPeer *e, sd_bus_message *m, uint64_t size) {
        sd_bus_message **h = realloc(e->held, (e->n_held + 1) * sizeof(*h));

        if (!h)
                return -ENOMEM;
        e->held = h;
        e->held[e->n_held++] = sd_bus_message_ref(m);
        e->held_bytes += size;
        *peer_hold_counter(e) += size;
        return 1;
}

/* A call let through while the calls whose replies its caller has not been seen
 * to read stay below calls_max, else held until it answers a Ping. */
static int guard_unread(BusPeers *p, BusPeer *e, sd_bus_message *m) {
        uint64_t size;

        if (p->calls_max == 0)
                return 0;
        /* The replies to the calls let through so far are sent (or will be, by an asynchronous
         * handler): a Ping sent now reaches the caller after them. */
        if (!e->ping && e->calls > 0)
                (void) ping_start(e);
        if (e->n_held == 0 && e->calls < p->calls_max) {
                e->calls++;
                return 0;
        }
        /* A caller that does not read: its calls wait, as many as it may have unread; more are
         * dropped unanswered, as an answer would be one more message it does not read (the bus
         * tells it NoReply in time). */
        if (e->n_held >= p->calls_max || message_size(m, &size) < 0 ||
            *peer_hold_counter(e) + size > BUS_PEERS_HELD_BYTES_MAX)
                return 1;
        return hold(e, m, size);
}

/* 0: the call goes on; 1: held, refused or dropped here. Every method call is
 * answered, by a handler or by sd-bus (Introspect, Peer, an unknown object): with
 * calls counted, every one counts, whatever its object. */
static int guard(BusPeers *p, sd_bus_message *m) {
        const char *sender = sd_bus_message_get_sender(m);
        bool judged;
        BusPeer *e;
        uint64_t size;
        int r;

        if (!sender || !sd_bus_message_is_method_call(m, NULL, NULL))
                return 0;
        judged = guarded(p, m);
        if (!judged && p->calls_max == 0)
                return 0;
        e = peer_find(p, sender);
        /* Asked for even if this call is refused below, so that its next one finds the answer. */
        if (!e) {
                r = peer_new(p, sender, &e);
                if (r == -ENOBUFS)
                        return reply_limits(m, "Too many callers"), 1;
                if (r < 0)
                        return sd_bus_reply_method_errorf(m, SD_BUS_ERROR_FAILED,
                                                          "Cannot ask the bus for the caller's credentials (%s); try again.",
                                                          strerror(-r)), 1;
        }
        /* What needs no credentials waits only behind what does (calls stay in order). */
        if (e->known || (!judged && e->n_held == 0))
                return guard_unread(p, e, m);
        if (message_size(m, &size) < 0)
                return reply_limits(m, "The call is too large to hold while the caller's credentials are asked for"), 1;
        if (p->held_bytes + size > BUS_PEERS_HELD_BYTES_MAX)
                return reply_limits(m, "Too many calls of new callers await their credentials"), 1;
        return hold(e, m, size);
}

static int on_message(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        BusPeers *p = userdata;
        int r = guard(p, m);

        if (r != 0)
                return r;
        /* The daemon's own filters see what passed, a held call when it is dispatched again. */
        for (size_t i = 0; i < p->n_filters; i++) {
                r = p->filters[i].callback(m, p->filters[i].userdata, ret_error);
                if (r != 0)
                        return r;
        }
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        BusPeers *p = userdata;
        const char *name, *old_owner, *new_owner;
        BusPeer *e;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || name[0] != ':')
                return 0;
        e = peer_find(p, name);
        if (!*new_owner) {
                if (e)
                        peer_drop(e); /* what the bus held for it is gone with it */
        } else if (!e && !*old_owner)
                /* A new connection: ask now, so that its first call rarely waits. */
                (void) peer_new(p, name, &e);
        return 0;
}

int bus_peers_new(sd_bus *bus, const char *path, uint64_t unread_max, BusPeers **ret) {
        _cleanup_(bus_peers_freep) BusPeers *p = NULL;
        int r;

        assert(bus);
        assert(path);
        assert(ret);
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->bus = sd_bus_ref(bus);
        p->unread_max = unread_max;
        p->path = strdup(path);
        if (!p->path)
                return -ENOMEM;
        r = sd_bus_match_signal_async(bus, &p->match, DBUS_NAME, DBUS_PATH, DBUS_NAME, "NameOwnerChanged",
                                      on_name_owner_changed, NULL, p);
        if (r < 0)
                return r;
        r = sd_bus_add_filter(bus, &p->filter, on_message, p);
        if (r < 0)
                return r;
        if (!registered)
                registered = p;
        *ret = TAKE_PTR(p);
        return 0;
}

BusPeers *bus_peers_free(BusPeers *p) {
        if (!p)
                return NULL;
        if (registered == p)
                registered = NULL;
        while (p->list)
                peer_drop(p->list);
        sd_bus_slot_unref(p->filter);
        sd_bus_slot_unref(p->match);
        sd_bus_unref(p->bus);
        free(p->filters);
        free(p->path);
        free(p);
        return NULL;
}

int bus_peers_add_filter(BusPeers *p, sd_bus_message_handler_t callback, void *userdata) {
        BusPeersFilter *f;

        assert(p);
        assert(callback);
        f = realloc(p->filters, (p->n_filters + 1) * sizeof(*f));
        if (!f)
                return -ENOMEM;
        p->filters = f;
        p->filters[p->n_filters++] = (BusPeersFilter) { .callback = callback, .userdata = userdata };
        return 0;
}

void bus_peers_limit_calls(BusPeers *p, unsigned calls_max) {
        assert(p);
        p->calls_max = calls_max;
}

BusPeers *bus_peers_of(sd_bus *bus) {
        return registered && registered->bus == bus ? registered : NULL;
}

/* The sender's entry if its credentials are known; else -EAGAIN with Failed. */
static int peer_known(BusPeers *p, sd_bus_message *m, BusPeer **ret, sd_bus_error *error) {
        const char *sender = sd_bus_message_get_sender(m);
        BusPeer *e = sender ? peer_find(p, sender) : NULL;

        assert(p);
        if (!e || !e->known) {
                sd_bus_error_set(error, SD_BUS_ERROR_FAILED, "The caller's credentials are not known yet; try again.");
                return -EAGAIN;
        }
        *ret = e;
        return 0;
}

int bus_peers_sender_uid(BusPeers *p, sd_bus_message *m, uid_t *ret, sd_bus_error *error) {
        BusPeer *e;
        int r = peer_known(p, m, &e, error);

        if (r < 0)
                return r;
        *ret = e->uid;
        return 0;
}

int bus_peers_check(BusPeers *p, sd_bus_message *m, uid_t uid, gid_t gid, sd_bus_error *error) {
        BusPeer *e;
        int r = peer_known(p, m, &e, error);

        if (r < 0)
                return r;
        if (e->uid == 0 || (uid != (uid_t) -1 && e->uid == uid))
                return 0;
        if (gid != (gid_t) -1)
                for (size_t i = 0; i < e->n_gids; i++)
                        if (e->gids[i] == gid)
                                return 0;
        sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "Caller is not permitted to use this method.");
        return -EACCES;
}

uint64_t bus_peers_reply_budget(BusPeers *p) {
        return p->unread >= p->unread_max ? 0 : p->unread_max - p->unread;
}

uint64_t bus_peers_unread(BusPeers *p) {
        return p->unread;
}

static int on_ping(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BusPeer *e = userdata;
        const sd_bus_error *err = sd_bus_message_get_error(reply);
        const char *sender = sd_bus_message_get_sender(reply);

        e->ping = sd_bus_slot_unref(e->ping);
        /* An answer from the caller itself, even an error, means it read everything before the Ping. */
        if (!err || (sender && streq(sender, e->name))) {
                e->unread -= e->pinged;
                e->peers->unread -= e->pinged;
                e->pinged = 0;
                e->calls -= e->pinged_calls;
                e->pinged_calls = 0;
                peer_replay_held(e); /* let through again, as many as it may now have unread */
        } else if (sd_bus_error_has_names(err, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER)) {
                peer_drop(e); /* it left the bus, and we missed NameOwnerChanged */
                return 0;
        } else if (!sd_bus_error_has_name(err, SD_BUS_ERROR_NO_REPLY))
                return 0; /* not delivered: counted until the next reply or call pings, or the caller leaves */
        if (e->unread > 0 || e->n_held > 0)
                (void) ping_start(e);
        return 0;
}

static int ping_start(BusPeer *e) {
        int r = sd_bus_call_method_async(e->peers->bus, &e->ping, e->name, "/", "org.freedesktop.DBus.Peer", "Ping",
                                         on_ping, e, NULL);
        if (r >= 0) {
                e->pinged = e->unread;
                e->pinged_calls = e->calls;
        }
        return r;
}

int bus_peers_send_reply(BusPeers *p, sd_bus_message *reply, uint64_t size) {
        const char *dest = sd_bus_message_get_destination(reply);
        BusPeer *e = dest ? peer_find(p, dest) : NULL;
        int r;

        assert(p);
        r = sd_bus_send(NULL, reply, NULL);
        if (r < 0 || !e)
                return r;
        e->unread += size;
        p->unread += size;
        if (!e->ping)
                (void) ping_start(e); /* if it cannot be sent, the bytes stay counted until the caller leaves */
        return r;
}
