/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: consistency proofs (merkle.c, RFC 9162 §2.1.4), as a
 * witness record or a `verify --checkpoint` brings them from outside.
 *
 * Input: m (8 bytes, big-endian), n (8), old root (32), new root (32), then
 * proof hashes (32 each, at most 64).
 *  1. merkle_verify_consistency() on exactly that, whatever the sizes: no crash.
 *  2. The same sizes taken modulo 1001 over a real tree (leaf i = the leaf hash
 *     of i and the input's first byte): the proof merkle_consistency_proof()
 *     makes, computed once from the leaves and once from cached block roots,
 *     must be the same and must verify; changed where the input's old root
 *     says (a byte of a proof hash or of a root, or the proof cut short), it
 *     must not. */
/* The assertions are the target's checks (and some make calls): never compiled out. */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "merkle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEAD (8 + 8 + 2 * AUDIT_HASH_SIZE)
#define PROOF_MAX 64U
#define LEAVES_MAX 1000U

static uint64_t be64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
                v = v << 8 | p[i];
        return v;
}

static int leaf(uint64_t index, uint8_t ret[AUDIT_HASH_SIZE], void *userdata) {
        uint8_t d[9];

        for (int i = 0; i < 8; i++)
                d[i] = (uint8_t) (index >> (56 - 8 * i));
        d[8] = *(const uint8_t *) userdata;
        return merkle_leaf_hash(d, sizeof(d), ret);
}

static void real_tree(const uint8_t *data, uint64_t m, uint64_t n) {
        uint8_t proof[PROOF_MAX][AUDIT_HASH_SIZE], proof2[PROOF_MAX][AUDIT_HASH_SIZE], old_root[AUDIT_HASH_SIZE],
                new_root[AUDIT_HASH_SIZE], salt = data[0];
        const uint8_t *how = data + 16; /* the input's old root: which change to make */
        unsigned count, count2;
        MerkleBlocks b;

        assert(merkle_range_hash(leaf, &salt, 0, m, old_root) == 0);
        assert(merkle_range_hash(leaf, &salt, 0, n, new_root) == 0);
        assert(merkle_consistency_proof(NULL, leaf, &salt, m, n, proof, &count) == 0);
        assert(count <= PROOF_MAX);
        merkle_blocks_init(&b, 1U + how[0] % 4U);
        assert(merkle_blocks_extend(&b, leaf, &salt, n) == 0);
        assert(merkle_consistency_proof(&b, leaf, &salt, m, n, proof2, &count2) == 0);
        merkle_blocks_done(&b);
        assert(count2 == count && memcmp(proof, proof2, count * AUDIT_HASH_SIZE) == 0);
        assert(merkle_verify_consistency(m, n, old_root, new_root, (const uint8_t(*)[AUDIT_HASH_SIZE]) proof, count) == 0);

        if (m == 0)
                return; /* the empty tree is consistent with every tree: nothing to falsify */
        switch (how[1] % 4) {
        case 0:
                if (count == 0)
                        return;
                proof[how[2] % count][how[3] % AUDIT_HASH_SIZE] ^= (uint8_t) (how[4] | 1);
                break;
        case 1:
                old_root[how[3] % AUDIT_HASH_SIZE] ^= (uint8_t) (how[4] | 1);
                break;
        case 2:
                new_root[how[3] % AUDIT_HASH_SIZE] ^= (uint8_t) (how[4] | 1);
                break;
        case 3:
                if (count == 0)
                        return;
                count = how[2] % count;
                break;
        }
        assert(merkle_verify_consistency(m, n, old_root, new_root, (const uint8_t(*)[AUDIT_HASH_SIZE]) proof, count) < 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t proof[PROOF_MAX][AUDIT_HASH_SIZE];
        uint64_t m, n;
        unsigned count;

        if (size < HEAD)
                return 0;
        count = (unsigned) ((size - HEAD) / AUDIT_HASH_SIZE);
        if (count > PROOF_MAX)
                return 0;
        memcpy(proof, data + HEAD, count * AUDIT_HASH_SIZE);
        m = be64(data);
        n = be64(data + 8);
        (void) merkle_verify_consistency(m, n, data + 16, data + 16 + AUDIT_HASH_SIZE,
                                         (const uint8_t(*)[AUDIT_HASH_SIZE]) proof, count);

        n %= LEAVES_MAX + 1;
        m %= n + 1;
        real_tree(data, m, n);
        return 0;
}
