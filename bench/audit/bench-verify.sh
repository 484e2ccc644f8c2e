#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# callhome-audit verify on a log of >= 1 GiB, sequential (--threads=1) and with
# its default threads (one per CPU, at most 8), against `openssl speed -evp
# sha256` (single core) and against `journalctl --verify` on a journal holding
# the same records, once as systemd-journal-remote writes it by default
# (compressed) and once uncompressed, as the audit log is. Run by hand (not a
# meson test):
#   bench/audit/bench-verify.sh [BUILD-DIR] [GIB] [PAYLOAD]
# The ratios depend on the record size: journalctl pays per entry, SHA-256 per
# byte. A metered check-in or meter read is 0.2-2 KiB; software chunks 256 KiB.
set -eu
BUILD=${1:-build}
GIB=${2:-1}
PAYLOAD=${3:-8192}
CLI=$BUILD/auditd/callhome-audit
TOOL=$BUILD/tests/audit/audit-testtool
W=$(mktemp -d /var/tmp/audit-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
N=$(( GIB * 1024 * 1024 * 1024 / (PAYLOAD + 180) + 1 ))

echo "== generating $N records of $PAYLOAD bytes (seal every 1000, checkpoint every 5000) in $W/log"
$CLI setup-keys --dir="$W/log" --origin=bench/audit > "$W/keys.txt"
KEY=$(grep -E '^ +[0-9a-f]{64}$' "$W/keys.txt" | tr -d ' ')
$TOOL gen "$W/log" $N $PAYLOAD 1000 5000 64M > /dev/null
BYTES=$(cat "$W"/log/*.seg | wc -c)
echo "log: $BYTES bytes in $(ls "$W"/log/*.seg | wc -l) segments"
cat "$W"/log/*.seg > /dev/null   # warm the page cache, as for the others

now() { date +%s.%N; }
echo "== callhome-audit verify --threads=1 (sequential)"
t0=$(now); $CLI verify --dir="$W/log" --key="$KEY" --no-progress --threads=1; t1=$(now)
T_SEQ=$(echo "$t1 - $t0" | bc -l)
MBS_SEQ=$(echo "$BYTES / $T_SEQ / 1000000" | bc -l)
NPROC=$(nproc)
THREADS=$(( NPROC < 8 ? NPROC : 8 ))
echo "== callhome-audit verify (default: $THREADS thread(s); nproc $NPROC)"
t0=$(now); $CLI verify --dir="$W/log" --key="$KEY" --no-progress --quiet; t1=$(now)
T_PAR=$(echo "$t1 - $t0" | bc -l)
MBS_PAR=$(echo "$BYTES / $T_PAR / 1000000" | bc -l)

echo "== openssl speed -evp sha256 -bytes 16384 -seconds 3 (one core)"
SHA_KBS=$(openssl speed -evp sha256 -bytes 16384 -seconds 3 2>/dev/null | awk '/^sha256/ {print $2}' | tr -d k)
MBS_SHA=$(echo "$SHA_KBS / 1000" | bc -l)
# The same, hashing one record's worth at a time (each record is hashed on its own).
REC=$(( PAYLOAD + 184 ))
SHA_REC_KBS=$(openssl speed -evp sha256 -bytes $REC -seconds 3 2>/dev/null | awk '/^sha256/ {print $2}' | tr -d k)
MBS_SHA_REC=$(echo "$SHA_REC_KBS / 1000" | bc -l)

$CLI export --dir="$W/log" --journal-export > "$W/export"
journal() { # name, extra options of systemd-journal-remote; prints the seconds journalctl --verify took
        j=$W/$1; shift
        mkdir "$j"
        /usr/lib/systemd/systemd-journal-remote -o "$j/same.journal" --split-mode=none "$@" "$W/export" 2>/dev/null
        echo "journal ($(basename "$j")): $(cat "$j"/*.journal | wc -c) bytes in $(ls "$j" | wc -l) file(s)" >&2
        cat "$j"/*.journal > /dev/null
        t0=$(now)
        journalctl --verify --file="$j/*.journal" > "$j.out" 2>&1 || { cat "$j.out" >&2; echo "journalctl --verify failed" >&2; exit 1; }
        t1=$(now)
        echo "$t1 - $t0" | bc -l
}
echo "== journalctl --verify on the same records: systemd-journal-remote's default (compressed), and --compress=no"
T_JOURNAL_DEF=$(journal default)
T_JOURNAL=$(journal plain --compress=no)
rm -f "$W/export"

printf '\nlog: %d bytes, %d-byte payloads; nproc %d\n' "$BYTES" "$PAYLOAD" "$NPROC"
printf 'verify --threads=1:          %8.2f s  %8.1f MB/s\n' "$T_SEQ" "$MBS_SEQ"
printf 'verify (default, %d thr):    %8.2f s  %8.1f MB/s\n' "$THREADS" "$T_PAR" "$MBS_PAR"
printf 'openssl sha256 (one core, 16 KiB blocks):   %8.1f MB/s\n' "$MBS_SHA"
printf 'openssl sha256 (one core, %d-byte blocks):  %8.1f MB/s\n' "$REC" "$MBS_SHA_REC"
printf 'journalctl --verify (default, compressed): %8.2f s\n' "$T_JOURNAL_DEF"
printf 'journalctl --verify (--compress=no):       %8.2f s\n' "$T_JOURNAL"
printf 'ratio verify/sha256-1core, --threads=1:      %.2f   (goal >= 0.50)\n' "$(echo "$MBS_SEQ / $MBS_SHA" | bc -l)"
printf 'ratio verify/sha256-1core, default threads:  %.2f   (goal >= 0.50)\n' "$(echo "$MBS_PAR / $MBS_SHA" | bc -l)"
printf 'ratio verify/sha256 of one record, --threads=1: %.2f\n' "$(echo "$MBS_SEQ / $MBS_SHA_REC" | bc -l)"
printf 'speed-up vs journalctl default, --threads=1:       %.1fx  (goal >= 5x)\n' "$(echo "$T_JOURNAL_DEF / $T_SEQ" | bc -l)"
printf 'speed-up vs journalctl default, default threads:   %.1fx  (goal >= 5x)\n' "$(echo "$T_JOURNAL_DEF / $T_PAR" | bc -l)"
printf 'speed-up vs journalctl uncompressed, --threads=1:  %.1fx  (goal >= 5x)\n' "$(echo "$T_JOURNAL / $T_SEQ" | bc -l)"
printf 'speed-up vs journalctl uncompressed, def. threads: %.1fx  (goal >= 5x)\n' "$(echo "$T_JOURNAL / $T_PAR" | bc -l)"
printf 'parallel speed-up (default / --threads=1):   %.2fx\n' "$(echo "$T_SEQ / $T_PAR" | bc -l)"
