/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the resolver without the network: numeric names, the hosts
 * text, name servers from resolv.conf text and DNS=, names refused, and the
 * DNS stub's reply parser on good, truncated, forged and looping answers. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nw-resolve.h"

static int failures = 0;

#define CHECK(cond)                                                                        \
        do {                                                                               \
                if (!(cond)) {                                                             \
                        printf("not ok - %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
                        failures++;                                                        \
                }                                                                          \
        } while (0)

static const char HOSTS[] =
        "# comment\n"
        "127.0.0.1\tlocalhost\n"
        "::1 ip6-localhost ip6-loopback\n"
        "192.0.2.7 commserver.test Alias.Test # trailing comment\n"
        "192.0.2.8 commserver.test\n"  /* the first line wins */
        "not-an-address foo.test\n"
        "192.0.2.9 bad..name good.test\n";

/* Resolves name with no name server: "" when it is not known (-EHOSTUNREACH). */
static char *resolve(NwResolver *r, const char *name, int *ret) {
        char *a = NULL;

        *ret = nw_resolver_resolve(r, name, 1000, &a);
        return a;
}

static void test_hosts_and_numeric(void) {
        NwResolver *r = NULL;
        char *a;
        int k;

        CHECK(nw_resolver_new(HOSTS, NULL, NULL, &r) == 0);
        a = resolve(r, "commserver.test", &k);
        CHECK(k == 0 && a && streq(a, "192.0.2.7"));
        free(a);
        a = resolve(r, "ALIAS.test", &k);
        CHECK(k == 0 && a && streq(a, "192.0.2.7"));
        free(a);
        a = resolve(r, "ip6-loopback", &k);
        CHECK(k == 0 && a && streq(a, "::1"));
        free(a);
        a = resolve(r, "good.test", &k);
        CHECK(k == 0 && a && streq(a, "192.0.2.9"));
        free(a);
        a = resolve(r, "2001:db8::5", &k);
        CHECK(k == 0 && a && streq(a, "2001:db8::5"));
        free(a);
        a = resolve(r, "198.51.100.1", &k);
        CHECK(k == 0 && a && streq(a, "198.51.100.1"));
        free(a);
        /* not in the hosts text, no name server */
        a = resolve(r, "foo.test", &k);
        CHECK(k == -EHOSTUNREACH && !a);
        /* not host names */
        for (const char *const *n = (const char *const[]) { "", "a..b", ".a", "a b", "a/b", "x\n", NULL }; *n; n++) {
                a = resolve(r, *n, &k);
                CHECK(k == -EINVAL && !a);
        }
        CHECK(nw_resolver_queries(r) == 0);
        nw_resolver_free(r);
}

static void test_servers(void) {
        NwResolver *r = NULL;

        CHECK(nw_resolver_new(NULL, "search example\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\n"
                                    "nameserver ::1 # local\n", NULL, &r) == 0);
        nw_resolver_free(r);
        CHECK(nw_resolver_new(NULL, NULL, "127.0.0.1:5353 [::1]:53 192.0.2.1 192.0.2.2", &r) == 0);
        nw_resolver_free(r);
        r = NULL;
        for (const char *const *s = (const char *const[]) { "1.2.3.4:0", "1.2.3.4:65536", "[::1", "[::1]x",
                                                              "ns.example", "1.2.3.4:x", NULL }; *s; s++) {
                CHECK(nw_resolver_new(NULL, NULL, *s, &r) == -EINVAL);
                CHECK(!r);
        }
}

/* A reply to the question for "a.test" type A: header, question, then `answers`. */
static size_t reply(uint8_t *out, const uint8_t *q, size_t qlen, uint8_t flags2, uint8_t flags3, uint16_t ancount,
                    const uint8_t *answers, size_t alen) {
        const uint8_t h[12] = { 0x12, 0x34, flags2, flags3, 0, 1, (uint8_t) (ancount >> 8), (uint8_t) ancount, 0, 0, 0, 0 };

        memcpy(out, h, 12);
        memcpy(out + 12, q, qlen);
        if (alen > 0)
                memcpy(out + 12 + qlen, answers, alen);
        return 12 + qlen + alen;
}

static void test_parse_answer(void) {
        uint8_t q[DNS_NAME_MAX + 6], other[DNS_NAME_MAX + 6], buf[1024];
        size_t qlen = nw_dns_question(q, "a.test", DNS_TYPE_A), n;
        /* a CNAME (skipped), then the A record, both owned through compression pointers */
        static const uint8_t cname_then_a[] = {
                0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, 'b', 0xc0, 0x0e,
                0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 33,
        };
        static const uint8_t loop[] = { 0xc0, 0x0c + 12 + 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4 };
        static const uint8_t cut[] = { 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2 };
        static const uint8_t bad_len[] = { 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 5, 1, 2, 3, 4, 5 };
        static const uint8_t label_loop[] = { 0x3f };
        char *a = NULL;
        uint32_t ttl = 0;

        CHECK(qlen == 1 + 1 + 1 + 4 + 1 + 4);
        n = reply(buf, q, qlen, 0x81, 0x80, 2, cname_then_a, sizeof(cname_then_a));
        CHECK(nw_dns_parse_answer(buf, n, q, qlen, DNS_TYPE_A, &a, &ttl) == 0);
        CHECK(a && streq(a, "192.0.2.33") && ttl == 300);
        free(a);
        a = NULL;
        /* a reply about type A to a question about AAAA answers another question */
        nw_dns_question(other, "a.test", DNS_TYPE_AAAA);
        CHECK(nw_dns_parse_answer(buf, n, other, qlen, DNS_TYPE_AAAA, &a, &ttl) == -EBADMSG);
        /* asked AAAA, only an A in the answer: no address of that type */
        n = reply(buf, other, qlen, 0x81, 0x80, 2, cname_then_a, sizeof(cname_then_a));
        CHECK(nw_dns_parse_answer(buf, n, other, qlen, DNS_TYPE_AAAA, &a, &ttl) == -ENOENT);
        n = reply(buf, q, qlen, 0x81, 0x80, 2, cname_then_a, sizeof(cname_then_a));
        /* an answer to another question (a forged or stale reply) */
        CHECK(nw_dns_parse_answer(buf, n, (nw_dns_question(other, "b.test", DNS_TYPE_A), other), qlen, DNS_TYPE_A,
                                  &a, &ttl) == -EBADMSG);
        /* the same name in other letter case is the same question */
        nw_dns_question(other, "A.TEST", DNS_TYPE_A);
        CHECK(nw_dns_parse_answer(buf, n, other, qlen, DNS_TYPE_A, &a, &ttl) == 0);
        free(a);
        a = NULL;
        /* NXDOMAIN, SERVFAIL, truncated, a query rather than a reply */
        n = reply(buf, q, qlen, 0x81, 0x83, 0, NULL, 0);
        CHECK(nw_dns_parse_answer(buf, n, q, qlen, DNS_TYPE_A, &a, &ttl) == -ENOENT);
        n = reply(buf, q, qlen, 0x81, 0x82, 0, NULL, 0);
        CHECK(nw_dns_parse_answer(buf, n, q, qlen, DNS_TYPE_A, &a, &ttl) == -EIO);
        n = reply(buf, q, qlen, 0x83, 0x80, 0, NULL, 0);
        CHECK(nw_dns_parse_answer(buf, n, q, qlen, DNS_TYPE_A, &a, &ttl) == -EMSGSIZE);
        n = reply(buf, q, qlen, 0x01, 0x00, 0, NULL, 0);
        CHECK(nw_dns_parse_answer(buf, n, q, qlen, DNS_TYPE_A, &a, &ttl) == -EBADMSG);
        /* malformed answers: a pointer past the end, cut short, a wrong length, a label past the end */
        n = reply(buf, q, qlen, 0x81, 0x80, 1, loop, sizeof(loop));
        /* owner names are skipped, pointers never followed: no loop to fall into */
        CHECK(nw_dns_parse_answer(buf, n, q, qlen, DNS_TYPE_A, &a, &ttl) == 0 && a && streq(a, "1.2.3.4"));
        free(a);
        a = NULL;
        n = reply(buf, q, qlen, 0x81, 0x80, 1, cut, sizeof(cut));
        CHECK(nw_dns_parse_answer(buf, n, q, qlen, DNS_TYPE_A, &a, &ttl) == -EBADMSG);
        n = reply(buf, q, qlen, 0x81, 0x80, 1, bad_len, sizeof(bad_len));
        CHECK(nw_dns_parse_answer(buf, n, q, qlen, DNS_TYPE_A, &a, &ttl) == -ENOENT);
        n = reply(buf, q, qlen, 0x81, 0x80, 1, label_loop, sizeof(label_loop));
        CHECK(nw_dns_parse_answer(buf, n, q, qlen, DNS_TYPE_A, &a, &ttl) == -EBADMSG);
        /* shorter than a header, or than its question */
        CHECK(nw_dns_parse_answer(buf, 11, q, qlen, DNS_TYPE_A, &a, &ttl) == -EBADMSG);
        CHECK(nw_dns_parse_answer(buf, 12 + qlen - 1, q, qlen, DNS_TYPE_A, &a, &ttl) == -EBADMSG);
        CHECK(!a);
}

int main(void) {
        test_hosts_and_numeric();
        test_servers();
        test_parse_answer();
        if (failures == 0)
                printf("ok - resolver\n");
        return failures ? 1 : 0;
}
