/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* org.callhome.Audit1 (ipc/org.callhome.Audit1.xml), served by auditd-bus.c. */

#include <stdint.h>

#include "auditd-manager.h"

#define AUDIT_BUS_NAME "org.callhome.Audit1"
#define AUDIT_BUS_PATH "/org/callhome/Audit1"
#define AUDIT_BUS_INTERFACE "org.callhome.Audit1"
#define AUDIT_ERROR_LOG_BROKEN "org.callhome.Audit1.Error.LogBroken"
#define AUDIT_ERROR_NOT_PENDING "org.callhome.Audit1.Error.NotPending"
#define AUDIT_ERROR_OUTBOX_FULL "org.callhome.Audit1.Error.OutboxFull"
#define AUDIT_ERROR_LOG_FULL "org.callhome.Audit1.Error.LogFull"

int manager_bus_register(Manager *m);
void manager_bus_done(Manager *m);
int manager_emit_head_changed(Manager *m);
int manager_emit_appended(Manager *m, uint64_t seq, const char *type, const char *txn);
