/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _noreturn_ __attribute__((noreturn))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)
#define _pure_ __attribute__((pure))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Move ownership out of a cleanup variable: the variable is left NULL / -EBADF. */
#define TAKE_PTR(p)                         \
        ({                                  \
                __typeof__(p) _p_ = (p);    \
                (p) = NULL;                 \
                _p_;                        \
        })
#define TAKE_FD(fd)                         \
        ({                                  \
                int _fd_ = (fd);            \
                (fd) = -EBADF;              \
                _fd_;                       \
        })

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)         \
        static inline void func##p(type *p) {           \
                if (*p)                                 \
                        func(*p);                       \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}
static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* A secret buffer: wiped before it is freed. */
typedef struct ErasedBuffer {
        void *data;
        size_t size;
} ErasedBuffer;
static inline void erase_and_free(void *p, size_t n) {
        if (p) {
                explicit_bzero(p, n);
                free(p);
        }
}
static inline void erased_buffer_done(ErasedBuffer *b) {
        erase_and_free(b->data, b->size);
        b->data = NULL;
        b->size = 0;
}
#define _cleanup_erase_ _cleanup_(erased_buffer_done)

static inline const char *strna(const char *s) {
        return s ?: "n/a";
}
static inline const char *yes_no(int b) {
        return b ? "yes" : "no";
}
static inline int streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)

/* errno as a negative value, never 0: for callers that must return failure. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

#define IN_SET3(x, a, b, c) ((x) == (a) || (x) == (b) || (x) == (c))

/* Sanitizer builds (tests only) need a few more syscalls inside the sandbox. */
#ifdef CALLHOME_SANITIZERS
#define BUILT_WITH_SANITIZERS 1
#else
#define BUILT_WITH_SANITIZERS 0
#endif
