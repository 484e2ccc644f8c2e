/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the SOAP messages: the six requests in the exact wire form,
 * escaping, refused arguments; the hardened reply parser on good replies,
 * faults and hostile documents. With --write-dir DIR it also writes each
 * request to DIR/<Operation>.xml for tests/net/test_soap_schema.py, which
 * validates them with xmllint against ipc/soap/callhome-envelope.xsd. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "soap-message.h"

static int failures = 0;

#define CHECK(cond)                                                                        \
        do {                                                                               \
                if (!(cond)) {                                                             \
                        printf("not ok - %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
                        failures++;                                                        \
                }                                                                          \
        } while (0)

static const char *write_dir = NULL;

#define ENV_OPEN "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>"
#define ENV_CLOSE "</s:Body></s:Envelope>"

static char *build(const SoapRequest *req, NwError *err) {
        char *out = NULL;
        size_t n = 0;

        if (soap_build_request(req, 1U << 20, &out, &n, err) < 0)
                return NULL;
        if (out && strlen(out) != n)
                failures++, printf("not ok - length mismatch\n");
        if (write_dir && out) {
                char path[4096];
                int fd;

                (void) snprintf(path, sizeof(path), "%s/%s.xml", write_dir, soap_operation_to_string(req->op));
                fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                CHECK(fd >= 0 && write_full(fd, out, n) == 0);
                if (fd >= 0)
                        close(fd);
        }
        return out;
}

static void test_check_in(void) {
        SoapCheckIn m = { .device_id = "CH0000000001", .agent_version = "0.1.0", .last_instruction = 0 };
        SoapRequest req = { .op = SOAP_CHECK_IN, .check_in = &m };
        NwError err = {};
        _cleanup_free_ char *out = NULL;

        /* PROTOCOL.md, idle-checkin-request: 245 bytes, byte for byte. */
        out = build(&req, &err);
        CHECK(out && streq(out, ENV_OPEN "<CheckIn xmlns=\"urn:callhome:soap:v1\"><DeviceId>CH0000000001</DeviceId>"
                                         "<AgentVersion>0.1.0</AgentVersion><LastInstruction>0</LastInstruction>"
                                         "</CheckIn>" ENV_CLOSE));
        CHECK(out && strlen(out) == 245);

        m.device_id = "-bad";
        free(build(&req, &err));
        CHECK(err.kind == NW_ERROR_INVALID_REQUEST && strstr(err.message, "DeviceId"));
        m.device_id = "CH0000000001";
        m.agent_version = "";
        CHECK(!build(&req, &err) && strstr(err.message, "AgentVersion"));
        nw_error_done(&err);
}

static void test_check_in_witness(void) {
        const char *hashes[] = { "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "//////////////////////////////////////////8=" };
        SoapWitnessRequest w = {
                .checkpoint = "callhome.test/audit/CH0000000001\n1000\nq83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n"
                              "\n\xe2\x80\x94 a&b<c> K2k=\n",
                .log_key = "callhome.test/audit/CH0000000001+0123abcd+AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB",
                .proof_from = 7,
                .proof_hashes = hashes,
                .n_proof_hashes = 2,
        };
        SoapCheckIn m = { .device_id = "CH0000000001", .agent_version = "0.1.0", .last_instruction = 18446744073709551615U, .witness = &w };
        SoapRequest req = { .op = SOAP_CHECK_IN, .check_in = &m };
        NwError err = {};
        _cleanup_free_ char *out = build(&req, &err);

        CHECK(out && strstr(out, "<Checkpoint>callhome.test/audit/CH0000000001\n1000\n"));
        CHECK(out && strstr(out, "a&amp;b&lt;c&gt;"));
        CHECK(out && strstr(out, "<LastInstruction>18446744073709551615</LastInstruction>"));
        CHECK(out && strstr(out, "<ProofFrom>7</ProofFrom><ProofHash>AAAA"));

        hashes[1] = "short";
        CHECK(!build(&req, &err) && strstr(err.message, "ProofHash 1"));
        w.checkpoint = "bad\x01control";
        CHECK(!build(&req, &err) && strstr(err.message, "Checkpoint"));
        nw_error_done(&err);
}

static void test_submissions(void) {
        SoapMeter meters[] = {
                { .name = "prtMarkerLifeCount.1", .value = 123456, .unit = "impressions" },
                { .name = "impressions.color", .value = 7, .decreased = true },
        };
        SoapMeterReads mr = { .device_id = "CH0000000001", .transaction_id = "CH0000000001-42",
                              .time = "2026-03-01T10:00:00Z", .meters = meters, .n_meters = 2 };
        SoapSupply supplies[] = { { .name = "toner.black", .type = "toner", .level = -3, .max_capacity = -2, .unit = "percent" } };
        SoapSupplies su = { .device_id = "CH0000000001", .transaction_id = "CH0000000001-43",
                            .time = "2026-03-01T10:00:00.123Z", .supplies = supplies, .n_supplies = 1 };
        SoapDiagEntry entries[] = { { .name = "log/tail", .value = "<xml> & \"quotes\" \xc3\xa9\r\n" } };
        SoapDiagnostics di = { .device_id = "CH0000000001", .transaction_id = "CH0000000001-44", .instruction_id = 3,
                               .time = "2026-03-01T10:00:00Z", .entries = entries, .n_entries = 1 };
        SoapReportResult rr = { .device_id = "CH0000000001", .transaction_id = "CH0000000001-45", .instruction_id = 3,
                                .outcome = SOAP_OUTCOME_AWAITING_CONSENT, .detail = "held for the customer & <consent>" };
        SoapGetSoftware gs = { .device_id = "CH0000000001", .package_id = "fw-main", .offset = 0, .length = 262144 };
        NwError err = {};
        char *out;

        out = build(&(SoapRequest) { .op = SOAP_SUBMIT_METER_READS, .meter_reads = &mr }, &err);
        CHECK(out && streq(out, ENV_OPEN "<SubmitMeterReads xmlns=\"urn:callhome:soap:v1\"><DeviceId>CH0000000001</DeviceId>"
                                         "<TransactionId>CH0000000001-42</TransactionId><Time>2026-03-01T10:00:00Z</Time>"
                                         "<Meter><Name>prtMarkerLifeCount.1</Name><Value>123456</Value><Unit>impressions</Unit></Meter>"
                                         "<Meter><Name>impressions.color</Name><Value>7</Value><Anomaly>Decreased</Anomaly></Meter>"
                                         "</SubmitMeterReads>" ENV_CLOSE));
        free(out);
        out = build(&(SoapRequest) { .op = SOAP_SUBMIT_SUPPLIES, .supplies = &su }, &err);
        CHECK(out && strstr(out, "<Supply><Name>toner.black</Name><Type>toner</Type><Level>-3</Level>"
                                 "<MaxCapacity>-2</MaxCapacity><Unit>percent</Unit></Supply>"));
        free(out);
        out = build(&(SoapRequest) { .op = SOAP_SUBMIT_DIAGNOSTICS, .diagnostics = &di }, &err);
        CHECK(out && strstr(out, "<InstructionId>3</InstructionId><Time>"));
        CHECK(out && strstr(out, "<Value>&lt;xml&gt; &amp; &quot;quotes&quot; \xc3\xa9&#13;\n</Value>"));
        free(out);
        out = build(&(SoapRequest) { .op = SOAP_REPORT_RESULT, .report_result = &rr }, &err);
        CHECK(out && strstr(out, "<Outcome>AwaitingConsent</Outcome><Detail>held for the customer &amp; &lt;consent&gt;</Detail>"));
        free(out);
        out = build(&(SoapRequest) { .op = SOAP_GET_SOFTWARE, .get_software = &gs }, &err);
        CHECK(out && strstr(out, "<PackageId>fw-main</PackageId><Offset>0</Offset><Length>262144</Length></GetSoftware>"));
        free(out);

        /* refused arguments, each naming its field */
        write_dir = NULL;
        mr.time = "2026-03-01 10:00:00";
        CHECK(!build(&(SoapRequest) { .op = SOAP_SUBMIT_METER_READS, .meter_reads = &mr }, &err) && strstr(err.message, "Time"));
        mr.time = "2026-03-01T10:00:00Z";
        mr.n_meters = 0;
        CHECK(!build(&(SoapRequest) { .op = SOAP_SUBMIT_METER_READS, .meter_reads = &mr }, &err) && strstr(err.message, "meters"));
        supplies[0].level = -4;
        CHECK(!build(&(SoapRequest) { .op = SOAP_SUBMIT_SUPPLIES, .supplies = &su }, &err) && strstr(err.message, "Level"));
        gs.length = 262145;
        CHECK(!build(&(SoapRequest) { .op = SOAP_GET_SOFTWARE, .get_software = &gs }, &err) && strstr(err.message, "Length"));
        rr.outcome = _SOAP_OUTCOME_MAX;
        CHECK(!build(&(SoapRequest) { .op = SOAP_REPORT_RESULT, .report_result = &rr }, &err) && strstr(err.message, "Outcome"));
        rr.outcome = SOAP_OUTCOME_DONE;
        rr.transaction_id = "has space";
        CHECK(!build(&(SoapRequest) { .op = SOAP_REPORT_RESULT, .report_result = &rr }, &err) && strstr(err.message, "TransactionId"));
        entries[0].value = "\xff\xfe";
        CHECK(!build(&(SoapRequest) { .op = SOAP_SUBMIT_DIAGNOSTICS, .diagnostics = &di }, &err) && strstr(err.message, "Value"));

        /* size bound */
        {
                char *o = NULL;
                size_t n;
                CHECK(soap_build_request(&(SoapRequest) { .op = SOAP_GET_SOFTWARE, .get_software = &(SoapGetSoftware) {
                                .device_id = "X", .package_id = "p", .length = 1 } }, 100, &o, &n, &err) == -E2BIG);
                CHECK(!o && err.kind == NW_ERROR_INVALID_REQUEST);
        }
        nw_error_done(&err);
}

static int parse(SoapOperation op, const char *xml, SoapReply *reply, NwError *err) {
        nw_error_done(err);
        return soap_parse_reply(op, xml, strlen(xml), NULL, reply, err);
}

static void test_parse_replies(void) {
        SoapReply r = {};
        NwError err = {};

        CHECK(parse(SOAP_CHECK_IN, ENV_OPEN "<CheckInResponse xmlns=\"urn:callhome:soap:v1\"/>" ENV_CLOSE, &r, &err) == 0);
        CHECK(r.op == SOAP_CHECK_IN && r.check_in.n_instructions == 0 && !r.check_in.has_witness);
        soap_reply_done(&r);

        /* any prefixes, whitespace, comments, an empty Header, an XML declaration */
        CHECK(parse(SOAP_CHECK_IN,
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- hi -->"
                    "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:c=\"urn:callhome:soap:v1\">\n"
                    " <soap:Header/>\n <soap:Body>\n  <c:CheckInResponse>\n"
                    "   <c:Instruction><c:Id> 1 </c:Id><c:SetCheckInInterval><c:Seconds>3600</c:Seconds></c:SetCheckInInterval></c:Instruction>\n"
                    "   <c:Instruction><c:Id>2</c:Id><c:SendMeterReads/></c:Instruction>\n"
                    "   <c:Instruction><c:Id>3</c:Id><c:SoftwareAvailable><c:PackageId>fw-main</c:PackageId><c:Version>1.2.3</c:Version>"
                    "<c:Size>1024</c:Size><c:Sha256>" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "</c:Sha256></c:SoftwareAvailable></c:Instruction>\n"
                    "   <c:Instruction><c:Id>4</c:Id><c:DiagnosticsRequested><c:Reason>why &amp; how</c:Reason><c:Item>a</c:Item><c:Item>b/c</c:Item></c:DiagnosticsRequested></c:Instruction>\n"
                    "   <c:Witness><c:AckedSize>1000</c:AckedSize><c:AckedRoot>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=</c:AckedRoot><c:Cosignature>\xe2\x80\x94 w x</c:Cosignature></c:Witness>\n"
                    "  </c:CheckInResponse>\n </soap:Body>\n</soap:Envelope>\n",
                    &r, &err) == 0);
        CHECK(r.check_in.n_instructions == 4);
        if (r.check_in.n_instructions == 4) {
                SoapInstruction *i = r.check_in.instructions;
                CHECK(i[0].id == 1 && i[0].kind == SOAP_INSTRUCTION_SET_CHECK_IN_INTERVAL && i[0].seconds == 3600);
                CHECK(i[1].id == 2 && i[1].kind == SOAP_INSTRUCTION_SEND_METER_READS);
                CHECK(i[2].kind == SOAP_INSTRUCTION_SOFTWARE_AVAILABLE && streq(i[2].package_id, "fw-main") &&
                      streq(i[2].version, "1.2.3") && i[2].size == 1024);
                CHECK(i[3].kind == SOAP_INSTRUCTION_DIAGNOSTICS_REQUESTED && streq(i[3].reason, "why & how") &&
                      i[3].n_items == 2 && streq(i[3].items[1], "b/c"));
        }
        CHECK(r.check_in.has_witness && r.check_in.acked_size == 1000 && r.check_in.cosignature);
        soap_reply_done(&r);

        CHECK(parse(SOAP_SUBMIT_METER_READS, ENV_OPEN "<SubmitMeterReadsResponse xmlns=\"urn:callhome:soap:v1\"><TransactionId>CH0000000001-42</TransactionId>"
                                             "<Status>Duplicate</Status></SubmitMeterReadsResponse>" ENV_CLOSE, &r, &err) == 0);
        CHECK(streq(r.ack.transaction_id, "CH0000000001-42") && r.ack.status == SOAP_ACK_DUPLICATE);
        soap_reply_done(&r);

        CHECK(parse(SOAP_GET_SOFTWARE, ENV_OPEN "<GetSoftwareResponse xmlns=\"urn:callhome:soap:v1\"><PackageId>fw-main</PackageId>"
                                       "<TotalSize>10</TotalSize><Offset>0</Offset><Data>aGVs\nbG8=</Data><Manifest>bQ==</Manifest>"
                                       "<ManifestSignature>cw==</ManifestSignature><SignerCertificate>Yw==</SignerCertificate>"
                                       "</GetSoftwareResponse>" ENV_CLOSE, &r, &err) == 0);
        CHECK(r.software.data.size == 5 && !memcmp(r.software.data.data, "hello", 5));
        CHECK(r.software.has_manifest && r.software.manifest.size == 1 && r.software.signer_certificate.data[0] == 'c');
        soap_reply_done(&r);

        /* the response of another operation is not this one's */
        CHECK(parse(SOAP_SUBMIT_SUPPLIES, ENV_OPEN "<SubmitMeterReadsResponse xmlns=\"urn:callhome:soap:v1\"><TransactionId>x</TransactionId>"
                                          "<Status>Accepted</Status></SubmitMeterReadsResponse>" ENV_CLOSE, &r, &err) == -EBADMSG);
        CHECK(err.kind == NW_ERROR_MALFORMED_REPLY && strstr(err.message, "SubmitSuppliesResponse"));
        nw_error_done(&err);
}

static void test_parse_faults(void) {
        SoapReply r = {};
        NwError err = {};

        CHECK(parse(SOAP_CHECK_IN, ENV_OPEN "<s:Fault><faultcode>s:Server</faultcode><faultstring>try again later</faultstring>"
                                   "<detail><RetryAfter xmlns=\"urn:callhome:soap:v1\"><Seconds>60</Seconds></RetryAfter></detail></s:Fault>" ENV_CLOSE,
                    &r, &err) == -EREMOTEIO);
        CHECK(err.kind == NW_ERROR_RETRY_AFTER && err.retry_after == 60 && err.has_fault && err.fault.server &&
              err.fault.detail == NW_FAULT_RETRY_AFTER && streq(err.fault.string, "try again later"));

        CHECK(parse(SOAP_REPORT_RESULT, ENV_OPEN "<s:Fault><faultcode>s:Client</faultcode><faultstring>no</faultstring>"
                                        "<detail><NotAuthorized xmlns=\"urn:callhome:soap:v1\"><Reason>DeviceId X is not the certificate's</Reason></NotAuthorized></detail></s:Fault>" ENV_CLOSE,
                    &r, &err) == -EREMOTEIO);
        CHECK(err.kind == NW_ERROR_SOAP_FAULT && err.fault.detail == NW_FAULT_NOT_AUTHORIZED && !err.fault.server &&
              strstr(err.fault.reason, "certificate"));

        CHECK(parse(SOAP_CHECK_IN, ENV_OPEN "<s:Fault><faultcode>s:Client</faultcode><faultstring>fork</faultstring>"
                                   "<detail><LogFork xmlns=\"urn:callhome:soap:v1\"><AckedSize>12</AckedSize><AckedRoot>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=</AckedRoot>"
                                   "<Reason>smaller</Reason></LogFork></detail></s:Fault>" ENV_CLOSE, &r, &err) == -EREMOTEIO);
        CHECK(err.fault.detail == NW_FAULT_LOG_FORK && err.fault.acked_size == 12 && streq(err.fault.reason, "smaller"));

        /* faultcode in another namespace, unknown detail, detail missing */
        CHECK(parse(SOAP_CHECK_IN, ENV_OPEN "<s:Fault xmlns:x=\"urn:x\"><faultcode>x:Server</faultcode><faultstring>a</faultstring>"
                                   "<detail><BadRequest xmlns=\"urn:callhome:soap:v1\"><Reason>r</Reason></BadRequest></detail></s:Fault>" ENV_CLOSE,
                    &r, &err) == -EBADMSG);
        CHECK(parse(SOAP_CHECK_IN, ENV_OPEN "<s:Fault><faultcode>s:Server</faultcode><faultstring>a</faultstring>"
                                   "<detail><Other xmlns=\"urn:callhome:soap:v1\"/></detail></s:Fault>" ENV_CLOSE, &r, &err) == -EBADMSG);
        CHECK(parse(SOAP_CHECK_IN, ENV_OPEN "<s:Fault><faultcode>s:Server</faultcode><faultstring>a</faultstring></s:Fault>" ENV_CLOSE,
                    &r, &err) == -EBADMSG);
        CHECK(parse(SOAP_CHECK_IN, ENV_OPEN "<s:Fault><faultcode>s:Server</faultcode><faultstring>a</faultstring>"
                                   "<detail><RetryAfter xmlns=\"urn:callhome:soap:v1\"><Seconds>0</Seconds></RetryAfter></detail></s:Fault>" ENV_CLOSE,
                    &r, &err) == -EBADMSG);
        nw_error_done(&err);
}

static void test_parse_hostile(void) {
        SoapReply r = {};
        NwError err = {};
        char *big;
        size_t n;
        int k;

        /* any DOCTYPE, even an empty one; XXE; billion laughs */
        CHECK(parse(SOAP_CHECK_IN, "<!DOCTYPE s:Envelope>" ENV_OPEN "<CheckInResponse xmlns=\"urn:callhome:soap:v1\"/>" ENV_CLOSE,
                    &r, &err) == -EBADMSG);
        CHECK(strstr(err.message, "DOCTYPE"));
        CHECK(parse(SOAP_CHECK_IN, "<!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>" ENV_OPEN
                                   "<CheckInResponse xmlns=\"urn:callhome:soap:v1\">&xxe;</CheckInResponse>" ENV_CLOSE,
                    &r, &err) == -EBADMSG);
        CHECK(strstr(err.message, "DOCTYPE"));
        CHECK(parse(SOAP_CHECK_IN, "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
                                   "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
                                   "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>"
                                   "<lolz>&lol3;</lolz>", &r, &err) == -EBADMSG);
        CHECK(strstr(err.message, "DOCTYPE"));
        /* an undeclared entity without a DTD */
        CHECK(parse(SOAP_CHECK_IN, ENV_OPEN "<CheckInResponse xmlns=\"urn:callhome:soap:v1\">&xxe;</CheckInResponse>" ENV_CLOSE,
                    &r, &err) == -EBADMSG);
        /* XInclude is never processed: the element is just not in the contract */
        CHECK(parse(SOAP_CHECK_IN, ENV_OPEN "<CheckInResponse xmlns=\"urn:callhome:soap:v1\"><xi:include xmlns:xi=\"http://www.w3.org/2001/XInclude\" "
                                   "href=\"file:///etc/passwd\" parse=\"text\"/></CheckInResponse>" ENV_CLOSE, &r, &err) == -EBADMSG);
        /* a processing instruction, attributes, text in element content, a Header block */
        CHECK(parse(SOAP_CHECK_IN, "<?pi x?>" ENV_OPEN "<CheckInResponse xmlns=\"urn:callhome:soap:v1\"/>" ENV_CLOSE, &r, &err) == -EBADMSG);
        CHECK(parse(SOAP_CHECK_IN, ENV_OPEN "<CheckInResponse xmlns=\"urn:callhome:soap:v1\" a=\"1\"/>" ENV_CLOSE, &r, &err) == -EBADMSG);
        CHECK(parse(SOAP_CHECK_IN, ENV_OPEN "<CheckInResponse xmlns=\"urn:callhome:soap:v1\">text</CheckInResponse>" ENV_CLOSE, &r, &err) == -EBADMSG);
        CHECK(parse(SOAP_CHECK_IN, "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Header><h/></s:Header><s:Body>"
                                   "<CheckInResponse xmlns=\"urn:callhome:soap:v1\"/>" ENV_CLOSE, &r, &err) == -EBADMSG);
        CHECK(strstr(err.message, "Header"));
        /* wrong namespace for the payload; two Body children; 17 instructions */
        CHECK(parse(SOAP_CHECK_IN, ENV_OPEN "<CheckInResponse xmlns=\"urn:callhome:soap:v2\"/>" ENV_CLOSE, &r, &err) == -EBADMSG);
        CHECK(parse(SOAP_CHECK_IN, ENV_OPEN "<CheckInResponse xmlns=\"urn:callhome:soap:v1\"/><CheckInResponse xmlns=\"urn:callhome:soap:v1\"/>" ENV_CLOSE,
                    &r, &err) == -EBADMSG);
        big = malloc(1 << 16);
        n = (size_t) sprintf(big, "%s<CheckInResponse xmlns=\"urn:callhome:soap:v1\">", ENV_OPEN);
        for (k = 1; k <= 17; k++)
                n += (size_t) sprintf(big + n, "<Instruction><Id>%d</Id><SendSupplies/></Instruction>", k);
        n += (size_t) sprintf(big + n, "</CheckInResponse>%s", ENV_CLOSE);
        CHECK(parse(SOAP_CHECK_IN, big, &r, &err) == -EBADMSG && strstr(err.message, "16"));
        free(big);

        /* depth 10,000 */
        big = malloc(10000 * 7 + 1);
        n = 0;
        for (k = 0; k < 10000; k++)
                n += (size_t) sprintf(big + n, "<a>");
        CHECK(soap_parse_reply(SOAP_CHECK_IN, big, n, NULL, &r, &err) == -EFBIG);
        CHECK(err.kind == NW_ERROR_TOO_LARGE && strstr(err.message, "deeper"));
        free(big);

        /* a million elements (shallow) */
        big = malloc(1000000 * 4 + 64);
        n = (size_t) sprintf(big, "<r>");
        for (k = 0; k < 1000000; k++)
                memcpy(big + n, "<a/>", 4), n += 4;
        n += (size_t) sprintf(big + n, "</r>");
        {
                SoapParseLimits lim = SOAP_PARSE_LIMITS_DEFAULT;
                lim.max_size = 8U << 20;
                CHECK(soap_parse_reply(SOAP_CHECK_IN, big, n, &lim, &r, &err) == -EFBIG);
                CHECK(err.kind == NW_ERROR_TOO_LARGE && strstr(err.message, "elements"));
        }
        /* and the size cap before any parsing */
        CHECK(soap_parse_reply(SOAP_CHECK_IN, big, n, NULL, &r, &err) == -EFBIG && strstr(err.message, "limit"));
        free(big);

        /* UTF-8 only, whatever the declaration says */
        CHECK(parse(SOAP_CHECK_IN, "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>" ENV_OPEN "<s:Fault><faultcode>s:Client</faultcode>"
                                   "<faultstring>caf\xe9</faultstring><detail><BadRequest xmlns=\"urn:callhome:soap:v1\"><Reason>r</Reason>"
                                   "</BadRequest></detail></s:Fault>" ENV_CLOSE, &r, &err) == -EBADMSG);
        CHECK(parse(SOAP_CHECK_IN, "", &r, &err) == -EBADMSG);
        CHECK(parse(SOAP_CHECK_IN, "<s:Envelope", &r, &err) == -EBADMSG && strstr(err.message, "not XML"));
        nw_error_done(&err);
}

int main(int argc, char *argv[]) {
        if (argc == 3 && streq(argv[1], "--write-dir"))
                write_dir = argv[2];

        test_check_in();
        test_check_in_witness();
        test_submissions();
        test_parse_replies();
        test_parse_faults();
        test_parse_hostile();

        if (failures) {
                printf("%d check(s) failed\n", failures);
                return 1;
        }
        printf("ok\n");
        return 0;
}
