/* SPDX-License-Identifier: Apache-2.0 */
#include <assert.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <string.h>
#include <sys/stat.h>

#include "audit-files.h"
#include "fileio.h"
#include "macro.h"

int audit_load_vkey(int dir_fd, CheckpointVerifier *ret, char **ret_text) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r;

        r = read_small_file_at(dir_fd, CHECKPOINT_PUB_FILE, 1024, &text, &len);
        if (r < 0)
                return r;
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
                text[--len] = '\0';
        r = checkpoint_vkey_parse(text, len, ret);
        if (r < 0)
                return r;
        if (ret_text)
                *ret_text = TAKE_PTR(text);
        return 0;
}

int audit_load_checkpoint_priv(int dir_fd, uint8_t ret[32]) {
        char *buf = NULL;
        size_t len;
        int r;

        r = read_small_file_at(dir_fd, CHECKPOINT_KEY_FILE, 64, &buf, &len);
        if (r < 0)
                return r;
        if (len == 32)
                memcpy(ret, buf, 32);
        else
                r = -EBADMSG;
        OPENSSL_cleanse(buf, len);
        free(buf);
        return r;
}

int audit_load_witness_key(const char *arg, CheckpointVerifier *ret) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r;

        assert(arg);
        /* the key itself (its name may hold '/'), else a file holding it */
        if (checkpoint_witness_vkey_parse(arg, strlen(arg), ret) >= 0)
                return 0;
        r = read_small_file_at(AT_FDCWD, arg, 1024, &text, &len);
        if (r < 0)
                return r == -ENOENT ? -EBADMSG : r;
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
                text[--len] = '\0';
        return checkpoint_witness_vkey_parse(text, len, ret);
}
