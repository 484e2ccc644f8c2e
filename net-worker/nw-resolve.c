/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <assert.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "nw-resolve.h"
#include "parse-util.h"

#define RESOLVE_FILE_MAX (256U * 1024)
#define DNS_PACKET_MAX 1500
#define DNS_TCP_PACKET_MAX 65535 /* the two-byte length of DNS over TCP (RFC 7766) */
#define DNS_CLASS_IN 1

typedef struct HostEntry {
        char *name;
        char *address;
} HostEntry;

typedef struct CacheEntry {
        char *name;
        char *address;
        uint64_t expires_usec;
} CacheEntry;

struct NwResolver {
        HostEntry *hosts;
        size_t n_hosts;
        struct sockaddr_storage servers[NW_RESOLVE_MAX_SERVERS];
        socklen_t server_len[NW_RESOLVE_MAX_SERVERS];
        size_t n_servers;
        CacheEntry cache[NW_RESOLVE_CACHE_SIZE];
        unsigned queries;
        void (*progress)(void *userdata);
        void *progress_userdata;
};

void nw_resolver_set_progress(NwResolver *r, void (*fn)(void *userdata), void *userdata) {
        assert(r);
        r->progress = fn;
        r->progress_userdata = userdata;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static void cache_entry_clear(CacheEntry *e) {
        free(e->name);
        free(e->address);
        *e = (CacheEntry) {};
}

NwResolver *nw_resolver_free(NwResolver *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_hosts; i++) {
                free(r->hosts[i].name);
                free(r->hosts[i].address);
        }
        free(r->hosts);
        for (size_t i = 0; i < NW_RESOLVE_CACHE_SIZE; i++)
                cache_entry_clear(&r->cache[i]);
        free(r);
        return NULL;
}

static bool is_numeric(const char *s) {
        unsigned char buf[sizeof(struct in6_addr)];

        return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A DNS name of letters, digits, '-' and '_', labels of 1…63 characters. */
static bool is_host_name(const char *s) {
        size_t label = 0, n = strlen(s);

        if (n == 0 || n > DNS_NAME_MAX)
                return false;
        for (const char *p = s; *p; p++) {
                if (*p == '.') {
                        if (label == 0)
                                return false;
                        label = 0;
                        continue;
                }
                if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') || *p == '-' ||
                      *p == '_'))
                        return false;
                if (++label > 63)
                        return false;
        }
        return true;
}

static int hosts_add(NwResolver *r, const char *address, const char *name) {
        HostEntry *h;

        if (r->n_hosts >= NW_RESOLVE_MAX_HOSTS)
                return 0;
        h = realloc(r->hosts, (r->n_hosts + 1) * sizeof(*h));
        if (!h)
                return -ENOMEM;
        r->hosts = h;
        h[r->n_hosts] = (HostEntry) { .name = strdup(name), .address = strdup(address) };
        if (!h[r->n_hosts].name || !h[r->n_hosts].address) {
                free(h[r->n_hosts].name);
                free(h[r->n_hosts].address);
                return -ENOMEM;
        }
        r->n_hosts++;
        return 0;
}

/* Calls fn for each line's words (comments cut), as hosts(5) and resolv.conf(5) are written. */
static int for_each_line(const char *text, NwResolver *r, int (*fn)(NwResolver *r, char **words, size_t n)) {
        _cleanup_free_ char *copy = strdup(text);
        char *line, *next;

        if (!copy)
                return -ENOMEM;
        for (line = copy; line; line = next) {
                char *words[16], *save = NULL, *w;
                size_t n = 0;
                int k;

                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                line[strcspn(line, "#;")] = '\0';
                for (w = strtok_r(line, " \t\r", &save); w && n < ELEMENTSOF(words); w = strtok_r(NULL, " \t\r", &save))
                        words[n++] = w;
                if (n == 0)
                        continue;
                k = fn(r, words, n);
                if (k < 0)
                        return k;
        }
        return 0;
}

static int hosts_line(NwResolver *r, char **words, size_t n) {
        if (!is_numeric(words[0]))
                return 0; /* not an address: ignored, as glibc does */
        for (size_t i = 1; i < n; i++)
                if (is_host_name(words[i])) {
                        int k = hosts_add(r, words[0], words[i]);
                        if (k < 0)
                                return k;
                }
        return 0;
}

/* "ADDRESS", "ADDRESS:PORT" (IPv4), "[ADDRESS]:PORT" or "ADDRESS" (IPv6). */
static int server_add(NwResolver *r, const char *item) {
        _cleanup_free_ char *host = NULL;
        const char *port_text = NULL;
        struct sockaddr_storage *ss;
        unsigned port = 53;

        if (r->n_servers >= NW_RESOLVE_MAX_SERVERS)
                return 0;
        if (item[0] == '[') {
                const char *end = strchr(item, ']');
                if (!end || (end[1] != '\0' && end[1] != ':'))
                        return -EINVAL;
                host = strndup(item + 1, (size_t) (end - item - 1));
                if (end[1] == ':')
                        port_text = end + 2;
        } else {
                const char *colon = strchr(item, ':');
                if (colon && !strchr(colon + 1, ':')) {
                        host = strndup(item, (size_t) (colon - item));
                        port_text = colon + 1;
                } else
                        host = strdup(item);
        }
        if (!host)
                return -ENOMEM;
        if (port_text && (safe_atou(port_text, &port) < 0 || port == 0 || port > 65535))
                return -EINVAL;

        ss = &r->servers[r->n_servers];
        *ss = (struct sockaddr_storage) {};
        if (inet_pton(AF_INET, host, &((struct sockaddr_in *) ss)->sin_addr) == 1) {
                ((struct sockaddr_in *) ss)->sin_family = AF_INET;
                ((struct sockaddr_in *) ss)->sin_port = htons((uint16_t) port);
                r->server_len[r->n_servers] = sizeof(struct sockaddr_in);
        } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *) ss)->sin6_addr) == 1) {
                ((struct sockaddr_in6 *) ss)->sin6_family = AF_INET6;
                ((struct sockaddr_in6 *) ss)->sin6_port = htons((uint16_t) port);
                r->server_len[r->n_servers] = sizeof(struct sockaddr_in6);
        } else
                return -EINVAL;
        r->n_servers++;
        return 0;
}

static int resolv_line(NwResolver *r, char **words, size_t n) {
        /* A scoped or otherwise unusable name server line is skipped, as glibc does. */
        if (n >= 2 && streq(words[0], "nameserver") && !strchr(words[1], '%') && is_numeric(words[1]))
                return server_add(r, words[1]);
        return 0;
}

int nw_resolver_new(const char *hosts_text, const char *resolv_text, const char *servers, NwResolver **ret) {
        _cleanup_(nw_resolver_freep) NwResolver *r = NULL;
        int k;

        assert(ret);

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        if (hosts_text) {
                k = for_each_line(hosts_text, r, hosts_line);
                if (k < 0)
                        return k;
        }
        if (servers && servers[0]) {
                _cleanup_free_ char *copy = strdup(servers);
                char *save = NULL;

                if (!copy)
                        return -ENOMEM;
                for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                        k = server_add(r, w);
                        if (k < 0)
                                return k;
                }
        } else if (resolv_text) {
                k = for_each_line(resolv_text, r, resolv_line);
                if (k < 0)
                        return k;
        }
        *ret = TAKE_PTR(r);
        return 0;
}

static int read_optional(const char *path, char **ret) {
        size_t size;
        int k;

        if (!path) {
                *ret = NULL;
                return 0;
        }
        k = read_small_file_at(AT_FDCWD, path, RESOLVE_FILE_MAX, ret, &size);
        if (k == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        return k;
}

int nw_resolver_load(const char *hosts_path, const char *resolv_path, const char *servers, NwResolver **ret) {
        _cleanup_free_ char *hosts = NULL, *resolv = NULL;
        int k;

        k = read_optional(hosts_path, &hosts);
        if (k < 0)
                return k;
        k = read_optional(resolv_path, &resolv);
        if (k < 0)
                return k;
        return nw_resolver_new(hosts, resolv, servers, ret);
}

unsigned nw_resolver_queries(const NwResolver *r) {
        assert(r);
        return r->queries;
}

/* ---- the DNS stub ---- */

/* The question section: QNAME, QTYPE, QCLASS. */
size_t nw_dns_question(uint8_t *p, const char *name, uint16_t type) {
        size_t n = 0;

        for (const char *s = name; *s;) {
                size_t l = strcspn(s, ".");
                p[n++] = (uint8_t) l;
                memcpy(p + n, s, l);
                n += l;
                s += l + (s[l] == '.');
        }
        p[n++] = 0;
        p[n++] = (uint8_t) (type >> 8);
        p[n++] = (uint8_t) type;
        p[n++] = 0;
        p[n++] = DNS_CLASS_IN;
        return n;
}

static int dns_skip_name(const uint8_t *p, size_t len, size_t *pos) {
        for (unsigned labels = 0; labels < 128; labels++) {
                uint8_t l;

                if (*pos >= len)
                        return -EBADMSG;
                l = p[*pos];
                if ((l & 0xc0) == 0xc0) {
                        *pos += 2;
                        return *pos <= len ? 0 : -EBADMSG;
                }
                if (l & 0xc0)
                        return -EBADMSG;
                *pos += 1 + (size_t) l;
                if (l == 0)
                        return 0;
        }
        return -EBADMSG;
}

static uint16_t get16(const uint8_t *p) {
        return (uint16_t) (p[0] << 8 | p[1]);
}

int nw_dns_parse_answer(const uint8_t *p, size_t len, const uint8_t *question, size_t qlen, uint16_t type,
                            char **ret_address, uint32_t *ret_ttl) {
        size_t pos = 12;
        unsigned an;

        if (len < 12 || !(p[2] & 0x80) || (p[2] & 0x78) != 0)
                return -EBADMSG;
        if (p[2] & 0x02)
                return -EMSGSIZE; /* truncated: asked again over TCP */
        if ((p[3] & 0x0f) == 3)
                return -ENOENT;   /* NXDOMAIN */
        if ((p[3] & 0x0f) != 0)
                return -EIO;
        if (get16(p + 4) != 1 || len < 12 + qlen || strncasecmp((const char *) p + 12, (const char *) question, qlen - 4) ||
            memcmp(p + 12 + qlen - 4, question + qlen - 4, 4))
                return -EBADMSG;
        pos += qlen;
        an = get16(p + 6);
        for (unsigned i = 0; i < an; i++) {
                uint16_t t, cls, rdlen;
                uint32_t ttl;

                if (dns_skip_name(p, len, &pos) < 0 || pos + 10 > len)
                        return -EBADMSG;
                t = get16(p + pos);
                cls = get16(p + pos + 2);
                ttl = (uint32_t) get16(p + pos + 4) << 16 | get16(p + pos + 6);
                rdlen = get16(p + pos + 8);
                pos += 10;
                if (pos + rdlen > len)
                        return -EBADMSG;
                if (t == type && cls == DNS_CLASS_IN &&
                    rdlen == (type == DNS_TYPE_A ? sizeof(struct in_addr) : sizeof(struct in6_addr))) {
                        char buf[INET6_ADDRSTRLEN];

                        if (!inet_ntop(type == DNS_TYPE_A ? AF_INET : AF_INET6, p + pos, buf, sizeof(buf)))
                                return -EBADMSG;
                        *ret_address = strdup(buf);
                        if (!*ret_address)
                                return -ENOMEM;
                        *ret_ttl = ttl & 0x7fffffffU;
                        return 0;
                }
                pos += rdlen;
        }
        return -ENOENT;
}

/* Waits until fd is ready for `events` or the deadline, telling progress at least every
 * NW_RESOLVE_PROGRESS_USEC. 0: ready; -ETIMEDOUT. */
static int dns_wait(NwResolver *r, int fd, short events, uint64_t deadline) {
        for (;;) {
                struct pollfd pfd = { .fd = fd, .events = events };
                uint64_t now = now_usec();
                int k;

                if (now >= deadline)
                        return -ETIMEDOUT;
                if (r->progress)
                        r->progress(r->progress_userdata);
                k = poll(&pfd, 1, (int) ((MIN(deadline - now, NW_RESOLVE_PROGRESS_USEC) + 999) / 1000));
                if (k < 0 && errno != EINTR)
                        return -errno;
                if (k > 0)
                        return 0;
        }
}

/* A socket of the server's family connected to it, without blocking past the deadline. */
static int dns_connect(NwResolver *r, size_t server, int type, uint64_t deadline) {
        const struct sockaddr_storage *ss = &r->servers[server];
        _cleanup_close_ int fd = -EBADF;
        socklen_t len = sizeof(int);
        int k, error = 0;

        fd = socket(ss->ss_family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) ss, r->server_len[server]) >= 0)
                return TAKE_FD(fd);
        if (errno != EINPROGRESS)
                return -errno;
        k = dns_wait(r, fd, POLLOUT, deadline);
        if (k < 0)
                return k;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                return -errno;
        if (error != 0)
                return -error;
        return TAKE_FD(fd);
}

/* Exactly n bytes from a stream, before the deadline; -ECONNRESET if it ends first. */
static int dns_recv_all(NwResolver *r, int fd, uint8_t *buf, size_t n, uint64_t deadline) {
        for (size_t got = 0; got < n;) {
                ssize_t k = recv(fd, buf + got, n - got, 0);

                if (k == 0)
                        return -ECONNRESET;
                if (k < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                return -errno;
                        k = dns_wait(r, fd, POLLIN, deadline);
                        if (k < 0)
                                return (int) k;
                        continue;
                }
                got += (size_t) k;
        }
        return 0;
}

/* The same question over TCP (RFC 7766), after a truncated UDP answer: one
 * connection to the same server, one query, a reply of at most
 * DNS_TCP_PACKET_MAX bytes read into a buffer of its announced size, within
 * what is left of the same deadline, judged by the same parser. */
static int dns_query_tcp(NwResolver *r, size_t server, const uint8_t *query, size_t len, uint16_t type,
                         uint64_t deadline, char **ret_address, uint32_t *ret_ttl) {
        uint8_t msg[2 + 12 + DNS_NAME_MAX + 2 + 4], prefix[2];
        _cleanup_free_ uint8_t *reply = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t sent = 0, n;
        int k;

        assert(len + 2 <= sizeof(msg));
        fd = dns_connect(r, server, SOCK_STREAM, deadline);
        if (fd < 0)
                return fd;
        msg[0] = (uint8_t) (len >> 8);
        msg[1] = (uint8_t) len;
        memcpy(msg + 2, query, len);
        while (sent < len + 2) {
                ssize_t w = send(fd, msg + sent, len + 2 - sent, MSG_NOSIGNAL);

                if (w < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                return -errno;
                        k = dns_wait(r, fd, POLLOUT, deadline);
                        if (k < 0)
                                return k;
                        continue;
                }
                sent += (size_t) w;
        }
        r->queries++;
        k = dns_recv_all(r, fd, prefix, sizeof(prefix), deadline);
        if (k < 0)
                return k;
        n = get16(prefix);
        if (n < 12)
                return -EBADMSG;
        reply = malloc(n);
        if (!reply)
                return -ENOMEM;
        k = dns_recv_all(r, fd, reply, n, deadline);
        if (k < 0)
                return k;
        if (get16(reply) != get16(query))
                return -EBADMSG; /* one query on this connection: any other answer is wrong */
        k = nw_dns_parse_answer(reply, n, query + 12, len - 12, type, ret_address, ret_ttl);
        return k == -EMSGSIZE ? -EBADMSG : k; /* truncated over TCP: nothing more to ask */
}

static int dns_query(NwResolver *r, size_t server, const char *name, uint16_t type, uint64_t timeout_usec,
                     char **ret_address, uint32_t *ret_ttl) {
        uint8_t query[12 + DNS_NAME_MAX + 2 + 4], reply[DNS_PACKET_MAX];
        _cleanup_close_ int fd = -EBADF;
        uint64_t deadline = now_usec() + timeout_usec;
        uint16_t id;
        size_t qlen;

        if (getrandom(&id, sizeof(id), 0) != sizeof(id))
                return -errno;
        memset(query, 0, 12);
        query[0] = (uint8_t) (id >> 8);
        query[1] = (uint8_t) id;
        query[2] = 0x01; /* RD: the server recurses */
        query[5] = 1;    /* QDCOUNT */
        qlen = nw_dns_question(query + 12, name, type);

        /* Connected: the kernel drops datagrams from anyone but the server. */
        fd = dns_connect(r, server, SOCK_DGRAM, deadline);
        if (fd < 0)
                return fd;
        if (send(fd, query, 12 + qlen, 0) < 0)
                return -errno;
        r->queries++;

        for (;;) {
                ssize_t n;
                int k;

                k = dns_wait(r, fd, POLLIN, deadline);
                if (k < 0)
                        return k;
                n = recv(fd, reply, sizeof(reply), 0);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                continue;
                        return -errno; /* e.g. ECONNREFUSED: nothing listens there */
                }
                if (n < 12 || get16(reply) != id)
                        continue; /* not the answer to this query */
                k = nw_dns_parse_answer(reply, (size_t) n, query + 12, qlen, type, ret_address, ret_ttl);
                if (k == -EMSGSIZE)
                        return dns_query_tcp(r, server, query, 12 + qlen, type, deadline, ret_address, ret_ttl);
                return k;
        }
}

static CacheEntry *cache_find(NwResolver *r, const char *name, uint64_t now) {
        for (size_t i = 0; i < NW_RESOLVE_CACHE_SIZE; i++) {
                CacheEntry *e = &r->cache[i];

                if (!e->name)
                        continue;
                if (e->expires_usec <= now) {
                        cache_entry_clear(e);
                        continue;
                }
                if (strcasecmp(e->name, name) == 0)
                        return e;
        }
        return NULL;
}

static void cache_put(NwResolver *r, const char *name, const char *address, uint32_t ttl, uint64_t now) {
        CacheEntry *slot = &r->cache[0];
        char *n, *a;

        if (ttl == 0)
                return;
        for (size_t i = 0; i < NW_RESOLVE_CACHE_SIZE; i++) {
                CacheEntry *e = &r->cache[i];
                if (!e->name || strcasecmp(e->name, name) == 0) {
                        slot = e;
                        break;
                }
                if (e->expires_usec < slot->expires_usec)
                        slot = e;
        }
        n = strdup(name);
        a = strdup(address);
        if (!n || !a) {
                free(n);
                free(a);
                return; /* not cached: asked again next time */
        }
        cache_entry_clear(slot);
        *slot = (CacheEntry) { .name = n, .address = a,
                               .expires_usec = now + MIN((uint64_t) ttl * 1000000ULL, NW_RESOLVE_TTL_MAX_USEC) };
}

int nw_resolver_resolve(NwResolver *r, const char *name, uint64_t timeout_usec, char **ret_address) {
        static const uint16_t types[] = { DNS_TYPE_A, DNS_TYPE_AAAA };
        uint64_t now = now_usec();
        CacheEntry *e;
        int k = -EHOSTUNREACH;
        char *a;

        assert(r);
        assert(name);
        assert(ret_address);

        if (is_numeric(name)) {
                a = strdup(name);
                goto found;
        }
        if (!is_host_name(name))
                return -EINVAL;
        for (size_t i = 0; i < r->n_hosts; i++)
                if (strcasecmp(r->hosts[i].name, name) == 0) {
                        a = strdup(r->hosts[i].address);
                        goto found;
                }
        e = cache_find(r, name, now);
        if (e) {
                a = strdup(e->address);
                goto found;
        }

        for (size_t s = 0; s < r->n_servers; s++) {
                for (size_t t = 0; t < ELEMENTSOF(types); t++) {
                        uint32_t ttl = 0;

                        a = NULL;
                        k = dns_query(r, s, name, types[t], MIN(timeout_usec, NW_RESOLVE_QUERY_TIMEOUT_USEC), &a, &ttl);
                        if (k >= 0) {
                                cache_put(r, name, a, ttl, now_usec());
                                *ret_address = a;
                                return 0;
                        }
                        if (k != -ENOENT)
                                break;   /* this server failed: the next one */
                }
                if (k == -ENOENT)
                        return -ENOENT;  /* an answer: the name has no address (not cached) */
        }
        return k;

found:
        if (!a)
                return -ENOMEM;
        *ret_address = a;
        return 0;
}
