/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Merkle tree hashing per RFC 9162 §2.1: leaf hash SHA-256(0x00 || d), node
 * hash SHA-256(0x01 || left || right), MTH of the empty tree SHA-256("").
 * The leaf data of record i is its chain hash h_i. The tree is kept as a
 * compact frontier (one hash per set bit of the size); proofs read leaf
 * hashes through a callback, so nothing but the frontier lives in memory. */

#include <stdbool.h>
#include <stdint.h>

#include "log-format.h"

typedef struct MerkleFrontier {
        uint64_t size;
        unsigned n;                                  /* popcount(size) */
        uint8_t hash[AUDIT_FRONTIER_MAX][AUDIT_HASH_SIZE]; /* largest subtree first */
} MerkleFrontier;

int merkle_leaf_hash(const uint8_t *data, size_t len, uint8_t ret[AUDIT_HASH_SIZE]);
int merkle_node_hash(const uint8_t l[AUDIT_HASH_SIZE], const uint8_t r[AUDIT_HASH_SIZE], uint8_t ret[AUDIT_HASH_SIZE]);

void merkle_frontier_init(MerkleFrontier *f);
/* Sets the frontier from a segment header (size = first_seq - 1). */
int merkle_frontier_set(MerkleFrontier *f, uint64_t size, const uint8_t (*hashes)[AUDIT_HASH_SIZE], unsigned n);
int merkle_frontier_append(MerkleFrontier *f, const uint8_t leaf_hash[AUDIT_HASH_SIZE]);
int merkle_frontier_root(const MerkleFrontier *f, uint8_t ret[AUDIT_HASH_SIZE]);

/* Leaf hash of leaf `index` (0-based). */
typedef int (*merkle_leaf_fn)(uint64_t index, uint8_t ret[AUDIT_HASH_SIZE], void *userdata);

/* MTH of leaves [begin, end). */
int merkle_range_hash(merkle_leaf_fn leaf, void *userdata, uint64_t begin, uint64_t end, uint8_t ret[AUDIT_HASH_SIZE]);

/* The roots of the complete, aligned blocks of 2^shift leaves, so that a proof
 * reads at most a few blocks of leaves and combines roots for the rest,
 * instead of reading every leaf of the tree: O(n / 2^shift + 2^shift log n)
 * rather than O(n). Costs 32 bytes per block; grows only when extended. */
typedef struct MerkleBlocks {
        unsigned shift;
        uint8_t (*root)[AUDIT_HASH_SIZE]; /* all zero: a leaf of that block could not be read */
        uint64_t n, allocated;            /* complete blocks */
        MerkleFrontier open;              /* the leaves of the next block so far */
        bool open_unknown;
        /* Subtrees known without their leaves: the frontier over the leaves
         * removed with old segments (size 0: none). A proof from a size at or
         * after base.size needs no leaf before it. */
        MerkleFrontier base;
} MerkleBlocks;

#define MERKLE_BLOCK_SHIFT_DEFAULT 8U

void merkle_blocks_init(MerkleBlocks *b, unsigned shift);
void merkle_blocks_done(MerkleBlocks *b);
/* Takes in leaves [cached so far, size); a leaf the callback says is gone
 * (-ENODATA) leaves its block unknown, any other error stops. */
int merkle_blocks_extend(MerkleBlocks *b, merkle_leaf_fn leaf, void *userdata, uint64_t size);

/* Consistency proof between sizes m ≤ n (RFC 9162 §2.1.4.1); ret has room for 64
 * hashes. blocks (may be NULL) must cover the leaves up to n. */
int merkle_consistency_proof(const MerkleBlocks *blocks, merkle_leaf_fn leaf, void *userdata, uint64_t m, uint64_t n,
                             uint8_t ret[][AUDIT_HASH_SIZE], unsigned *ret_count);
/* Checks a consistency proof (RFC 9162 §2.1.4.2): 0 if valid, -EBADMSG if not. */
int merkle_verify_consistency(uint64_t m, uint64_t n, const uint8_t old_root[AUDIT_HASH_SIZE],
                              const uint8_t new_root[AUDIT_HASH_SIZE], const uint8_t (*proof)[AUDIT_HASH_SIZE],
                              unsigned count);
