/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The callers of one object, known without blocking the event loop.
 *
 * dbus-daemon does not put the sender's credentials in a message: a service
 * learns them only by asking the bus (GetConnectionCredentials). Asked
 * synchronously from a method handler, that call waits behind everything the
 * bus has queued for us, and a reader that does not read its replies can make
 * it wait for ever (issue 8). So:
 *
 *  - A filter sees each call to the object first. A caller whose credentials
 *    are not known yet (they are asked for asynchronously as soon as a new
 *    unique name appears on the bus, or at its first call) has its calls held,
 *    in order; once they are known the calls are dispatched again as if
 *    just received, and the handlers judge them from the cache. A unique name
 *    is never reused, so its entry is dropped only when NameOwnerChanged says
 *    it left the bus. Held calls are bounded (BUS_PEERS_HELD_BYTES_MAX); beyond
 *    it a call is refused with LimitsExceeded, and a failed look-up answers the
 *    held calls with Failed: neither is ever AccessDenied.
 *
 *  - The guard sees every call first: a daemon's own filters are added with
 *    bus_peers_add_filter(), never sd_bus_add_filter() (sd-bus runs the filter
 *    added last first, so one added after the guard would judge a call before
 *    its caller is known; one added before it sees a held call twice). They see a held call once it is dispatched again,
 *    as do the vtables' methods and property handlers (Get, Set, GetAll): all
 *    judge from the cache (bus_check_caller(), bus_check_property_caller()).
 *
 *  - Replies are flow-controlled. The bus keeps what we sent to a caller until
 *    the caller reads it, counted against our own incoming limit: a caller that
 *    never reads would stop the bus from reading anything of ours, the append
 *    replies too. So each reply's bytes count as unread until the caller
 *    answers an org.freedesktop.DBus.Peer.Ping sent after it (delivered in
 *    order, so answered only once the replies before it were read), or leaves
 *    the bus; the total unread is bounded by the budget the caller asks for
 *    with bus_peers_reply_budget(). */

#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "macro.h"

/* A first call of the largest Append (16 MiB payload, metadata, header) fits. */
#define BUS_PEERS_HELD_BYTES_MAX ((16U << 20) + (64U << 10))
/* The callers ever held at once: an entry per unique name that called us and is still connected. */
#define BUS_PEERS_MAX 4096U

#define BUS_ERROR_LIMITS_EXCEEDED "org.freedesktop.DBus.Error.LimitsExceeded"

typedef struct BusPeers BusPeers;

/* Guards the method calls to `path` (all interfaces but Introspectable and Peer).
 * `unread_max`: the bytes of replies sent with bus_peers_send_reply() that may
 * be unread at once. */
int bus_peers_new(sd_bus *bus, const char *path, uint64_t unread_max, BusPeers **ret);
BusPeers *bus_peers_free(BusPeers *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusPeers *, bus_peers_free);

/* Adds a filter that runs behind the guard, after those added before it: it
 * sees every message the guard lets pass, and each held call when it is
 * dispatched again, with the caller's credentials known. Its return value means
 * what sd_bus_add_filter()'s does. Lives as long as `p`. */
int bus_peers_add_filter(BusPeers *p, sd_bus_message_handler_t callback, void *userdata);

/* Counts the calls let through to each caller, to any object and interface (each
 * is answered, if not by a handler then by sd-bus): once `calls_max` of them may have
 * replies it has not read (it has not answered a Ping sent after them), its
 * further calls wait, in order, until it does; past `calls_max` waiting calls
 * (or BUS_PEERS_HELD_BYTES_MAX of them in all) they are dropped unanswered, as
 * an answer would be one more unread message (the bus answers NoReply). So a
 * caller that never reads keeps at most `calls_max` replies in the bus, and the
 * bus never stops reading the daemon for the others. Choose `calls_max` times
 * the largest reply well below the bus' max_incoming_bytes. 0 (the default):
 * not counted. A reply answered by an asynchronous handler after a Ping went
 * out is credited with that Ping: the daemon bounds those itself. */
void bus_peers_limit_calls(BusPeers *p, unsigned calls_max);

/* The peers guarding calls on `bus`, or NULL: bus_check_caller() uses them. */
BusPeers *bus_peers_of(sd_bus *bus);

/* Judges the sender of `m` from the cache, never by a bus call: 0 allowed;
 * -EACCES with AccessDenied; -EAGAIN with Failed if its credentials are not
 * known (only a call that bypassed the filter). */
int bus_peers_check(BusPeers *p, sd_bus_message *m, uid_t uid, gid_t gid, sd_bus_error *error);

/* The sender's uid from the cache: 0, or -EAGAIN with Failed as above. */
int bus_peers_sender_uid(BusPeers *p, sd_bus_message *m, uid_t *ret, sd_bus_error *error);

/* Bytes of replies that may be sent now. */
uint64_t bus_peers_reply_budget(BusPeers *p);

/* Sends `reply` (to a call guarded here) and counts `size` bytes as unread by
 * its destination until it answers a Ping sent after it. */
int bus_peers_send_reply(BusPeers *p, sd_bus_message *reply, uint64_t size);

/* Reads a reply of org.freedesktop.DBus.GetConnectionCredentials: the uid, and
 * the groups if asked (NULL if the bus gave none). -ENODATA without a uid. */
int bus_credentials_read(sd_bus_message *reply, uid_t *ret_uid, gid_t **ret_gids, size_t *ret_n_gids);

/* Unread reply bytes in all, and calls held now (for tests and status). */
uint64_t bus_peers_unread(BusPeers *p);
