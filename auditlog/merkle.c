/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "merkle.h"
#include "seal.h"

int merkle_leaf_hash(const uint8_t *data, size_t len, uint8_t ret[AUDIT_HASH_SIZE]) {
        static const uint8_t zero = 0x00;
        return audit_sha256(&zero, 1, data, len, NULL, 0, ret);
}

int merkle_node_hash(const uint8_t l[AUDIT_HASH_SIZE], const uint8_t r[AUDIT_HASH_SIZE], uint8_t ret[AUDIT_HASH_SIZE]) {
        static const uint8_t one = 0x01;
        return audit_sha256(&one, 1, l, AUDIT_HASH_SIZE, r, AUDIT_HASH_SIZE, ret);
}

void merkle_frontier_init(MerkleFrontier *f) {
        memset(f, 0, sizeof(*f));
}

int merkle_frontier_set(MerkleFrontier *f, uint64_t size, const uint8_t (*hashes)[AUDIT_HASH_SIZE], unsigned n) {
        if (n > AUDIT_FRONTIER_MAX || (unsigned) __builtin_popcountll(size) != n)
                return -EINVAL;
        f->size = size;
        f->n = n;
        for (unsigned i = 0; i < n; i++)
                memcpy(f->hash[i], hashes[i], AUDIT_HASH_SIZE);
        return 0;
}

int merkle_frontier_append(MerkleFrontier *f, const uint8_t leaf_hash[AUDIT_HASH_SIZE]) {
        uint8_t cur[AUDIT_HASH_SIZE];
        uint64_t s = f->size;

        if (s == UINT64_MAX)
                return -EOVERFLOW;
        memcpy(cur, leaf_hash, AUDIT_HASH_SIZE);
        /* Like a binary counter: each trailing 1 bit of the old size merges a subtree. */
        while (s & 1) {
                int r = merkle_node_hash(f->hash[f->n - 1], cur, cur);
                if (r < 0)
                        return r;
                f->n--;
                s >>= 1;
        }
        memcpy(f->hash[f->n++], cur, AUDIT_HASH_SIZE);
        f->size++;
        return 0;
}

int merkle_frontier_root(const MerkleFrontier *f, uint8_t ret[AUDIT_HASH_SIZE]) {
        uint8_t cur[AUDIT_HASH_SIZE];

        if (f->n == 0)
                return audit_sha256(NULL, 0, NULL, 0, NULL, 0, ret);
        memcpy(cur, f->hash[f->n - 1], AUDIT_HASH_SIZE);
        for (unsigned i = f->n - 1; i > 0; i--) {
                int r = merkle_node_hash(f->hash[i - 1], cur, cur);
                if (r < 0)
                        return r;
        }
        memcpy(ret, cur, AUDIT_HASH_SIZE);
        return 0;
}

static uint64_t largest_pow2_below(uint64_t n) {
        /* n ≥ 2: the largest power of two strictly less than n. */
        return UINT64_C(1) << (63 - __builtin_clzll(n - 1));
}

int merkle_range_hash(merkle_leaf_fn leaf, void *userdata, uint64_t begin, uint64_t end, uint8_t ret[AUDIT_HASH_SIZE]) {
        MerkleFrontier f;

        if (begin > end)
                return -EINVAL;
        if (begin == end)
                return audit_sha256(NULL, 0, NULL, 0, NULL, 0, ret);
        /* A frontier over the range gives MTH(D[begin:end]) without recursion. */
        merkle_frontier_init(&f);
        for (uint64_t i = begin; i < end; i++) {
                uint8_t h[AUDIT_HASH_SIZE];
                int r = leaf(i, h, userdata);
                if (r < 0)
                        return r;
                r = merkle_frontier_append(&f, h);
                if (r < 0)
                        return r;
        }
        return merkle_frontier_root(&f, ret);
}

void merkle_blocks_init(MerkleBlocks *b, unsigned shift) {
        *b = (MerkleBlocks) { .shift = shift };
        merkle_frontier_init(&b->open);
}

void merkle_blocks_done(MerkleBlocks *b) {
        free(b->root);
        merkle_blocks_init(b, b->shift);
}

static bool hash_known(const uint8_t h[AUDIT_HASH_SIZE]) {
        for (size_t i = 0; i < AUDIT_HASH_SIZE; i++)
                if (h[i])
                        return true;
        return false;
}

int merkle_blocks_extend(MerkleBlocks *b, merkle_leaf_fn leaf, void *userdata, uint64_t size) {
        uint64_t per = UINT64_C(1) << b->shift;

        for (uint64_t i = (b->n << b->shift) + b->open.size; i < size; i++) {
                uint8_t h[AUDIT_HASH_SIZE];
                int r = leaf(i, h, userdata);

                if (r == -ENODATA)
                        b->open_unknown = true;
                else if (r < 0)
                        return r;
                if (!b->open_unknown) {
                        r = merkle_frontier_append(&b->open, h);
                        if (r < 0)
                                return r;
                } else
                        b->open.size++; /* only counted: an unknown block's root is never computed */
                if (b->open.size < per)
                        continue;
                if (b->n == b->allocated) {
                        uint64_t na = b->allocated ? b->allocated * 2 : 64;
                        void *nr = reallocarray(b->root, na, AUDIT_HASH_SIZE);
                        if (!nr)
                                return -ENOMEM;
                        b->root = nr;
                        b->allocated = na;
                }
                memset(b->root[b->n], 0, AUDIT_HASH_SIZE);
                if (!b->open_unknown) {
                        r = merkle_frontier_root(&b->open, b->root[b->n]);
                        if (r < 0)
                                return r;
                }
                b->n++;
                merkle_frontier_init(&b->open);
                b->open_unknown = false;
        }
        return 0;
}

/* MTH of [begin, end), a range of the RFC 9162 decomposition: begin is a multiple
 * of the largest power of two below end - begin, so whole blocks come from the cache. */
/* [begin, end) is one of the base frontier's subtrees: its hash. */
static bool base_subtree(const MerkleBlocks *b, uint64_t begin, uint64_t end, uint8_t ret[AUDIT_HASH_SIZE]) {
        uint64_t pos = 0, rest = b->base.size;

        for (unsigned i = 0; i < b->base.n && pos < end; i++) {
                uint64_t width = UINT64_C(1) << (63 - __builtin_clzll(rest));

                if (pos == begin && pos + width == end) {
                        memcpy(ret, b->base.hash[i], AUDIT_HASH_SIZE);
                        return true;
                }
                pos += width;
                rest -= width;
        }
        return false;
}

static int subtree_hash(const MerkleBlocks *b, merkle_leaf_fn leaf, void *userdata, uint64_t begin, uint64_t end,
                        uint8_t ret[AUDIT_HASH_SIZE]) {
        uint8_t l[AUDIT_HASH_SIZE], r[AUDIT_HASH_SIZE];
        uint64_t n = end - begin, k;
        int e;

        if (b && end <= b->base.size && base_subtree(b, begin, end, ret))
                return 0;

        if (!b || n <= (UINT64_C(1) << b->shift)) {
                if (b && n == (UINT64_C(1) << b->shift) && (begin >> b->shift) < b->n &&
                    (begin & (n - 1)) == 0 && hash_known(b->root[begin >> b->shift])) {
                        memcpy(ret, b->root[begin >> b->shift], AUDIT_HASH_SIZE);
                        return 0;
                }
                /* A range reaching into the base is split down to the base's subtrees. */
                if (!b || begin >= b->base.size || n == 1)
                        return merkle_range_hash(leaf, userdata, begin, end, ret);
        }
        k = largest_pow2_below(n);
        e = subtree_hash(b, leaf, userdata, begin, begin + k, l);
        if (e < 0)
                return e;
        e = subtree_hash(b, leaf, userdata, begin + k, end, r);
        if (e < 0)
                return e;
        return merkle_node_hash(l, r, ret);
}

static int subproof(const MerkleBlocks *blocks, merkle_leaf_fn leaf, void *userdata, uint64_t m, uint64_t begin,
                    uint64_t end, int b, uint8_t ret[][AUDIT_HASH_SIZE], unsigned *count) {
        uint64_t n = end - begin, k;
        int r;

        if (m == n) {
                if (b)
                        return 0;
                if (*count >= AUDIT_FRONTIER_MAX)
                        return -E2BIG;
                return subtree_hash(blocks, leaf, userdata, begin, end, ret[(*count)++]);
        }
        k = largest_pow2_below(n);
        if (m <= k) {
                r = subproof(blocks, leaf, userdata, m, begin, begin + k, b, ret, count);
                if (r < 0)
                        return r;
                if (*count >= AUDIT_FRONTIER_MAX)
                        return -E2BIG;
                return subtree_hash(blocks, leaf, userdata, begin + k, end, ret[(*count)++]);
        }
        r = subproof(blocks, leaf, userdata, m - k, begin + k, end, 0, ret, count);
        if (r < 0)
                return r;
        if (*count >= AUDIT_FRONTIER_MAX)
                return -E2BIG;
        return subtree_hash(blocks, leaf, userdata, begin, begin + k, ret[(*count)++]);
}

int merkle_consistency_proof(const MerkleBlocks *blocks, merkle_leaf_fn leaf, void *userdata, uint64_t m, uint64_t n,
                             uint8_t ret[][AUDIT_HASH_SIZE], unsigned *ret_count) {
        unsigned count = 0;
        int r;

        if (m > n)
                return -EINVAL;
        if (m == 0 || m == n) {
                *ret_count = 0;
                return 0;
        }
        r = subproof(blocks, leaf, userdata, m, 0, n, 1, ret, &count);
        if (r < 0)
                return r;
        *ret_count = count;
        return 0;
}

int merkle_verify_consistency(uint64_t m, uint64_t n, const uint8_t old_root[AUDIT_HASH_SIZE],
                              const uint8_t new_root[AUDIT_HASH_SIZE], const uint8_t (*proof)[AUDIT_HASH_SIZE],
                              unsigned count) {
        uint8_t fr[AUDIT_HASH_SIZE], sr[AUDIT_HASH_SIZE];
        uint64_t fn, sn;
        unsigned i = 0;
        int r;

        if (m > n)
                return -EBADMSG;
        if (m == n)
                return count == 0 && memcmp(old_root, new_root, AUDIT_HASH_SIZE) == 0 ? 0 : -EBADMSG;
        if (m == 0)
                return count == 0 ? 0 : -EBADMSG;
        if (count == 0)
                return -EBADMSG;
        /* RFC 9162 §2.1.4.2 */
        if ((m & (m - 1)) == 0) {
                /* old size a power of two: prepend old root to the path */
                memcpy(fr, old_root, AUDIT_HASH_SIZE);
                memcpy(sr, old_root, AUDIT_HASH_SIZE);
        } else {
                memcpy(fr, proof[0], AUDIT_HASH_SIZE);
                memcpy(sr, proof[0], AUDIT_HASH_SIZE);
                i = 1;
        }
        fn = m - 1;
        sn = n - 1;
        while (fn & 1) {
                fn >>= 1;
                sn >>= 1;
        }
        for (; i < count; i++) {
                if (sn == 0)
                        return -EBADMSG;
                if ((fn & 1) || fn == sn) {
                        r = merkle_node_hash(proof[i], fr, fr);
                        if (r < 0)
                                return r;
                        r = merkle_node_hash(proof[i], sr, sr);
                        if (r < 0)
                                return r;
                        if (!(fn & 1))
                                while (fn != 0 && !(fn & 1)) {
                                        fn >>= 1;
                                        sn >>= 1;
                                }
                } else {
                        r = merkle_node_hash(sr, proof[i], sr);
                        if (r < 0)
                                return r;
                }
                fn >>= 1;
                sn >>= 1;
        }
        if (sn != 0)
                return -EBADMSG;
        return memcmp(fr, old_root, AUDIT_HASH_SIZE) == 0 && memcmp(sr, new_root, AUDIT_HASH_SIZE) == 0 ? 0 : -EBADMSG;
}
