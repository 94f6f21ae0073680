#!/usr/bin/env bash
# Fleet benchmarks: config propagation on a 3-node fleet, latency under load while a
# 10,000-location config is swapped every second, and memory per 1,000 locations
# (docs/benchmarks.md, "Fleet: propagation, swaps under load, memory"; targets in
# shared/spec/quality.md).
#
# Usage (from anywhere in the repository):
#   tests/bench/fleet.sh                                   # every part
#   PARTS=propagation WRITES=100 tests/bench/fleet.sh
#   PARTS=swap,memory ROUNDS=3 DURATION=5 BUILD=0 tests/bench/fleet.sh
#
# Parts:
#   propagation  etcd + louailink-control + 3 data planes (`louailink -c etcd://…`) sharing one
#                listener (SO_REUSEPORT), LOCATIONS (default 1,000) locations. WRITES (default 60)
#                writes straight into etcd (its JSON gateway, `/v3/kv/put`) and WRITES writes
#                through the REST API (`PUT /api/v1/locations/probe`), alternating, each changing
#                the `probe` location's `X-Version` header. A probe client holds one keep-alive
#                connection landed on each node (told apart by `X-Node: ${NODE_NAME}`) and polls
#                `GET /probe` every POLL_MS (default 1) ms per node: "applied" = that node
#                answers with the new version. Also recorded: when each node's
#                `/_louailink/status` shows the write's revision, and the write's own
#                acknowledgement time. Time 0 = just before the write is sent. A data plane that
#                dies while starting is restarted and counted (docs/benchmarks.md, "Known problems").
#                ETCD_TMPFS=1 puts etcd's data dir on /dev/shm, so the disk's fsync stalls drop out
#                of the figures (the "write acknowledged" column shows what is left of them).
#   swap         one data plane on files with --autoreload, SWAP_LOCATIONS (default 10,000)
#                locations, 1 worker thread, pinned to core SERVER_CPU (0); wrk (1 thread, CONNS
#                connections, keep-alive) on core CLIENT_CPU (1) requests a prefix location for
#                DURATION (default 10) s; rounds alternate "no swaps" and "a new config file
#                renamed over the old one every second" (order flipping each round, ROUNDS
#                (default 5) of each); medians of p50, p99, req/s; failed requests counted; the
#                time from each rename to /probe serving the new version; RSS after each round.
#                In both kinds of round a probe client polls /probe every 5 ms.
#                PACE_MS=n makes each wrk connection wait n ms after every response (a paced load
#                below saturation; the rate is then about CONNS x 1000 / (n + latency) req/s).
#                SERVER_CPU= / CLIENT_CPU= (empty) leave the node / wrk unpinned.
#   memory       VmRSS of one data plane (files, 1 worker thread) with MEM_SIZES locations
#                (default "0 1000 10000"; 0 = just the probe), after 20 requests, MEM_REPS
#                (default 3) times each, the sizes alternating.
#
# Generated configs (tests/bench/fleet_bench.py `location`): prefixes mostly, exact paths, exact and
# wildcard hosts, half answered by a mock plugin and half proxied; MIX=default (default) adds a
# regex path to 1 location in 10 and a regex rewrite to another 1 in 10, MIX=plain has no regex.
#
# Environment: BUILD=0 skips `cargo build --release -p louailink -p louailink-control`;
# BIN_DIR (default <target>/release); OUT (default /tmp/louailink-fleet-bench) receives the raw
# results and report.md; KEEP_TMP=1 keeps the temp dir (configs, logs).
# Every process is started here on free 127.0.0.1 ports, under `timeout` (bounded life), in its
# own process group, and stopped by that group id on exit. Only loopback traffic.
set -euo pipefail

PARTS=${PARTS:-propagation,swap,memory}
LOCATIONS=${LOCATIONS:-1000}
MIX=${MIX:-default}
WRITES=${WRITES:-60}
POLL_MS=${POLL_MS:-1}
SWAP_LOCATIONS=${SWAP_LOCATIONS:-10000}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-10}
PACE_MS=${PACE_MS:-}
ETCD_TMPFS=${ETCD_TMPFS:-}
MEM_REPS=${MEM_REPS:-3}
MEM_SIZES=${MEM_SIZES:-0 1000 10000}
BUILD=${BUILD:-1}
KEEP_TMP=${KEEP_TMP:-0}
SERVER_CPU=${SERVER_CPU-0}
CLIENT_CPU=${CLIENT_CPU-1}
OUT=${OUT:-/tmp/louailink-fleet-bench}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN_DIR=${BIN_DIR:-$TARGET_DIR/release}
HELPER="$ROOT/tests/bench/fleet_bench.py"
TOKEN="fleet-bench-$RANDOM$RANDOM"

log() { printf '[fleet-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
want() { [[ ",$PARTS," == *",$1,"* ]]; }

# ---------------------------------------------------------------- tools
need_apt=()
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v etcdctl >/dev/null || need_apt+=(etcd-client)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v curl >/dev/null || need_apt+=(curl)
command -v python3 >/dev/null || need_apt+=(python3)
command -v taskset >/dev/null || need_apt+=(util-linux)
command -v ss >/dev/null || need_apt+=(iproute2)
if ((${#need_apt[@]})); then
    log "installing ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ "$BUILD" = 1 ]; then
    log "building release: cargo build --release -p louailink -p louailink-control"
    (cd "$ROOT" && cargo build --release -p louailink -p louailink-control)
fi
[ -x "$BIN_DIR/louailink" ] || die "no $BIN_DIR/louailink"
[ -x "$BIN_DIR/louailink-control" ] || die "no $BIN_DIR/louailink-control"
if pgrep -x rustc >/dev/null || pgrep -x cc1 >/dev/null; then
    log "warning: a compiler is running on this machine: expect noisy figures"
fi

# ---------------------------------------------------------------- processes
TMP=$(mktemp -d /tmp/louailink-fleet-bench.XXXXXX)
ETCD_DATA="$TMP/etcd"
[ -z "$ETCD_TMPFS" ] || ETCD_DATA=$(mktemp -d /dev/shm/louailink-fleet-bench-etcd.XXXXXX)
mkdir -p "$OUT"
PGIDS=()
SWAPPER=
cleanup() {
    local pg
    [ -z "$SWAPPER" ] || kill -TERM "$SWAPPER" 2>/dev/null || true
    for pg in "${PGIDS[@]}"; do kill -INT -- "-$pg" 2>/dev/null || true; done
    sleep 0.3
    for pg in "${PGIDS[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
    if [ "$KEEP_TMP" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    [ -z "$ETCD_TMPFS" ] || rm -rf "$ETCD_DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Private copies: a rebuild in the shared target dir during the run must not change what runs.
mkdir -p "$TMP/bin"
cp "$BIN_DIR/louailink" "$BIN_DIR/louailink-control" "$TMP/bin/"
LOUAILINK="$TMP/bin/louailink"
CONTROL="$TMP/bin/louailink-control"

declare -A USED_PORTS=()
free_port() {
    local p
    while :; do
        # Below the kernel's ephemeral range (32768+), and used by no socket at all.
        p=$((20000 + RANDOM % 12000))
        [ -z "${USED_PORTS[$p]:-}" ] || continue
        ss -Htan "sport = :$p" | grep -q . && continue
        USED_PORTS[$p]=1; echo "$p"; return
    done
}

# Longest life of any process started here.
LIFE=${LIFE:-2400}

# start NAME CPU ENV... -- CMD...: under timeout in a new process group (CPU "" = not pinned);
# sets STARTED (the group id).
STARTED=
start() {
    local name=$1 cpu=$2; shift 2
    local envs=() pin=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    [ -z "$cpu" ] || pin=(taskset -c "$cpu")
    env "${envs[@]}" "${pin[@]}" timeout -k 5 "$LIFE" "$@" \
        >>"$TMP/$name.out" 2>&1 </dev/null &
    STARTED=$!
    PGIDS+=("$STARTED")
}

stop() { # stop PGID: SIGINT (pingora: fast shutdown), then SIGKILL
    local pg=$1 i
    kill -INT -- "-$pg" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pg" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pg" 2>/dev/null || true
    wait "$pg" 2>/dev/null || true
    local kept=()
    for i in "${PGIDS[@]}"; do [ "$i" = "$pg" ] || kept+=("$i"); done
    PGIDS=("${kept[@]}")
}

wait_for() { # WHAT TRIES CMD...: every 0.1 s
    local what=$1 tries=$2 i; shift 2
    for i in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "gave up waiting for $what (logs in $TMP; KEEP_TMP=1 keeps them)"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
machine_load() { cut -d' ' -f1-3 /proc/loadavg; }

MACHINE="$(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
log "machine: $MACHINE; load $(machine_load)"
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $MACHINE"
    echo "commit: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD -- dataplane shared controlplane 2>/dev/null || echo ' (with uncommitted changes under dataplane/shared/controlplane)')"
    echo "binaries: louailink built $(date -u -r "$BIN_DIR/louailink" '+%Y-%m-%d %H:%M:%S UTC'), louailink-control built $(date -u -r "$BIN_DIR/louailink-control" '+%Y-%m-%d %H:%M:%S UTC')"
    echo "command: PARTS=$PARTS LOCATIONS=$LOCATIONS MIX=$MIX WRITES=$WRITES POLL_MS=$POLL_MS SWAP_LOCATIONS=$SWAP_LOCATIONS ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS${PACE_MS:+ PACE_MS=$PACE_MS}${ETCD_TMPFS:+ ETCD_TMPFS=$ETCD_TMPFS} MEM_REPS=$MEM_REPS MEM_SIZES=\"$MEM_SIZES\" tests/bench/fleet.sh"
} >"$OUT/run.txt"
REPORT_ARGS=()

# ---------------------------------------------------------------- propagation
propagation() {
    local etcd_port peer_port http grpc listen etcd_pg control_pg
    etcd_port=$(free_port); peer_port=$(free_port); http=$(free_port); grpc=$(free_port)
    listen="127.0.0.1:$(free_port)"
    log "propagation: etcd 127.0.0.1:$etcd_port, control plane 127.0.0.1:$http, fleet listener $listen"
    start etcd "" -- etcd --name bench --data-dir "$ETCD_DATA" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "bench=http://127.0.0.1:$peer_port" --initial-cluster-state new
    etcd_pg=$STARTED
    wait_for etcd 300 sh -c "curl -fs http://127.0.0.1:$etcd_port/health | grep -q true"

    start control "" RUST_LOG=info -- "$CONTROL" --etcd "etcd://127.0.0.1:$etcd_port/louailink" \
        --http "127.0.0.1:$http" --grpc "127.0.0.1:$grpc" --token "$TOKEN" --log "$TMP/control.log"
    control_pg=$STARTED
    wait_for "the control plane" 300 curl -fs -o /dev/null "http://127.0.0.1:$http/api/v1/openapi.json"

    python3 "$HELPER" config "$LOCATIONS" --listen "$listen" --version 0 --mix "$MIX" >"$TMP/fleet.toml"
    log "seeding $LOCATIONS locations through the API (ctl apply)"
    "$CONTROL" ctl --server "http://127.0.0.1:$http" --token "$TOKEN" apply -f "$TMP/fleet.toml" >"$TMP/apply.out"

    local i admins="" node_pgs=() crashes=0 tries ready
    declare -A admin_of=() pg_of=()
    for i in 1 2 3; do
        admin_of[$i]=$(free_port)
        admins="$admins${admins:+,}${admin_of[$i]}"
        mkdir -p "$TMP/node-$i"
    done
    start_node() {
        start "node-$1" "" NODE_NAME="node-$1" RUST_LOG=info -- "$LOUAILINK" \
            -c "etcd://127.0.0.1:$etcd_port/louailink" --node-id "node-$1" --state-dir "$TMP/node-$1" \
            --admin "127.0.0.1:${admin_of[$1]}" --pid-file "$TMP/node-$1/pid" \
            --upgrade-sock "$TMP/node-$1/upgrade.sock" --log "$TMP/node-$1/log"
        pg_of[$1]=$STARTED
    }
    for i in 1 2 3; do start_node "$i"; done
    # Wait for every node to be ready; a node that dies on the way is restarted (and counted:
    # see "Known problems seen while measuring" in docs/benchmarks.md).
    for tries in $(seq 600); do
        ready=0
        for i in 1 2 3; do
            if ! kill -0 "${pg_of[$i]}" 2>/dev/null; then
                crashes=$((crashes + 1))
                ((crashes <= 10)) || die "data planes keep dying at start (logs in $TMP)"
                log "node-$i died at start ($(grep -m1 -o "panicked.*" "$TMP/node-$i.out" || echo "see $TMP/node-$i.out")); restarting it"
                mv "$TMP/node-$i.out" "$TMP/node-$i.crash-$crashes.out"
                stop "${pg_of[$i]}"
                start_node "$i"
            elif curl -fs -o /dev/null "http://127.0.0.1:${admin_of[$i]}/_louailink/ready"; then
                ready=$((ready + 1))
            fi
        done
        ((ready < 3)) || break
        sleep 0.1
    done
    echo "$crashes" >"$OUT/start-crashes.txt"
    for i in 1 2 3; do node_pgs+=("${pg_of[$i]}"); done
    python3 "$HELPER" wait-fleet --listen "$listen" --admins "$admins" --version 0 --timeout 60 >&2

    log "propagation: $WRITES etcd writes + $WRITES API writes, alternating (load $(machine_load))"
    python3 "$HELPER" propagation --listen "$listen" --admins "$admins" --etcd "127.0.0.1:$etcd_port" \
        --prefix /louailink --api "http://127.0.0.1:$http" --token "$TOKEN" --writes "$WRITES" \
        --interval "$POLL_MS" --out "$OUT/propagation.json" >&2
    REPORT_ARGS+=(--propagation "$OUT/propagation.json")

    # The fleet nodes' memory, for the record.
    printf 'node\tlocations\trss_kib\n' >"$OUT/fleet-rss.tsv"
    for i in 1 2 3; do
        printf 'node-%s\t%s\t%s\n' "$i" "$LOCATIONS" "$(rss_kib "$(cat "$TMP/node-$i/pid")")" >>"$OUT/fleet-rss.tsv"
    done
    for i in "${node_pgs[@]}"; do stop "$i"; done
    stop "$control_pg"
    stop "$etcd_pg"
}

# ---------------------------------------------------------------- swaps under load
applied_count() { grep -c "config applied" "$1" 2>/dev/null || true; }

swaps() {
    local dir="$TMP/swap" port url pg pid wrk_pin=()
    mkdir -p "$dir"
    port=$(free_port)
    [ -z "$CLIENT_CPU" ] || wrk_pin=(taskset -c "$CLIENT_CPU")
    local wrk_pace=()
    if [ -n "$PACE_MS" ]; then
        printf 'function delay() return %s end\n' "$PACE_MS" >"$dir/pace.lua"
        wrk_pace=(-s "$dir/pace.lua")
    fi
    for v in 0 1 2; do
        python3 "$HELPER" config "$SWAP_LOCATIONS" --listen "127.0.0.1:$port" --version "$v" --mix "$MIX" >"$dir/src-$v.toml"
    done
    cp "$dir/src-0.toml" "$dir/conf.toml"
    "$LOUAILINK" -t -c "$dir/conf.toml" >&2
    # A prefix location answered by the mock plugin, in the middle of the config (l05001 of
    # 10,000; see fleet_bench.py's `location`), or the probe for tiny configs.
    local mid=$(( SWAP_LOCATIONS / 2 / 10 * 10 + 1 ))
    url="http://127.0.0.1:$port/svc$mid/x"
    ((SWAP_LOCATIONS > 10)) || url="http://127.0.0.1:$port/probe"
    start swap-node "$SERVER_CPU" NODE_NAME=swap RUST_LOG=info -- "$LOUAILINK" -c "$dir/conf.toml" --autoreload \
        --pid-file "$dir/pid" --upgrade-sock "$dir/upgrade.sock" --log "$dir/log"
    pg=$STARTED
    wait_for "the swap node" 600 curl -fs -o /dev/null "$url"
    pid=$(cat "$dir/pid")
    local rss_start; rss_start=$(rss_kib "$pid")
    "${wrk_pin[@]}" wrk -t1 -c"$CONNS" -d2s "$url" >/dev/null   # warm-up

    printf 'round\tmode\trps\tp50\tp99\terrors\tnon2xx\tswaps\tserved_ms\trss_kib\n' >"$OUT/swaps.tsv"
    local r mode order before after swap_flag served
    for r in $(seq "$ROUNDS"); do
        if ((r % 2)); then order="none swap"; else order="swap none"; fi
        for mode in $order; do
            before=$(applied_count "$dir/log")
            swap_flag=(); [ "$mode" = none ] || swap_flag=(--swap)
            # The swapper (and its /probe polling, every 5 ms) runs in both kinds of round.
            python3 "$HELPER" swapper --dir "$dir" --listen "127.0.0.1:$port" --duration "$DURATION" \
                "${swap_flag[@]}" >"$TMP/swapper-$r-$mode.json" &
            SWAPPER=$!
            "${wrk_pin[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${wrk_pace[@]}" "$url" >"$TMP/wrk-$r-$mode.txt"
            wait "$SWAPPER" || die "the swapper failed"
            SWAPPER=
            sleep 1.5   # let a swap in progress finish before the next round
            after=$(applied_count "$dir/log")
            served=$(python3 -c 'import json,sys; print(",".join(f"{x*1000:.1f}" for x in json.load(open(sys.argv[1]))["served_s"]))' \
                "$TMP/swapper-$r-$mode.json")
            read -r rps p50 p99 errors non2xx < <(python3 "$HELPER" wrk-parse "$TMP/wrk-$r-$mode.txt")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$mode" "$rps" "$p50" "$p99" "$errors" "$non2xx" \
                "$((after - before))" "$served" "$(rss_kib "$pid")" >>"$OUT/swaps.tsv"
            log "swap round $r $mode: $rps req/s, p50 $p50 ms, p99 $p99 ms, errors $errors/$non2xx, swaps $((after - before)) (load $(machine_load))"
        done
    done
    printf 'rss_kib_start\t%s\nrss_kib_end\t%s\n' "$rss_start" "$(rss_kib "$pid")" >"$OUT/swap-rss.tsv"
    grep -E "ERROR|WARN" "$dir/log" | head -5 >&2 || true
    stop "$pg"
    REPORT_ARGS+=(--swaps "$OUT/swaps.tsv")
}

# ---------------------------------------------------------------- memory
memory() {
    local dir="$TMP/mem" port n rep pg pid i urls
    mkdir -p "$dir"
    printf 'rep\tlocations\trss_kib\thwm_kib\n' >"$OUT/memory.tsv"
    for rep in $(seq "$MEM_REPS"); do
        for n in $MEM_SIZES; do
            port=$(free_port)
            python3 "$HELPER" config "$n" --listen "127.0.0.1:$port" --mix "$MIX" >"$dir/conf-$n.toml"
            start "mem-$n-$rep" "$SERVER_CPU" NODE_NAME=mem RUST_LOG=info -- "$LOUAILINK" -c "$dir/conf-$n.toml" \
                --pid-file "$dir/pid-$n-$rep" --upgrade-sock "$dir/upgrade-$n-$rep.sock" --log "$dir/log-$n-$rep"
            pg=$STARTED
            wait_for "the memory node ($n locations)" 600 curl -fs -o /dev/null "http://127.0.0.1:$port/probe"
            urls=()
            for i in $(seq 10); do urls+=("http://127.0.0.1:$port/probe" "http://127.0.0.1:$port/svc$((2 * i + 1))/x"); done
            curl -s "${urls[@]}" >/dev/null || true
            sleep 1
            pid=$(cat "$dir/pid-$n-$rep")
            printf '%s\t%s\t%s\t%s\n' "$rep" "$n" "$(rss_kib "$pid")" \
                "$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")" >>"$OUT/memory.tsv"
            stop "$pg"
        done
    done
    REPORT_ARGS+=(--memory "$OUT/memory.tsv")
}

want propagation && propagation
want swap && swaps
want memory && memory

{
    cat "$OUT/run.txt"
    echo
    python3 "$HELPER" report "${REPORT_ARGS[@]}"
    if [ -f "$OUT/fleet-rss.tsv" ] && want propagation; then
        echo "RSS of the three etcd-mode nodes after the propagation run ($LOCATIONS locations, KiB): $(tail -n +2 "$OUT/fleet-rss.tsv" | cut -f3 | paste -sd' ')"
        echo
        echo "Data planes that died at start and were restarted: $(cat "$OUT/start-crashes.txt")"
    fi
    if [ -f "$OUT/swap-rss.tsv" ] && want swap; then
        echo "RSS of the swap node ($SWAP_LOCATIONS locations) before / after the swap rounds, KiB: $(cut -f2 "$OUT/swap-rss.tsv" | paste -sd' ' | sed 's/ / \/ /')"
    fi
} | tee "$OUT/report.md"
log "raw results in $OUT"
