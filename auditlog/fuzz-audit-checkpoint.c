/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: what the audit CLI and the scan read from outside as a
 * checkpoint: a signed note (`verify --checkpoint=FILE`, a witness record's
 * note), its signature by the log's key, a witness's tlog-cosignature/v1 line
 * (the Communication Server's), and the verifier key texts of the log
 * (--checkpoint-key) and of a witness (--witness-key). Input: the text.
 *
 * Checked, not just run: a note accepted under the log's key round-trips
 * through checkpoint_sign(); a parsed verifier key prints back to its text. */
/* The assertions are the target's checks (and some make calls): never compiled out. */
#undef NDEBUG
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "fuzz-keys.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool have_keys;
static CheckpointVerifier log_key, witness_key;

static void setup(void) {
        uint8_t pub[32];
        char text[CHECKPOINT_NOTE_MAX];

        if (have_keys)
                return;
        if (checkpoint_public_key(fuzz_log_priv, pub) < 0 || checkpoint_vkey_format(FUZZ_LOG_KEY_NAME, pub, text, sizeof(text)) < 0 ||
            checkpoint_vkey_parse(text, strlen(text), &log_key) < 0 ||
            checkpoint_witness_vkey_parse(FUZZ_WITNESS_VKEY, strlen(FUZZ_WITNESS_VKEY), &witness_key) < 0)
                abort();
        have_keys = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *) data;
        char note[CHECKPOINT_NOTE_MAX], again[CHECKPOINT_NOTE_MAX];
        CheckpointVerifier v;
        Checkpoint c, c2;
        uint64_t t;

        if (size > 2 * CHECKPOINT_NOTE_MAX)
                return 0;
        setup();

        if (checkpoint_parse_verify(text, size, &log_key, &c) == 0) {
                /* Signed by the log's key: its body re-signed must parse to the same checkpoint. */
                assert(checkpoint_name_valid(c.origin));
                assert(checkpoint_sign(fuzz_log_priv, FUZZ_LOG_KEY_NAME, &c, note, sizeof(note)) == 0);
                assert(checkpoint_parse_verify(note, strlen(note), &log_key, &c2) == 0);
                assert(memcmp(&c, &c2, sizeof(c)) == 0);
        }
        (void) checkpoint_parse_verify(text, size, NULL, NULL);
        (void) checkpoint_cosignature_verify(text, size, &witness_key, &t);
        (void) checkpoint_cosignature_verify(text, size, &log_key, &t);

        if (checkpoint_vkey_parse(text, size, &v) == 0) {
                /* A log verifier key: prints back to a key that parses to the same. */
                CheckpointVerifier v2;
                assert(checkpoint_name_valid(v.name));
                assert(checkpoint_vkey_format(v.name, v.pub, again, sizeof(again)) == 0);
                assert(checkpoint_vkey_parse(again, strlen(again), &v2) == 0);
                assert(streq(v.name, v2.name) && memcmp(v.key_id, v2.key_id, sizeof(v.key_id)) == 0 &&
                       memcmp(v.pub, v2.pub, sizeof(v.pub)) == 0);
        }
        (void) checkpoint_witness_vkey_parse(text, size, &v);
        return 0;
}
