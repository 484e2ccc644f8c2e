/* SPDX-License-Identifier: Apache-2.0 */
/* Shared fixtures and helpers of the collector unit tests (test-collector*.c),
 * and the entry points of each file's tests. */
#pragma once

#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <time.h>

#include "counter-model.h"
#include "counter-value.h"
#include "fileio.h"
#include "highwater.h"
#include "source.h"

extern unsigned failures, checks;

#define CHECK(cond, ...)                                                      \
        do {                                                                  \
                checks++;                                                     \
                if (!(cond)) {                                                \
                        failures++;                                           \
                        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);  \
                        fprintf(stderr, __VA_ARGS__);                         \
                        fputc('\n', stderr);                                  \
                }                                                             \
        } while (0)

extern const char *example;
/* The time the high-water tests judge at: a boot 1000 s old. */
extern HighWaterClock clk;
extern char tmpdir[];

/* --- tree helpers (test-collector.c) --- */
void write_file(const char *dir, const char *rel, const char *content, size_t len);
void put(const char *dir, const char *rel, const char *content);
void rm_rf(const char *p);
char *fresh_tree(const char *name);
Snapshot *read_tree(const char *path, size_t max_file, unsigned max_files);
const Counter *find_counter(const Snapshot *s, const char *name);
const Supply *find_supply(const Snapshot *s, uint32_t index);
bool has_error(const Snapshot *s, const char *name, const char *reason_part);
void dump_errors(const Snapshot *s);

/* --- test-collector-sysfs.c --- */
void test_valid_tree(void);
void test_broken_trees(void);
void test_index_names(void);
void test_full_tree(void);
void test_root_symlink(void);
void test_junk(void);

/* --- test-collector-highwater.c --- */
bool all_served_have_marks(const HighWater *h, const Snapshot *s);
void test_highwater(void);
void test_highwater_atomic(void);
void test_highwater_marker_error(void);
void test_highwater_full(void);
void test_highwater_spike(void);
