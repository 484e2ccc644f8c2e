/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <seccomp.h>
#include <stddef.h>
#include <stdint.h>

#include "confine.h"

/* The seccomp allowlists, built for any architecture callhome runs on, so a
 * test on one host can check the filters of all three. confine_seccomp_load()
 * builds for the native architecture and loads. */

/* x86-64, arm64 and 32-bit ARM (armhf): the architectures of printer controllers. */
#define SECCOMP_PROFILE_ARCHES { SCMP_ARCH_X86_64, SCMP_ARCH_AARCH64, SCMP_ARCH_ARM }

/* Builds profile p's filter for `arch` (an SCMP_ARCH_* value, or
 * SCMP_ARCH_NATIVE) without loading it. -EOPNOTSUPP for an architecture
 * without lists, or for TRAP/LOG in a build without -Dseccomp_debug=true;
 * -ENOENT when a listed name is no syscall on `arch`, naming it in
 * *ret_unresolved (if not NULL). */
int seccomp_profile_build(ConfineProfile p, SeccompMode mode, uint32_t arch, scmp_filter_ctx *ret_ctx,
                          const char **ret_unresolved);

/* Adds `action` for each of `names`, each a syscall of `arch`; a name that is
 * not (unknown, or only a pseudo-syscall there) is -ENOENT, named in
 * *ret_unresolved, never skipped. */
int seccomp_profile_add_names(scmp_filter_ctx ctx, uint32_t arch, uint32_t action, const char *const *names,
                              size_t n, const char **ret_unresolved);
