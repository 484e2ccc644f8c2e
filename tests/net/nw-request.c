/* SPDX-License-Identifier: Apache-2.0 */
/* Drives libnetworker for the net tests: loads a configuration file (as the
 * daemon will), then reads one JSON command per line on stdin and answers
 * each with one JSON line on stdout, so a test can act between exchanges
 * (stop a proxy, read a server log) and wait for each answer.
 *
 *   nw-request CONFIG
 *   {"cmd": "server", "url": "https://localhost:4711/callhome"}
 *   {"cmd": "proxy", "url": "http://127.0.0.1:3128", "user": "u", "password": "p"}   (url null: none)
 *       or "password_file": a file holding the password, so that it never passes through
 *       JSON (whose strings are freed unwiped) and a test can look for it in our memory
 *   {"cmd": "drop"}                                     next exchange on a new connection
 *   {"cmd": "CheckIn", "device": "CH0000000001", "version": "0.1.0", "last": 0}
 *   {"cmd": "SubmitMeterReads", "device": …, "txid": …, "time": …, "meters": [{"name", "value", "unit", "decreased"}]}
 *   {"cmd": "SubmitSupplies", … "supplies": [{"name", "type", "level", "capacity", "unit"}]}
 *   {"cmd": "SubmitDiagnostics", … "instruction": N, "entries": [{"name", "value"}]}
 *   {"cmd": "ReportResult", "device", "txid", "instruction", "outcome", "detail"}
 *   {"cmd": "GetSoftware", "device", "package", "offset", "length"}
 *   {"cmd": "download", "device", "package", "path", "offset" (or "resume": true), "length", "expected"}
 */
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "nw-client.h"
#include "nw-config.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

static const char *str(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static uint64_t u64(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) ? (uint64_t) json_object_get_uint64(v) : 0;
}

static int64_t i64(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static bool flag(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static json_object *array(json_object *o, const char *key, size_t *n) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array)) {
                *n = 0;
                return NULL;
        }
        *n = json_object_array_length(v);
        return v;
}

static void add_str(json_object *o, const char *key, const char *v) {
        if (v)
                json_object_object_add(o, key, json_object_new_string(v));
}


static json_object *reply_json(const SoapReply *r) {
        json_object *o = json_object_new_object();

        switch (r->op) {
        case SOAP_CHECK_IN: {
                json_object *a = json_object_new_array();
                for (size_t i = 0; i < r->check_in.n_instructions; i++) {
                        const SoapInstruction *in = r->check_in.instructions + i;
                        json_object *j = json_object_new_object();
                        json_object_object_add(j, "id", json_object_new_uint64(in->id));
                        add_str(j, "kind", soap_instruction_kind_to_string(in->kind));
                        if (in->kind == SOAP_INSTRUCTION_SET_CHECK_IN_INTERVAL)
                                json_object_object_add(j, "seconds", json_object_new_uint64(in->seconds));
                        add_str(j, "package", in->package_id);
                        add_str(j, "version", in->version);
                        if (in->kind == SOAP_INSTRUCTION_SOFTWARE_AVAILABLE)
                                json_object_object_add(j, "size", json_object_new_uint64(in->size));
                        add_str(j, "sha256", in->sha256);
                        add_str(j, "reason", in->reason);
                        if (in->kind == SOAP_INSTRUCTION_DIAGNOSTICS_REQUESTED) {
                                json_object *items = json_object_new_array();
                                for (size_t k = 0; k < in->n_items; k++)
                                        json_object_array_add(items, json_object_new_string(in->items[k]));
                                json_object_object_add(j, "items", items);
                        }
                        json_object_array_add(a, j);
                }
                json_object_object_add(o, "instructions", a);
                if (r->check_in.has_witness) {
                        json_object *w = json_object_new_object();
                        json_object_object_add(w, "acked_size", json_object_new_uint64(r->check_in.acked_size));
                        add_str(w, "acked_root", r->check_in.acked_root);
                        add_str(w, "cosignature", r->check_in.cosignature);
                        json_object_object_add(o, "witness", w);
                }
                break;
        }
        case SOAP_GET_SOFTWARE:
                add_str(o, "package", r->software.package_id);
                json_object_object_add(o, "total", json_object_new_uint64(r->software.total_size));
                json_object_object_add(o, "offset", json_object_new_uint64(r->software.offset));
                json_object_object_add(o, "data_size", json_object_new_uint64(r->software.data.size));
                json_object_object_add(o, "has_manifest", json_object_new_boolean(r->software.has_manifest));
                json_object_object_add(o, "manifest_size", json_object_new_uint64(r->software.manifest.size));
                json_object_object_add(o, "signature_size", json_object_new_uint64(r->software.manifest_signature.size));
                json_object_object_add(o, "certificate_size", json_object_new_uint64(r->software.signer_certificate.size));
                break;
        default:
                add_str(o, "txid", r->ack.transaction_id);
                add_str(o, "status", soap_ack_status_to_string(r->ack.status));
        }
        return o;
}

static json_object *error_json(const NwError *e) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "ok", json_object_new_boolean(false));
        add_str(o, "error", nw_error_kind_to_string(e->kind));
        add_str(o, "dbus", nw_error_kind_to_dbus_name(e->kind));
        add_str(o, "message", e->message);
        json_object_object_add(o, "http_status", json_object_new_int64(e->http_status));
        json_object_object_add(o, "retry_after", json_object_new_uint64(e->retry_after));
        if (e->has_fault) {
                json_object *f = json_object_new_object();
                add_str(f, "detail", nw_fault_detail_to_string(e->fault.detail));
                add_str(f, "code", e->fault.server ? "Server" : "Client");
                add_str(f, "string", e->fault.string);
                add_str(f, "reason", e->fault.reason);
                json_object_object_add(f, "seconds", json_object_new_uint64(e->fault.seconds));
                json_object_object_add(f, "acked_size", json_object_new_uint64(e->fault.acked_size));
                add_str(f, "acked_root", e->fault.acked_root);
                json_object_object_add(o, "fault", f);
        }
        return o;
}

static int run_call(NwClient *c, json_object *cmd, const char *name, json_object **ret) {
        _cleanup_(soap_reply_done) SoapReply reply = {};
        _cleanup_(nw_error_done) NwError err = {};
        SoapOperation op = soap_operation_from_string(name);
        SoapRequest req = { .op = op };
        SoapCheckIn ci;
        SoapMeterReads mr;
        SoapSupplies su;
        SoapDiagnostics di;
        SoapReportResult rr;
        SoapGetSoftware gs;
        _cleanup_free_ SoapMeter *meters = NULL;
        _cleanup_free_ SoapSupply *supplies = NULL;
        _cleanup_free_ SoapDiagEntry *entries = NULL;
        json_object *a;
        size_t n;
        int r;

        switch (op) {
        case SOAP_CHECK_IN:
                ci = (SoapCheckIn) { .device_id = str(cmd, "device"), .agent_version = str(cmd, "version") ?: "0.1.0",
                                     .last_instruction = u64(cmd, "last") };
                req.check_in = &ci;
                break;
        case SOAP_SUBMIT_METER_READS:
                a = array(cmd, "meters", &n);
                meters = calloc(n + 1, sizeof(SoapMeter));
                for (size_t i = 0; i < n; i++) {
                        json_object *m = json_object_array_get_idx(a, i);
                        meters[i] = (SoapMeter) { .name = str(m, "name"), .value = u64(m, "value"),
                                                  .unit = str(m, "unit"), .decreased = flag(m, "decreased") };
                }
                mr = (SoapMeterReads) { .device_id = str(cmd, "device"), .transaction_id = str(cmd, "txid"),
                                        .time = str(cmd, "time"), .meters = meters, .n_meters = n };
                req.meter_reads = &mr;
                break;
        case SOAP_SUBMIT_SUPPLIES:
                a = array(cmd, "supplies", &n);
                supplies = calloc(n + 1, sizeof(SoapSupply));
                for (size_t i = 0; i < n; i++) {
                        json_object *m = json_object_array_get_idx(a, i);
                        supplies[i] = (SoapSupply) { .name = str(m, "name"), .type = str(m, "type"),
                                                     .level = (int32_t) i64(m, "level"),
                                                     .max_capacity = (int32_t) i64(m, "capacity"),
                                                     .unit = str(m, "unit") };
                }
                su = (SoapSupplies) { .device_id = str(cmd, "device"), .transaction_id = str(cmd, "txid"),
                                      .time = str(cmd, "time"), .supplies = supplies, .n_supplies = n };
                req.supplies = &su;
                break;
        case SOAP_SUBMIT_DIAGNOSTICS:
                a = array(cmd, "entries", &n);
                entries = calloc(n + 1, sizeof(SoapDiagEntry));
                for (size_t i = 0; i < n; i++) {
                        json_object *m = json_object_array_get_idx(a, i);
                        entries[i] = (SoapDiagEntry) { .name = str(m, "name"), .value = str(m, "value") };
                }
                di = (SoapDiagnostics) { .device_id = str(cmd, "device"), .transaction_id = str(cmd, "txid"),
                                         .instruction_id = u64(cmd, "instruction"), .time = str(cmd, "time"),
                                         .entries = entries, .n_entries = n };
                req.diagnostics = &di;
                break;
        case SOAP_REPORT_RESULT:
                rr = (SoapReportResult) { .device_id = str(cmd, "device"), .transaction_id = str(cmd, "txid"),
                                          .instruction_id = u64(cmd, "instruction"),
                                          .outcome = soap_outcome_from_string(str(cmd, "outcome") ?: "Done"),
                                          .detail = str(cmd, "detail") };
                req.report_result = &rr;
                break;
        case SOAP_GET_SOFTWARE:
                gs = (SoapGetSoftware) { .device_id = str(cmd, "device"), .package_id = str(cmd, "package"),
                                         .offset = u64(cmd, "offset"), .length = (uint32_t) u64(cmd, "length") };
                req.get_software = &gs;
                break;
        default:
                return -EINVAL;
        }

        r = nw_client_call(c, &req, &reply, &err);
        if (r < 0) {
                *ret = error_json(&err);
                return 0;
        }
        *ret = json_object_new_object();
        json_object_object_add(*ret, "ok", json_object_new_boolean(true));
        json_object_object_add(*ret, "reply", reply_json(&reply));
        return 0;
}

static int run(NwClient *c, json_object *cmd, json_object **ret) {
        _cleanup_(nw_error_done) NwError err = {};
        const char *name = str(cmd, "cmd");
        int r = 0;

        if (!name)
                return -EINVAL;
        if (streq(name, "server"))
                r = nw_client_set_server(c, str(cmd, "url") ?: "", &err);
        else if (streq(name, "proxy")) {
                char *pw = NULL;
                size_t pw_size = 0;

                if (str(cmd, "password_file")) {
                        r = read_small_file_at(AT_FDCWD, str(cmd, "password_file"), 4096, &pw, &pw_size);
                        if (r < 0)
                                return r;
                }
                r = nw_client_set_proxy(c, str(cmd, "url"), str(cmd, "user"), pw ?: str(cmd, "password"), &err);
                erase_and_free(pw, pw_size);
        }
        else if (streq(name, "drop"))
                nw_client_drop_connections(c);
        else if (streq(name, "download")) {
                _cleanup_close_ int fd = open(str(cmd, "path") ?: "", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                uint64_t written = 0, total = 0;

                if (fd < 0)
                        return -errno;
                r = nw_client_download(c, str(cmd, "device") ?: "", str(cmd, "package") ?: "",
                                       flag(cmd, "resume") ? NW_DOWNLOAD_RESUME : u64(cmd, "offset"),
                                       u64(cmd, "length"), u64(cmd, "expected"), fd, &written, &total, &err);
                if (r >= 0) {
                        *ret = json_object_new_object();
                        json_object_object_add(*ret, "ok", json_object_new_boolean(true));
                        json_object_object_add(*ret, "written", json_object_new_uint64(written));
                        json_object_object_add(*ret, "total", json_object_new_uint64(total));
                        return 0;
                }
        } else
                return run_call(c, cmd, name, ret);

        if (r < 0 && err.kind != NW_ERROR_NONE) {
                *ret = error_json(&err);
                return 0;
        }
        if (r < 0)
                return r;
        *ret = json_object_new_object();
        json_object_object_add(*ret, "ok", json_object_new_boolean(true));
        return 0;
}

int main(int argc, char *argv[]) {
        _cleanup_(nw_config_freep) NwConfig *config = NULL;
        _cleanup_(nw_client_freep) NwClient *c = NULL;
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        unsigned lineno = 0;
        int r;

        if (argc != 2) {
                fprintf(stderr, "usage: nw-request CONFIG < commands\n");
                return 2;
        }
        r = nw_config_load(argv[1], &config, &lineno);
        if (r < 0) {
                fprintf(stderr, "%s:%u: %s\n", argv[1], lineno, strerror(-r));
                return 2;
        }
        r = nw_client_new(config, &c);
        if (r < 0) {
                fprintf(stderr, "client: %s\n", strerror(-r));
                return 1;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);

        while (getline(&line, &cap, stdin) > 0) {
                _cleanup_(json_object_putp) json_object *cmd = json_tokener_parse(line);
                _cleanup_(json_object_putp) json_object *out = NULL;
                NwExchangeInfo info;

                if (!cmd) {
                        fprintf(stderr, "not JSON: %s", line);
                        return 2;
                }
                r = run(c, cmd, &out);
                if (r < 0) {
                        fprintf(stderr, "command failed: %s\n", strerror(-r));
                        return 1;
                }
                nw_client_last_exchange(c, &info);
                json_object_object_add(out, "tls_resumed", json_object_new_boolean(info.tls_resumed));
                json_object_object_add(out, "handshakes", json_object_new_uint64(info.handshakes));
                json_object_object_add(out, "request_bytes", json_object_new_uint64(info.request_bytes));
                json_object_object_add(out, "reply_bytes", json_object_new_uint64(info.reply_bytes));
                printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN));
                explicit_bzero(line, cap);
        }
        return 0;
}
