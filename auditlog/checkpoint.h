/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Checkpoints in the C2SP tlog-checkpoint format, signed as a C2SP signed
 * note with the log's own Ed25519 key:
 *
 *   <origin>\n<tree size>\n<base64 root hash>\n\n— <key name> <base64(key id || signature)>\n
 *
 * key id = first 4 bytes of SHA-256(<key name> || "\n" || 0x01 || public key).
 * The verifier key is written "<name>+<key id hex>+<base64(0x01 || public key)>". */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log-format.h"

#define CHECKPOINT_NAME_MAX 128
#define CHECKPOINT_NOTE_MAX 4096
#define CHECKPOINT_KEY_FILE "checkpoint.key"
#define CHECKPOINT_PUB_FILE "checkpoint.pub"

typedef struct CheckpointVerifier {
        char name[CHECKPOINT_NAME_MAX + 1];
        uint8_t key_id[4];
        uint8_t pub[32];
} CheckpointVerifier;

typedef struct Checkpoint {
        char origin[CHECKPOINT_NAME_MAX + 1];
        uint64_t size;
        uint8_t root[AUDIT_HASH_SIZE];
} Checkpoint;

bool checkpoint_name_valid(const char *name);
/* "<name>+<hex key id>+<base64>"; ret has room for CHECKPOINT_NOTE_MAX. */
int checkpoint_vkey_format(const char *name, const uint8_t pub[32], char *ret, size_t ret_size);
int checkpoint_vkey_parse(const char *s, size_t len, CheckpointVerifier *ret);

/* Signs a checkpoint with the raw 32-byte Ed25519 private key; writes the note (NUL-terminated). */
int checkpoint_sign(const uint8_t priv[32], const char *key_name, const Checkpoint *c, char *ret, size_t ret_size);
/* Parses a note and checks its signature by `v` (a signature line for v's
 * name and key id must be present and valid). -EBADMSG malformed, -EPERM bad or missing signature. */
int checkpoint_parse_verify(const char *note, size_t len, const CheckpointVerifier *v, Checkpoint *ret);
/* A witness's verifier key, "<name>+<key id hex>+<base64(0x04 || public key)>" (C2SP tlog-cosignature/v1). */
int checkpoint_witness_vkey_parse(const char *s, size_t len, CheckpointVerifier *ret);
/* Checks the note's tlog-cosignature/v1 line by witness w ("cosignature/v1\ntime T\n" || checkpoint
 * body, signed with Ed25519); ret_time gets T. -EPERM when there is none or it is not valid. */
int checkpoint_cosignature_verify(const char *note, size_t len, const CheckpointVerifier *w, uint64_t *ret_time);

/* The customer's acknowledgement of a checkpoint: tag = HMAC-SHA256(A, checkpoint body), with
 * A = HMAC-SHA256(K_0, "callhome-audit acknowledge") derived from the first sealing key, which
 * only the customer keeps: the device cannot make a tag that `verify --key` accepts. */
#define CHECKPOINT_ACK_SIZE 32
int checkpoint_ack_key(const uint8_t first_key[32], uint8_t ret[CHECKPOINT_ACK_SIZE]);
int checkpoint_ack_tag(const uint8_t ack_key[CHECKPOINT_ACK_SIZE], const Checkpoint *c, uint8_t ret[CHECKPOINT_ACK_SIZE]);

/* The public key of a raw private key. */
int checkpoint_public_key(const uint8_t priv[32], uint8_t ret[32]);
