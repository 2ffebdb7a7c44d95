#!/usr/bin/env bash
# A soak of a 3-member keel-kv: closed-loop writes (kv-load) for a long time
# while a sampler records each member's resident memory, data directory size,
# WAL segments, snapshot files and applied index. At the end it compares the
# first and the second half of the run: memory and disk must stay bounded
# (snapshots and compaction), every member must still be alive, and the
# applied index must keep moving. Exit 0 bounded, 1 not (or a member died).
# Only processes this script started are stopped (by pid).
set -euo pipefail

usage() {
    cat <<'EOF2'
usage: bench/kv-soak.sh [--duration SECS] [--clients N] [--keys N] [--value-size B]
                        [--interval SECS] [--snapshot-count N] [--no-build] [--keep]

  --duration S        seconds of load (default 3600)
  --clients N         closed-loop writers (default 16)
  --keys N            key space; the state is bounded by it (default 100000)
  --value-size B      value bytes (default 256)
  --interval S        seconds between samples (default 30)
  --snapshot-count N  keel-kv's --snapshot-count (default keel-kv's, 10000)
  --no-build          use the binaries already in the target dir
  --keep              keep the data directory and the samples afterwards

environment: BENCH_DIR (default a new temp dir under /tmp), PORT_BASE
(default 23800; uses PORT_BASE+1..3 and +11..13), CARGO_TARGET_DIR.
EOF2
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCRIPT_NAME=kv-soak
. "$ROOT/bench/lib.sh"

DURATION=3600
CLIENTS=16
KEYS=100000
VALUE_SIZE=256
INTERVAL=30
SNAP_FLAGS=()
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
    --duration) DURATION=${2:?--duration needs a value}; shift ;;
    --clients) CLIENTS=${2:?--clients needs a value}; shift ;;
    --keys) KEYS=${2:?--keys needs a value}; shift ;;
    --value-size) VALUE_SIZE=${2:?--value-size needs a value}; shift ;;
    --interval) INTERVAL=${2:?--interval needs a value}; shift ;;
    --snapshot-count) SNAP_FLAGS=(--snapshot-count "${2:?--snapshot-count needs a value}"); shift ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
[ "$DURATION" -ge $((4 * INTERVAL)) ] || die "--duration must be at least 4 intervals"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
KV_LOAD=$TARGET_DIR/release/kv-load
KEEL_KV=$TARGET_DIR/release/keel-kv
PORT_BASE=${PORT_BASE:-23800}
if [ "$BUILD" = 1 ]; then
    echo "building: cargo build --release -p keel-bench --bin kv-load -p keel-kv --bin keel-kv"
    (cd "$ROOT" && cargo build --release -p keel-bench --bin kv-load -p keel-kv --bin keel-kv) ||
        die "build failed"
fi
[ -x "$KV_LOAD" ] && [ -x "$KEEL_KV" ] || die "no release kv-load/keel-kv in $TARGET_DIR/release"
command -v curl >/dev/null || die "curl is needed for the health checks"

if [ -n "${BENCH_DIR:-}" ]; then
    mkdir -p "$BENCH_DIR"
else
    BENCH_DIR=$(mktemp -d /tmp/kv-soak.XXXXXX)
    CREATED_DIR=$BENCH_DIR
fi
mkdir -p "$BENCH_DIR/keel"

cluster= endpoints=
for n in 1 2 3; do
    check_ports $((PORT_BASE + n)) $((PORT_BASE + 10 + n))
    cluster+="${cluster:+,}$n=http://127.0.0.1:$((PORT_BASE + 10 + n))"
    endpoints+="${endpoints:+,}http://127.0.0.1:$((PORT_BASE + n))"
done
MEMBER_PIDS=()
for n in 1 2 3; do
    start_keel "$n" $((PORT_BASE + n)) $((PORT_BASE + 10 + n)) "$cluster" "${SNAP_FLAGS[@]}" \
        >"$BENCH_DIR/keel/$n.log" 2>&1 &
    PIDS+=($!)
    MEMBER_PIDS+=($!)
done
IFS=, read -ra urls <<<"$endpoints"
wait_healthy keel "${urls[@]/%//health}"
echo "keel-kv: 3 members healthy; data in $BENCH_DIR; ${DURATION}s of load, $CLIENTS clients," \
    "$KEYS keys, ${VALUE_SIZE}-byte values; a sample every ${INTERVAL}s"

"$KV_LOAD" --target keel --endpoints "$endpoints" --clients "$CLIENTS" --duration "$DURATION" \
    --warmup 0 --keys "$KEYS" --value-size "$VALUE_SIZE" --op put --timeout 30 --json \
    >"$BENCH_DIR/load.json" 2>"$BENCH_DIR/load.log" &
LOAD_PID=$!
PIDS+=("$LOAD_PID")

# sample N: member N's rss KiB, data KiB, segments, snapshots, applied index.
sample() {
    local n=$1 pid=${MEMBER_PIDS[$(($1 - 1))]} dir=$BENCH_DIR/keel/$1 rss applied
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || rss=
    [ -n "$rss" ] || die "member $n (pid $pid) is gone; its log: $BENCH_DIR/keel/$n.log"
    applied=$(curl -fsS --max-time 2 "${urls[$((n - 1))]}/status" 2>/dev/null |
        sed -n 's/.*"applied":\([0-9]*\).*/\1/p') || applied=
    printf '%s %s %s %s %s' "$rss" "$(du -sk "$dir" | cut -f1)" \
        "$(find "$dir" -name '*.wal' | wc -l)" "$(find "$dir" -name '*.snap' | wc -l)" "${applied:--}"
}

SAMPLES=$BENCH_DIR/samples.txt
: >"$SAMPLES"
printf '%6s | %-44s | %-44s | %-44s\n' secs "member 1: rss MiB, data MiB, wal, snap, applied" \
    "member 2" "member 3"
start=$(date +%s)
while kill -0 "$LOAD_PID" 2>/dev/null; do
    sleep "$INTERVAL"
    kill -0 "$LOAD_PID" 2>/dev/null || break
    t=$(($(date +%s) - start))
    line="$t"
    row=$(printf '%6s' "$t")
    for n in 1 2 3; do
        # `die` inside the substitution only ends its subshell: stop here too.
        s=$(sample "$n") || die "sampling member $n failed"
        read -r rss data wal snap applied <<<"$s"
        line+=" $rss $data $applied"
        row+=$(printf ' | %8.1f %9.1f %5s %5s %12s' "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" \
            "$(awk -v k="$data" 'BEGIN { print k / 1024 }')" "$wal" "$snap" "$applied")
    done
    echo "$line" >>"$SAMPLES"
    echo "$row"
done
wait "$LOAD_PID" || die "kv-load failed: $(tail -3 "$BENCH_DIR/load.log")"
load=$(cat "$BENCH_DIR/load.json")
echo "load: $(json_num "$load" ops_per_s) writes/s, p99 $(json_num "$load" p99_ms) ms"
for pid in "${MEMBER_PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || die "a member died during the soak; logs in $BENCH_DIR/keel"
done
# The kernel's high-water mark catches the short peaks (a snapshot being
# encoded and written) that a sample every --interval seconds misses.
hwm=
for n in 1 2 3; do
    kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/${MEMBER_PIDS[$((n - 1))]}/status" 2>/dev/null) || kib=
    hwm+="${hwm:+, }member $n $(awk -v k="${kib:-0}" 'BEGIN { printf "%.1f", k / 1024 }')"
done
echo "peak rss MiB (VmHWM over the whole run): $hwm"

# Bounded: the second half's peaks within 25% (plus 16 MiB of slack for
# allocator noise) of the first half's, and the applied index still moving.
# The second half's peak is its second-highest sample: one sample taken
# while a snapshot is being encoded (a transient peak of tens of MiB) must
# not decide a short run; growth shows in every later sample.
awk -v slack=16384 '
    { t[NR] = $1; for (i = 2; i <= NF; i++) v[NR, i] = $i; cols = NF }
    END {
        half = int(NR / 2); bad = 0
        for (i = 2; i <= cols; i++) {
            kind = (i - 2) % 3; member = int((i - 2) / 3) + 1
            if (kind == 2) {
                if (v[NR, i] <= v[half, i]) { printf "member %d: applied index stalled\n", member; bad = 1 }
                continue
            }
            a = 0; b = 0; b2 = 0
            for (r = 1; r <= half; r++) if (v[r, i] > a) a = v[r, i]
            for (r = half + 1; r <= NR; r++) {
                if (v[r, i] > b) { b2 = b; b = v[r, i] } else if (v[r, i] > b2) b2 = v[r, i]
            }
            if (NR - half > 1) b = b2
            name = kind == 0 ? "rss" : "data"
            verdict = b <= 1.25 * a + slack ? "bounded" : "GROWING"
            if (verdict == "GROWING") bad = 1
            printf "member %d %-4s peak MiB: first half %8.1f, second half %8.1f (2nd highest)  %s\n", member, name, a / 1024, b / 1024, verdict
        }
        exit bad
    }' "$SAMPLES" || die "memory or disk kept growing (samples in $SAMPLES)"
echo "verdict: bounded"
