/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <openssl/crypto.h>
#include <string.h>
#include <sys/stat.h>

#include "audit-files.h"
#include "macro.h"

int audit_read_small_file(int dir_fd, const char *name, size_t max, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t got = 0;

        fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (got < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + got, (size_t) st.st_size - got);
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        buf[got] = '\0';
        *ret = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = got;
        return 0;
}

int audit_load_vkey(int dir_fd, CheckpointVerifier *ret, char **ret_text) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r;

        r = audit_read_small_file(dir_fd, CHECKPOINT_PUB_FILE, 1024, &text, &len);
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

        r = audit_read_small_file(dir_fd, CHECKPOINT_KEY_FILE, 64, &buf, &len);
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
