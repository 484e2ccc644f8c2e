/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Name resolution that opens no file once the sandbox is locked: /etc/hosts
 * and the name servers (/etc/resolv.conf, or DNS= of the configuration) are
 * read at start; afterwards a name is a numeric address, a line of that hosts
 * text, or the answer of a small DNS stub (UDP, asked again over TCP when the
 * answer is truncated; A then AAAA, recursion asked of the server) cached for
 * its TTL. A failure is never cached: the next exchange asks again. Library
 * code: it does not log. */

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef struct NwResolver NwResolver;

#define NW_RESOLVE_MAX_SERVERS 3     /* as glibc's MAXNS */
#define NW_RESOLVE_MAX_HOSTS 1024    /* lines of the hosts text kept */
#define NW_RESOLVE_CACHE_SIZE 8
#define NW_RESOLVE_TTL_MAX_USEC (3600ULL * 1000000ULL)

/* hosts_text: the text of /etc/hosts (NULL: none). servers: "ADDRESS[:PORT]"
 * items separated by spaces ("[v6]:PORT" for IPv6); if NULL or empty, the
 * "nameserver" lines of resolv_text (NULL: none), port 53. -EINVAL for a bad
 * server item. No I/O. */
int nw_resolver_new(const char *hosts_text, const char *resolv_text, const char *servers, NwResolver **ret);
/* Reads the two files (a missing file counts as empty) and calls nw_resolver_new(). */
int nw_resolver_load(const char *hosts_path, const char *resolv_path, const char *servers, NwResolver **ret);
NwResolver *nw_resolver_free(NwResolver *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(NwResolver *, nw_resolver_free);

#define NW_RESOLVE_QUERY_TIMEOUT_USEC (5ULL * 1000000ULL)
#define NW_RESOLVE_PROGRESS_USEC (100ULL * 1000ULL)

/* fn is called at least every NW_RESOLVE_PROGRESS_USEC while a query waits
 * (a watchdog: the caller's event loop does not run meanwhile). NULL: none. */
void nw_resolver_set_progress(NwResolver *r, void (*fn)(void *userdata), void *userdata);

/* The numeric address of name ("192.0.2.1", "2001:db8::1"), each DNS query
 * waiting at most timeout_usec (and NW_RESOLVE_QUERY_TIMEOUT_USEC) for its
 * server: at most 3 servers, A then AAAA. -ENOENT: the name does not exist
 * (or has no address); -ETIMEDOUT: no server answered; -EHOSTUNREACH: no
 * server is known; -EINVAL: not a valid host name. */
int nw_resolver_resolve(NwResolver *r, const char *name, uint64_t timeout_usec, char **ret_address);

/* Number of DNS queries sent so far (tests, benchmarks). */
unsigned nw_resolver_queries(const NwResolver *r);

/* ---- the stub's packets, without I/O (unit test, fuzz target) ---- */

#define DNS_NAME_MAX 253
#define DNS_TYPE_A 1
#define DNS_TYPE_AAAA 28

/* Writes the question section (QNAME, QTYPE, QCLASS IN) of a valid host name
 * into p, which holds DNS_NAME_MAX + 6 bytes; returns its length. */
size_t nw_dns_question(uint8_t *p, const char *name, uint16_t type);

/* Reads a reply (header included) to the question (as nw_dns_question() wrote
 * it): 0 and the first address of the type asked (numeric text) with its TTL;
 * -ENOENT for NXDOMAIN or no such address; -EMSGSIZE if truncated; -EIO for
 * another error code; -EBADMSG for anything malformed or not an answer to
 * the question. The header's id is the caller's to check. */
int nw_dns_parse_answer(const uint8_t *p, size_t len, const uint8_t *question, size_t qlen, uint16_t type,
                        char **ret_address, uint32_t *ret_ttl);
