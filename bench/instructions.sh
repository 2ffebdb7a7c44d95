#!/usr/bin/env bash
# Instructions per committed entry, Keel against raft-rs, under callgrind.
#
# Instruction counts do not depend on the load of a shared machine, unlike
# the timed figures of vs-raft-rs. Each side runs the vs-raft-rs workload
# for a fixed number of applied entries (--entries); callgrind counts only
# the instructions executed inside workload::drive_window (the measured
# loop: proposing, delivering, Ready handling, storage, compaction), and
# the count is divided by the entries the leader applied in it.
#
# Usage: bench/instructions.sh [ENTRIES] [WORKLOAD...]
#   ENTRIES   applied entries per run (default 40000; 4 compactions)
#   WORKLOAD  single batch single64 batch64 (default: all four)
# SIDES="keel raft-rs keel-move" selects the sides (default: keel raft-rs).
set -euo pipefail
cd "$(dirname "$0")/.."

entries=${1:-40000}
shift || true
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(single batch single64 batch64)
read -r -a sides <<<"${SIDES:-keel raft-rs}"

command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 1; }
cargo build -q -p keel-bench --profile bench --bin vs-raft-rs
# The bench profile builds into target/release (it inherits the release
# profile, directory included).
bin=target/release/vs-raft-rs
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

printf '%-9s %-10s %10s %16s %14s\n' workload side entries instructions "per entry"
for w in "${workloads[@]}"; do
    for side in "${sides[@]}"; do
        log="$out/$w-$side.log"
        valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*drive_window*' \
            --callgrind-out-file="$out/$w-$side.cg" \
            "$bin" --side "$side" --mode "$w" --rounds 1 --skip-latency --entries "$entries" \
            >"$log" 2>&1
        ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out/$w-$side.cg")
        n=$(sed -n 's/.*(\([0-9]*\) entries,.*/\1/p' "$log")
        if [ -z "$ir" ] || [ -z "$n" ] || [ "$n" -eq 0 ]; then
            echo "no count for $w/$side; valgrind said:" >&2
            cat "$log" >&2
            exit 1
        fi
        printf '%-9s %-10s %10d %16d %14.0f\n' "$w" "$side" "$n" "$ir" "$(awk -v a="$ir" -v b="$n" 'BEGIN { print a / b }')"
    done
done
