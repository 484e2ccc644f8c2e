/* SPDX-License-Identifier: Apache-2.0 */
/* The allowlist applied to a snapshot: a planted field is dropped and listed,
 * a decrease is sent as marked, names the protocol cannot carry never reach
 * the payload, and nothing at all is not a payload. */
#include <assert.h>
#include <stdio.h>

#include "payload.h"

static int failures;

static void expect(bool ok, const char *what) {
        printf("%s - %s\n", ok ? "ok" : "FAIL", what);
        if (!ok)
                failures++;
}

static bool dropped(const Payload *p, const char *field, const char *reason) {
        for (size_t i = 0; i < p->n_dropped; i++)
                if (streq(p->dropped[i].field, field) && streq(p->dropped[i].reason, reason))
                        return true;
        return false;
}

int main(void) {
        _cleanup_(policy_freep) Policy *policy = NULL;
        _cleanup_(payload_freep) Payload *p = NULL, *q = NULL;
        _cleanup_free_ char *error = NULL;
        const char *head = "<SubmitMeterReads xmlns=\"urn:callhome:soap:v1\"><DeviceId>CH0000000001</DeviceId>"
                           "<TransactionId>CH0000000001-1</TransactionId><Time>2025-12-01T11:53:20Z</Time>";
        SnapshotMeter meters[] = {
                { .name = (char *) "TotalImpressions", .unit = (char *) "impressions", .value = 1200 },
                { .name = (char *) "CustomerJobPages", .unit = (char *) "pages", .value = 7 },          /* planted */
                { .name = (char *) "TotalSheets", .unit = (char *) "sheets", .value = 900, .decreased = true },
                { .name = (char *) "Bad<Name>", .unit = (char *) "pages", .value = 1 },
                { .name = (char *) "prtMarkerLifeCount.1", .unit = (char *) "impressions", .value = 1300 },
        };
        SnapshotSupply supplies[] = {
                { .name = (char *) "prtMarkerSupplies.1", .type = (char *) "toner", .unit = (char *) "percent",
                  .level = -3, .max_capacity = 100 },
        };
        PolicySnapshot s = {
                .serial = (char *) "CH0000000001", .model = (char *) "Model", .time_usec = 1764590000000000ULL,
                .meters = meters, .n_meters = ELEMENTSOF(meters), .supplies = supplies, .n_supplies = 1,
        };

        assert(policy_new_default(&policy) >= 0);
        assert(payload_build(policy, &s, POLICY_SERVICE_METER_READS, "CH0000000001-1", &p, &error) >= 0);
        printf("# %.*s\n", (int) p->xml_len, p->xml);
        expect(strstr(p->xml, "<Meter><Name>TotalImpressions</Name><Value>1200</Value><Unit>impressions</Unit></Meter>"),
               "an allowlisted counter is in the payload");
        expect(!strstr(p->xml, "CustomerJobPages"), "the planted counter is not");
        expect(dropped(p, "meter.CustomerJobPages", "not in the allowlist"), "and it is listed as dropped");
        expect(!strstr(p->xml, "Bad"), "a name the protocol cannot carry is not in the payload");
        expect(dropped(p, "meter.(invalid name)", "not a valid protocol name"), "and listed without quoting it");
        expect(strstr(p->xml, "<Name>TotalSheets</Name><Value>900</Value><Unit>sheets</Unit><Anomaly>Decreased</Anomaly>"),
               "a decrease is sent marked");
        expect(strstr(p->xml, "<Name>prtMarkerLifeCount.1</Name>"), "a marker life count matches the wildcard");
        expect(strncmp(p->xml, head, strlen(head)) == 0, "the element, device id, transaction id and UTC time come first");
        expect(p->n_kept == 3 && p->n_dropped == 2, "three kept, two dropped");

        assert(payload_build(policy, &s, POLICY_SERVICE_SUPPLIES, "CH0000000001-2", &q, NULL) >= 0);
        expect(strstr(q->xml, "<Supply><Name>prtMarkerSupplies.1</Name><Type>toner</Type><Level>-3</Level>"
                              "<MaxCapacity>100</MaxCapacity><Unit>percent</Unit></Supply>"),
               "a supply goes with its RFC 3805 special level");

        assert(policy_set(policy, POLICY_SETTING_ALLOWLIST, &(PolicyValue) { .strv = (char *const[]) { (char *) "supply.*", NULL } },
                          NULL) >= 0);
        payload_free(p);
        p = NULL;
        expect(payload_build(policy, &s, POLICY_SERVICE_METER_READS, "t", &p, &error) == -EBADMSG && !p &&
               strstr(error, "keeps no meter"), "an allowlist keeping no meter builds nothing, and says so");
        s.serial = (char *) "";
        expect(payload_build(policy, &s, POLICY_SERVICE_SUPPLIES, "t", &p, NULL) == -EBADMSG,
               "no serial, no payload");
        expect(payload_build(policy, &s, POLICY_SERVICE_DIAGNOSTICS, "t", &p, NULL) == -EOPNOTSUPP,
               "diagnostics are not built from a snapshot");
        return failures ? 1 : 0;
}
