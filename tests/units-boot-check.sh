#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Runs inside the container that tests/test_units_boot.py boots, as a oneshot
# unit of its systemd (PID 1 there). For each daemon that is installed: start it
# the way the system does, by a call to its bus name (D-Bus activation through
# SystemdService=), then check what systemd reports and what the kernel shows of
# the running process. One "ok"/"not ok" line each, in /run/out/result.
set -u
out=/run/out/result
: >"$out"
ok() { echo "ok - $*" >>"$out"; }
not_ok() { echo "not ok - $*" >>"$out"; }
say() { echo "# $*" >>"$out"; }
failed=0
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; failed=1; fi; }

# Polls until a command succeeds (a state systemd reports), at most $1 seconds.
wait_until() {
        local limit=$1 i=0; shift
        while ! "$@"; do
                i=$((i + 1))
                [ "$i" -gt $((limit * 10)) ] && return 1
                sleep 0.1
        done
}

prop() { systemctl show -P "$2" "$1"; }

for d in collector auditd net-worker policyd; do
        unit=callhome-$d.service
        exe=/usr/libexec/callhome/callhome-$d
        if [ ! -x "$exe" ]; then
                say "$unit: $exe not built yet, not started"
                continue
        fi
        if [ "$d" = auditd ]; then
                # ConditionPathExists=: the keys are set up once, before the first start.
                keys=$(/run/out/callhome-audit setup-keys --dir=/var/lib/callhome/audit --origin=test.callhome/audit 2>&1)
                check "$unit: callhome-audit setup-keys$(test -e /var/lib/callhome/audit/seal.key || echo ": $keys")" \
                        test -e /var/lib/callhome/audit/seal.key
        fi
        if [ "$d" = net-worker ]; then
                # Its configuration (CACertificates= is required): a throw-away CA, readable by callhome-net.
                install -d -m 0755 /run/callhome-test
                openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
                        -subj /CN=units-boot-test -days 1 -out /run/callhome-test/ca.crt 2>/dev/null
                printf 'CACertificates=/run/callhome-test/ca.crt\n' >/run/callhome-test/net-worker.conf
                chmod 0644 /run/callhome-test/ca.crt /run/callhome-test/net-worker.conf
        fi
        bus=$(prop "$unit" BusName)
        path=/org/callhome/${bus##*.}
        check "$unit: a call to $bus starts it (D-Bus activation) and is answered" \
                busctl --timeout=30 introspect "$bus" "$path" >/dev/null
        check "$unit: active (running): READY=1 reached systemd" \
                test "$(prop "$unit" ActiveState)/$(prop "$unit" SubState)" = active/running
        pid=$(prop "$unit" MainPID)
        if [ "$pid" = 0 ]; then
                journalctl -b --no-pager -o short-monotonic | grep -F -e "$unit" -e "callhome-$d" >"/run/out/journal-$d"
                continue
        fi
        status=$(cat "/proc/$pid/status")
        field() { awk -v k="$1:" '$1 == k { print $2 }' <<<"$status"; }
        user=$(prop "$unit" User)
        check "$unit: runs as $user" test "$(field Uid)" = "$(id -u "$user")"
        check "$unit: no capabilities, empty bounding set" test "$(field CapEff)$(field CapBnd)" = 00000000000000000000000000000000
        check "$unit: no_new_privs" test "$(field NoNewPrivs)" = 1
        # systemd's filters (SystemCallFilter=, RestrictAddressFamilies=, ...) and the daemon's own.
        check "$unit: seccomp filters loaded: $(field Seccomp_filters)" test "$(field Seccomp_filters)" -ge 3
        # The watchdog: systemd records each WATCHDOG=1 (WatchdogSec=2s here, by a drop-in).
        t0=$(prop "$unit" WatchdogTimestampMonotonic)
        check "$unit: WATCHDOG=1 from its event loop" \
                wait_until 10 bash -c "[ \"\$(systemctl show -P WatchdogTimestampMonotonic $unit)\" != '$t0' ]"
        warnings=$(journalctl -b -u "$unit" --no-pager -o cat | grep -i -E 'warning|denied|cannot' || true)
        check "$unit: no warning in its journal${warnings:+: $warnings}" test -z "$warnings"
        score=$(systemd-analyze security --no-pager "$unit" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
        say "$unit: systemd-analyze security (online, as loaded by PID 1): $score"
        # Restart=on-failure: a crash brings it back.
        kill -SEGV "$pid"
        check "$unit: restarted after a crash (Restart=on-failure)" \
                wait_until 30 bash -c "[ \"\$(systemctl show -P NRestarts $unit)\" = 1 ] && [ \"\$(systemctl show -P SubState $unit)\" = running ]"
        systemctl stop "$unit"
        check "$unit: stops cleanly" test "$(prop "$unit" Result)" = success
        # What systemd and the daemon said, for the test's log when something failed.
        [ "$failed" = 0 ] || journalctl -b --no-pager -o short-monotonic _PID=1 + _SYSTEMD_UNIT="$unit" \
                | grep -F -e "$unit" -e "callhome-$d" >"/run/out/journal-$d"
done
echo done >>"$out"
