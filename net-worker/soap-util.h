/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Lexical checks of the contract's simple types (callhome.xsd), shared by the
 * request builder (refuses bad arguments) and the reply parser (refuses bad replies). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Valid UTF-8, only characters XML 1.0 allows, at most max_chars characters. */
bool soap_valid_text(const char *s, size_t max_chars);

/* DeviceId, PackageId: [A-Za-z0-9][A-Za-z0-9._-]{0,63} */
bool soap_valid_device_id(const char *s);
/* AgentVersion: [A-Za-z0-9.+~_-]{1,32} */
bool soap_valid_agent_version(const char *s);
/* TransactionId: [A-Za-z0-9._:-]{1,96} */
bool soap_valid_transaction_id(const char *s);
/* Name: [A-Za-z0-9._:/-]{1,64} */
bool soap_valid_name(const char *s);
/* SoftwareVersion: 1 to 4 dot-separated numbers without leading zeros, ≤ 6 digits */
bool soap_valid_software_version(const char *s);
/* Sha256Hex: [0-9a-f]{64} */
bool soap_valid_sha256_hex(const char *s);
/* UtcTime: YYYY-MM-DDTHH:MM:SS(.f{1,6})?Z */
bool soap_valid_utc_time(const char *s);
/* Base64 (no whitespace) of exactly `bytes` bytes when bytes > 0. */
bool soap_valid_base64(const char *s, size_t bytes);

/* Decodes base64 that may hold XML whitespace; -EINVAL if it is not base64. */
int soap_base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size);
