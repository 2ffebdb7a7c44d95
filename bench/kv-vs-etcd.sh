#!/usr/bin/env bash
# keel-kv against etcd, on the same disk, under the same load tool (kv-load).
#
# Starts a 3-member etcd on 127.0.0.1 (Debian's etcd-server, installed if
# missing) and a 3-member keel-kv side by side, then runs kv-load against
# each in turn at each client count, for several rounds (which system goes
# first alternates), so that both see the same moments of a shared machine.
# Each run lists the current leader's endpoint first: the single client
# writes to the leader on both systems, as the floor below assumes.
# Prints each point as it runs, then a table of medians over the rounds:
# writes/s and p50/p99 for both, and the median of the rounds' keel/etcd
# ratios, with the machine's fdatasync/loopback floor measured before and
# after. Only processes this script started are stopped (by pid). See
# docs/benchmarks.md, "keel-kv vs etcd".
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/kv-vs-etcd.sh [--etcd-only | --keel-only] [--clients "1 8 64 256"]
                           [--rounds N] [--duration SECS] [--warmup SECS]
                           [--keys N] [--value-size BYTES] [--no-build] [--keep]

  --etcd-only     run only the etcd half (no keel-kv binary needed)
  --keel-only     run only the keel-kv half
  --clients LIST  client counts, space- or comma-separated (default "1 8 64 256")
  --rounds N      rounds over every client count; the table gives medians
                  (default 3)
  --duration S    measured seconds per run (default 10)
  --warmup S      unmeasured seconds before each run (default 2)
  --keys N        key space (default 1000)
  --value-size B  value bytes (default 256)
  --no-build      use the binaries already in the target dir
  --keep          keep the data directory afterwards

environment: BENCH_DIR (data directory; default a new temp dir under /tmp),
PORT_BASE (default 23700; uses PORT_BASE+1..3 and +11..13 for etcd,
+21..23 and +31..33 for keel-kv), ETCD (etcd binary; default `etcd`),
CARGO_TARGET_DIR.
EOF
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Processes we start are stopped by pid on every exit (bench/lib.sh).
SCRIPT_NAME=kv-vs-etcd
. "$ROOT/bench/lib.sh"

RUN_ETCD=1
RUN_KEEL=1
CLIENTS="1 8 64 256"
ROUNDS=3
DURATION=10
WARMUP=2
KEYS=1000
VALUE_SIZE=256
BUILD=1
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
    --etcd-only) RUN_KEEL=0 ;;
    --keel-only) RUN_ETCD=0 ;;
    --clients) CLIENTS=${2:?--clients needs a value}; shift ;;
    --rounds) ROUNDS=${2:?--rounds needs a value}; shift ;;
    --duration) DURATION=${2:?--duration needs a value}; shift ;;
    --warmup) WARMUP=${2:?--warmup needs a value}; shift ;;
    --keys) KEYS=${2:?--keys needs a value}; shift ;;
    --value-size) VALUE_SIZE=${2:?--value-size needs a value}; shift ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
CLIENTS=${CLIENTS//,/ }
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds needs a positive whole number, not $ROUNDS"
[ "$RUN_ETCD$RUN_KEEL" != 00 ] || die "--etcd-only and --keel-only exclude each other"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
KV_LOAD=$TARGET_DIR/release/kv-load
KEEL_KV=$TARGET_DIR/release/keel-kv
ETCD=${ETCD:-etcd}
PORT_BASE=${PORT_BASE:-23700}

# --- build and tools -------------------------------------------------------
if [ "$RUN_KEEL" = 1 ] && [ ! -f "$ROOT/crates/keel-kv/Cargo.toml" ] && [ "$BUILD" = 1 ]; then
    die "crates/keel-kv is not in this checkout, so there is no keel-kv binary to run; use --etcd-only"
fi
if [ "$BUILD" = 1 ]; then
    packages=(-p keel-bench --bin kv-load)
    [ "$RUN_KEEL" = 0 ] || packages+=(-p keel-kv --bin keel-kv)
    echo "building: cargo build --release ${packages[*]}"
    (cd "$ROOT" && cargo build --release "${packages[@]}") || die "build failed"
fi
[ -x "$KV_LOAD" ] || die "no $KV_LOAD: run cargo build --release -p keel-bench --bin kv-load"
if [ "$RUN_KEEL" = 1 ] && [ ! -x "$KEEL_KV" ]; then
    die "no keel-kv binary at $KEEL_KV: run cargo build --release -p keel-kv --bin keel-kv, or use --etcd-only"
fi
if [ "$RUN_ETCD" = 1 ] && ! command -v "$ETCD" >/dev/null; then
    echo "etcd not found: installing Debian's etcd-server"
    SUDO=
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || die "etcd is missing and sudo is not available: install etcd-server as root"
        SUDO=sudo
    fi
    if ! $SUDO apt-get install -y etcd-server; then
        { $SUDO apt-get update && $SUDO apt-get install -y etcd-server; } ||
            die "apt-get install etcd-server failed"
    fi
    command -v "$ETCD" >/dev/null || die "etcd-server installed but no $ETCD on PATH"
fi
command -v curl >/dev/null || die "curl is needed for the health checks"

if [ -n "${BENCH_DIR:-}" ]; then
    mkdir -p "$BENCH_DIR"
else
    BENCH_DIR=$(mktemp -d /tmp/kv-vs-etcd.XXXXXX)
    CREATED_DIR=$BENCH_DIR
fi
echo "data directory: $BENCH_DIR ($(df -P "$BENCH_DIR" | awk 'NR == 2 { print $1 }'))"

# etcd's /health says {"health":"true"} (keel-kv's is in bench/lib.sh).
healthy_etcd() {
    curl -fsS --max-time 1 "$1" 2>/dev/null | grep -q '"health":"true"'
}

json_errors() {
    sed -n 's/.*"errors":\({[^}]*}\).*/\1/p' <<<"$1"
}

declare -A RESULT
# run_load NAME ENDPOINTS CLIENTS ROUND: one kv-load point.
run_load() {
    local name=$1 endpoints=$2 c=$3 r=$4 line
    line=$("$KV_LOAD" --target "$name" --endpoints "$endpoints" --clients "$c" \
        --duration "$DURATION" --warmup "$WARMUP" --keys "$KEYS" \
        --value-size "$VALUE_SIZE" --op put --json) || die "kv-load against $name failed"
    RESULT[$name,$c,$r]=$line
    printf 'round %s %-4s %4s clients: %10.0f writes/s  p50 %7.3f ms  p99 %7.3f ms  errors %s\n' \
        "$r" "$name" "$c" "$(json_num "$line" ops_per_s)" "$(json_num "$line" p50_ms)" \
        "$(json_num "$line" p99_ms)" "$(json_errors "$line")"
}

# --- baseline --------------------------------------------------------------
probe() {
    "$KV_LOAD" --probe --probe-dir "$BENCH_DIR" || die "kv-load --probe failed"
}
PROBE_BEFORE=$(probe)
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "probe in $BENCH_DIR, $PROBE_BEFORE"

# --- the two clusters ------------------------------------------------------
# start_etcd N CLIENT_PORT PEER_PORT CLUSTER: runs (exec) member N.
start_etcd() {
    local client=http://127.0.0.1:$2 peer=http://127.0.0.1:$3
    exec "$ETCD" --name "m$1" --data-dir "$BENCH_DIR/etcd/$1" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "$4" --initial-cluster-state new \
        --initial-cluster-token kv-vs-etcd
}

declare -A ENDPOINTS
# start_cluster NAME MEMBER_PREFIX CLIENT_OFFSET: starts 3 members (client
# ports PORT_BASE+CLIENT_OFFSET+n, peer ports 10 above) and waits until they
# are healthy; their client URLs go to ENDPOINTS[NAME].
start_cluster() {
    local name=$1 prefix=$2 offset=$3 cluster= endpoints= n
    mkdir -p "$BENCH_DIR/$name"
    for n in 1 2 3; do
        check_ports $((PORT_BASE + offset + n)) $((PORT_BASE + offset + 10 + n))
        cluster+="${cluster:+,}$prefix$n=http://127.0.0.1:$((PORT_BASE + offset + 10 + n))"
        endpoints+="${endpoints:+,}http://127.0.0.1:$((PORT_BASE + offset + n))"
    done
    for n in 1 2 3; do
        "start_$name" "$n" $((PORT_BASE + offset + n)) $((PORT_BASE + offset + 10 + n)) \
            "$cluster" >"$BENCH_DIR/$name/$n.log" 2>&1 &
        PIDS+=($!)
    done
    local urls
    IFS=, read -ra urls <<<"$endpoints"
    wait_healthy "$name" "${urls[@]/%//health}"
    ENDPOINTS[$name]=$endpoints
    echo "$name: 3 members healthy"
}

# is_leader NAME URL: whether the member at URL leads its cluster now.
is_leader() {
    local body
    case $1 in
    etcd)
        body=$(curl -fsS --max-time 1 -X POST "$2/v3/maintenance/status" -d '{}' 2>/dev/null) ||
            return 1
        local id lead
        id=$(sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p' <<<"$body")
        lead=$(sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p' <<<"$body")
        [ -n "$id" ] && [ "$id" = "$lead" ]
        ;;
    keel)
        body=$(curl -fsS --max-time 1 "$2/status" 2>/dev/null) || return 1
        [ "$(json_num "$body" id)" = "$(json_num "$body" leader)" ]
        ;;
    esac
}

# leader_first NAME ENDPOINTS: the same endpoints, the leader's first. The
# floor (client to leader, leader to follower) describes a write sent to
# the leader, so kv-load's first client, the only one at 1 client, talks to
# it on both systems; a follower would add a forward.
leader_first() {
    local urls u first="" rest=""
    IFS=, read -ra urls <<<"$2"
    for u in "${urls[@]}"; do
        if [ -z "$first" ] && is_leader "$1" "$u"; then first=$u; else rest+="${rest:+,}$u"; fi
    done
    echo "$first${first:+${rest:+,}}$rest"
}

SYSTEMS=()
if [ "$RUN_ETCD" = 1 ]; then
    echo "etcd: $("$ETCD" --version 2>/dev/null | head -1)"
    start_cluster etcd m 0
    SYSTEMS+=(etcd)
fi
if [ "$RUN_KEEL" = 1 ]; then
    start_cluster keel "" 20
    SYSTEMS+=(keel)
fi

# Both clusters stay up (an idle one only heartbeats); each point runs
# against one of them while the other idles, and the order alternates by
# round, so a slow spell of the host hits both systems alike.
for ((r = 1; r <= ROUNDS; r++)); do
    order=("${SYSTEMS[@]}")
    if ((r % 2 == 0)) && ((${#order[@]} == 2)); then order=("${order[1]}" "${order[0]}"); fi
    for c in $CLIENTS; do
        for name in "${order[@]}"; do
            run_load "$name" "$(leader_first "$name" "${ENDPOINTS[$name]}")" "$c" "$r"
        done
    done
done
stop_pids
PROBE_AFTER=$(probe)

# --- table -----------------------------------------------------------------
# median VALUE...: the middle value (the mean of the two middle ones for an
# even count), or - if none.
median() {
    printf '%s\n' "$@" | { grep -v '^-$' || true; } | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
field() { # field NAME CLIENTS ROUND FIELD
    local line=${RESULT[$1,$2,$3]:-}
    if [ -n "$line" ]; then json_num "$line" "$4"; else echo -; fi
}
median_field() { # median_field NAME CLIENTS FIELD
    local r values=()
    for ((r = 1; r <= ROUNDS; r++)); do values+=("$(field "$1" "$2" "$r" "$3")"); done
    median "${values[@]}"
}
whole() { # whole VALUE: rounded to a whole number, or -
    if [ "$1" = - ]; then echo -; else printf '%.0f' "$1"; fi
}
ratio() {
    awk -v k="$1" -v e="$2" 'BEGIN { if (k == "-" || e == "-" || e == 0) print "-"; else printf "%.2f", k / e }'
}
echo
echo "kv-load put, ${VALUE_SIZE}-byte values, $KEYS keys, ${DURATION}s per run (+${WARMUP}s warmup), 3 members each;"
echo "medians of $ROUNDS rounds; keel/etcd is the median of the rounds' ratios (each round's in brackets)"
printf '%7s | %13s %9s %9s | %13s %9s %9s | %9s %s\n' clients "etcd writes/s" "p50 ms" "p99 ms" \
    "keel writes/s" "p50 ms" "p99 ms" keel/etcd "(rounds)"
for c in $CLIENTS; do
    ratios=()
    for ((r = 1; r <= ROUNDS; r++)); do
        ratios+=("$(ratio "$(field keel "$c" "$r" ops_per_s)" "$(field etcd "$c" "$r" ops_per_s)")")
    done
    m=$(median "${ratios[@]}")
    [ "$m" = - ] || m=$(printf '%.2f' "$m")
    printf '%7s | %13s %9s %9s | %13s %9s %9s | %9s (%s)\n' "$c" \
        "$(whole "$(median_field etcd "$c" ops_per_s)")" \
        "$(median_field etcd "$c" p50_ms)" "$(median_field etcd "$c" p99_ms)" \
        "$(whole "$(median_field keel "$c" ops_per_s)")" \
        "$(median_field keel "$c" p50_ms)" "$(median_field keel "$c" p99_ms)" \
        "$m" "${ratios[*]}"
done
echo "floor before: ${PROBE_BEFORE#*; floor }"
echo "floor after:  ${PROBE_AFTER#*; floor }"
