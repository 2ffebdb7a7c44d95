# Shared by the bench/ scripts (sourced, not run): processes started by the
# script are tracked by pid and stopped on exit; bounded health waits.
# The sourcing script sets BENCH_DIR, KEEP and CREATED_DIR, and defines
# healthy_NAME for each kind of member it waits on.

SCRIPT_NAME=${SCRIPT_NAME:-$(basename "$0")}
CREATED_DIR=${CREATED_DIR:-}
KEEP=${KEEP:-0}

die() {
    echo "$SCRIPT_NAME: $*" >&2
    # Keep the logs a failure points to.
    [ -z "$CREATED_DIR" ] || KEEP=1
    exit 1
}

PIDS=()
# stop_pids: SIGTERM every process we started, SIGKILL after 10 s.
stop_pids() {
    local pid i
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
cleanup() {
    stop_pids
    if [ -n "$CREATED_DIR" ] && [ "$KEEP" = 0 ]; then
        rm -rf "$CREATED_DIR"
    elif [ -n "${BENCH_DIR:-}" ]; then
        echo "data and logs kept in $BENCH_DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
check_ports() {
    local p
    for p in "$@"; do
        port_free "$p" || die "port $p on 127.0.0.1 is in use; set PORT_BASE to another range"
    done
}

# keel-kv's /health answers 200 with a leader and caught up.
healthy_keel() {
    [ "$(curl -sS -o /dev/null --max-time 1 -w '%{http_code}' "$1" 2>/dev/null)" = 200 ]
}

# wait_healthy NAME URL...: bounded wait until healthy_NAME holds for every
# URL; fails at once if a member exits.
wait_healthy() {
    local name=$1
    shift
    local url i
    for url in "$@"; do
        for ((i = 0; ; i++)); do
            "healthy_$name" "$url" && break
            local pid
            for pid in "${PIDS[@]}"; do
                kill -0 "$pid" 2>/dev/null || die "a $name member exited; logs in $BENCH_DIR/$name/*.log"
            done
            [ "$i" -lt 300 ] || die "$name not healthy at $url after 30 s; logs in $BENCH_DIR/$name/*.log"
            sleep 0.1
        done
    done
}

# start_keel N CLIENT_PORT PEER_PORT CLUSTER [FLAGS...]: runs (exec) member N.
start_keel() {
    local n=$1 client=$2 peer=$3 cluster=$4
    shift 4
    exec "$KEEL_KV" serve --id "$n" --initial-cluster "$cluster" \
        --listen-client "127.0.0.1:$client" --listen-peer "127.0.0.1:$peer" \
        --data-dir "$BENCH_DIR/keel/$n" "$@"
}

# json_num LINE FIELD: a number out of a flat JSON line.
json_num() {
    sed -n "s/.*\"$2\":\([-0-9.eE+]*\).*/\1/p" <<<"$1"
}
