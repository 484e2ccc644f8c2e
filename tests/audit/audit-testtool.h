/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the files of audit-testtool. */
#pragma once

#include <stdint.h>

#include "log-store.h"

int die(const char *what, int r);
void remove_index_files(int dir_fd);
int sync_and_print(AuditWriter *w);
int open_log(const char *dir, uint64_t segment_size, uint64_t retention_size, char *ret_note,
             uint8_t *ret_ack_key, Checkpoint *ret_ack, int *ret_dir_fd, AuditWriter **ret);

int cmd_append(int argc, char *argv[]);
int cmd_craft(int argc, char *argv[]);
int cmd_rewrite(int argc, char *argv[]);
int cmd_cut_start(int argc, char *argv[]);
int cmd_new_log(int argc, char *argv[]);
