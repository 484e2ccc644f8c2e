/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Small files of the state directory: keys and the verifier key. */

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"

#define AUDIT_DEFAULT_STATE_DIR "/var/lib/callhome/audit"

/* Reads a regular file of at most `max` bytes (NUL-terminated copy). */
/* The checkpoint verifier key from "checkpoint.pub". */
int audit_load_vkey(int dir_fd, CheckpointVerifier *ret, char **ret_text);
/* The raw Ed25519 private key from "checkpoint.key" (32 bytes, wiped by the caller). */
int audit_load_checkpoint_priv(int dir_fd, uint8_t ret[32]);
/* A witness's verifier key given on the command line: the text, or a file holding it.
 * -EBADMSG when it is not one. */
int audit_load_witness_key(const char *arg, CheckpointVerifier *ret);
