/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the hardened SOAP reply parser. The first byte picks the
 * operation whose reply is expected; the rest is what the network sent. */
#include <stdint.h>
#include <stddef.h>

#include "soap-message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        SoapReply reply = {};
        NwError err = {};
        SoapOperation op;

        if (size < 1)
                return 0;
        op = (SoapOperation) (data[0] % _SOAP_OPERATION_MAX);
        if (soap_parse_reply(op, (const char *) data + 1, size - 1, NULL, &reply, &err) >= 0)
                soap_reply_done(&reply);
        nw_error_done(&err);
        return 0;
}
