/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Fixed keys of the audit fuzz targets, so that signatures are checked and
 * not only parsed: their seed corpora are signed with them. */
#include <stdint.h>

/* The log's checkpoint key (Ed25519 private key) and its name. */
static const uint8_t fuzz_log_priv[32] = { 'c', 'a', 'l', 'l', 'h', 'o', 'm', 'e', '-', 'f',
                                           'u', 'z', 'z', '-', 'l', 'o', 'g' };
#define FUZZ_LOG_KEY_NAME "fuzz.example/log"

/* A witness (C2SP tlog-cosignature/v1): private key 32 × 0x77; its verifier
 * key as the reference server's code (server/commserver/note.py) writes it. */
#define FUZZ_WITNESS_PRIV_BYTE 0x77
#define FUZZ_WITNESS_VKEY "fuzz.example/witness+4d50da4b+BMhTrQ8M0rYZrqks7sT9VqJNZJnVhM55JX5Fz9gTm2Cn"
