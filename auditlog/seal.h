/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Hashing and sealing primitives (OpenSSL 3 EVP):
 *   chain hash   h_i = SHA-256(h_{i-1} || record bytes)
 *   epoch keys   K_{e+1} = HMAC-SHA256(K_e, "callhome-audit evolve"), K_e erased after the seal of e
 *   MAC key      M_e = HMAC-SHA256(K_e, "callhome-audit mac")
 *   record MAC   HMAC-SHA256(M_e, "CHMAC1" || h_i)
 * The customer keeps K_0 (printed once by `callhome-audit setup-keys`) and can
 * derive every later key; the device holds only the current one, so a
 * compromise cannot forge records of an epoch that was sealed before it. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log-format.h"

#define AUDIT_KEY_SIZE 32
#define AUDIT_KEY_FILE "seal.key"
#define AUDIT_KEY_FILE_SIZE 64
/* Far enough for decades of short epochs, bounded so a forged epoch number cannot make a verifier spin. */
#define AUDIT_EPOCH_MAX (UINT64_C(1) << 26)

/* SHA-256 of up to three parts, with one reused context per thread. */
int audit_sha256(const void *a, size_t al, const void *b, size_t bl, const void *c, size_t cl,
                 uint8_t ret[AUDIT_HASH_SIZE]);
/* Frees the calling thread's digest context (threads other than the main one call it before they exit). */
void audit_crypto_thread_cleanup(void);
/* h_i from h_{i-1} and the record's hashed bytes. */
int audit_chain_hash(const uint8_t prev[AUDIT_HASH_SIZE], const uint8_t *data, size_t len,
                     uint8_t ret[AUDIT_HASH_SIZE]);

typedef struct AuditSealKey AuditSealKey;

/* A key for `epoch`: copies the 32 key bytes (the caller wipes its copy). */
int audit_seal_key_new(uint64_t epoch, const uint8_t key[AUDIT_KEY_SIZE], AuditSealKey **ret);
/* An independent copy (its own MAC context), e.g. for another thread; free it with audit_seal_key_free(). */
int audit_seal_key_dup(const AuditSealKey *k, AuditSealKey **ret);
AuditSealKey *audit_seal_key_free(AuditSealKey *k);
uint64_t audit_seal_key_epoch(const AuditSealKey *k);
/* Copies out the raw key (for storing it). */
void audit_seal_key_raw(const AuditSealKey *k, uint8_t ret[AUDIT_KEY_SIZE]);
/* Moves the key one epoch on; the old key and MAC key are wiped from memory. */
int audit_seal_key_evolve(AuditSealKey *k);
/* Evolves until `epoch` (≥ current, at most AUDIT_EPOCH_MAX). */
int audit_seal_key_evolve_to(AuditSealKey *k, uint64_t epoch);
int audit_seal_key_mac(AuditSealKey *k, const uint8_t hash[AUDIT_HASH_SIZE], uint8_t ret[AUDIT_MAC_SIZE]);

static inline void audit_seal_key_freep(AuditSealKey **k) {
        if (*k)
                audit_seal_key_free(*k);
}

/* The key file: "CHSEALK1", le64 epoch, key, zeros, CRC-32C; 64 bytes, one
 * write inside one sector, overwritten in place so the old key's bytes are
 * replaced on the medium, not left behind in a freed block as a rename would. */
int audit_key_file_encode(const AuditSealKey *k, uint8_t ret[AUDIT_KEY_FILE_SIZE]);
int audit_key_file_decode(const uint8_t *buf, size_t len, AuditSealKey **ret);
/* Reads / overwrites the key file open at fd (pread/pwrite at 0 + fdatasync). */
int audit_key_file_read(int fd, AuditSealKey **ret);
int audit_key_file_write(int fd, const AuditSealKey *k);

/* Hex of a 32-byte key and back (accepts upper/lower case, '-' and ':' separators). */
void audit_hex(const uint8_t *data, size_t len, char *ret /* 2*len+1 */);
int audit_unhex(const char *s, uint8_t *ret, size_t len);
