#!/usr/bin/env bash
# LouAILink performance benchmark: LouAILink vs nginx vs bare pingora, side by side.
#
# Usage (from anywhere in the repository):
#   tests/bench/run.sh                          # every scenario, every contender
#   SCENARIOS=nginx,bare tests/bench/run.sh     # only what does not need the louailink binary
#   SCENARIOS=proxy ROUNDS=7 DURATION=15 tests/bench/run.sh
#
# Environment:
#   SCENARIOS  comma list; groups: answer, proxy, log; systems: nginx, bare, louailink.
#              A group not named means every group, a system not named means every system.
#              (default: everything)
#   ROUNDS     alternating rounds per group (default 5); the order of contenders rotates each round
#   DURATION   seconds per measurement (default 10), after WARMUP seconds of warm-up (default 2)
#   CONNS      wrk connections (default 10); WRK_THREADS (default 1)
#   BUILD      0 to skip `cargo build --release` (default 1)
#   BARE_BIN   bare_pingora binary (default target/release/examples/bare_pingora)
#   LOUAILINK_BIN  (default target/release/louailink)
#   BARE_VARIANTS  extra bare-pingora contenders for experiments, ';'-separated entries
#              "name=WORD WORD ..."; words of the form VAR=value go to the environment, BIN=path
#              replaces the binary, the rest are extra arguments. Each variant is added to the
#              answer and proxy groups, e.g.
#              BARE_VARIANTS='sysalloc=BARE_PINGORA_ALLOC=system; nosteal=--no-work-stealing'
#   KEEP_TMP   1 to keep the temp dir (configs, logs, raw results)
#
# Pinning: the server under test on core 0; wrk and the backend nginx on core 1.
# Every process is started by this script under `timeout`, in its own process group, and stopped
# by that group id on exit.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-10}
WRK_THREADS=${WRK_THREADS:-1}
BUILD=${BUILD:-1}
SCENARIOS=${SCENARIOS:-}
BARE_VARIANTS=${BARE_VARIANTS:-}
KEEP_TMP=${KEEP_TMP:-0}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BARE_BIN=${BARE_BIN:-$TARGET_DIR/release/examples/bare_pingora}
LOUAILINK_BIN=${LOUAILINK_BIN:-$TARGET_DIR/release/louailink}
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- selection
groups_sel=() systems_sel=()
IFS=',' read -r -a _tokens <<<"$SCENARIOS"
for t in "${_tokens[@]}"; do
    t=${t// /}
    case "$t" in
        "") ;;
        answer|proxy|log) groups_sel+=("$t") ;;
        nginx|bare|louailink) systems_sel+=("$t") ;;
        *) die "unknown SCENARIOS token '$t' (answer, proxy, log, nginx, bare, louailink)" ;;
    esac
done
[ ${#groups_sel[@]} -gt 0 ] || groups_sel=(answer proxy log)
[ ${#systems_sel[@]} -gt 0 ] || systems_sel=(nginx bare louailink)
want_group() { local g; for g in "${groups_sel[@]}"; do [ "$g" = "$1" ] && return 0; done; return 1; }
want_system() { local s; for s in "${systems_sel[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

# ---------------------------------------------------------------- tools
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v taskset >/dev/null || need_apt+=(util-linux)
command -v curl >/dev/null || need_apt+=(curl)
command -v ss >/dev/null || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
    # perf is optional (docs/benchmarks.md, "Where the time goes")
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq linux-perf >/dev/null 2>&1 || true
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ "$BUILD" = 1 ]; then
    log "building release (louailink + bare_pingora)"
    (cd "$ROOT" && cargo build --release -p louailink --example bare_pingora)
fi
if want_system bare; then [ -x "$BARE_BIN" ] || die "no $BARE_BIN (build it or set BARE_BIN)"; fi
if want_system louailink && { want_group answer || want_group proxy || want_group log; }; then
    [ -x "$LOUAILINK_BIN" ] || die "no $LOUAILINK_BIN (or run SCENARIOS=nginx,bare)"
fi

# ---------------------------------------------------------------- processes
TMP=$(mktemp -d /tmp/louailink-bench.XXXXXX)
PGIDS=()
cleanup() {
    local pg
    for pg in "${PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
    sleep 0.2
    for pg in "${PGIDS[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
    if [ "$KEEP_TMP" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A USED_PORTS=()
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        [ -z "${USED_PORTS[$p]:-}" ] || continue
        ss -Htln "sport = :$p" | grep -q . && continue
        USED_PORTS[$p]=1; echo "$p"; return
    done
}

# Bounds on each process's life: a contender lives for one measurement, the backend for the run.
LIFE=$(( DURATION + WARMUP + 30 ))

# start CPU LIFE NAME ENV... -- CMD...: run under timeout (at most LIFE seconds) in a new process
# group; sets STARTED (the pid, which is also the process-group id).
STARTED=
start() {
    local cpu=$1 life=$2 name=$3; shift 3
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    # timeout makes itself a process-group leader; its pid is the group id
    env "${envs[@]}" taskset -c "$cpu" timeout -k 5 "$life" "$@" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
    STARTED=$!
    PGIDS+=("$STARTED")
}

stop() { # stop PGID: SIGINT (pingora: fast shutdown; nginx: fast shutdown), then SIGKILL
    local pg=$1 i
    kill -INT -- "-$pg" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pg" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pg" 2>/dev/null || true
    wait "$pg" 2>/dev/null || true
}

# wait_http URL EXPECT_BODY: until the URL answers 200 with that body (10 s)
wait_http() {
    local url=$1 want=$2 i body
    for i in $(seq 100); do
        if body=$(curl -fsS --max-time 1 "$url" 2>/dev/null) && [ "$body" = "$want" ]; then return 0; fi
        sleep 0.1
    done
    return 1
}

# cpu ticks of a process tree (utime + stime)
tree_pids() { local p=$1 c; echo "$p"; for c in $(pgrep -P "$p" || true); do tree_pids "$c"; done; }
tree_ticks() {
    local p t=0 f
    for p in $(tree_pids "$1"); do
        # fields after the ")" of comm: utime is the 12th, stime the 13th
        f=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        set -- $f
        t=$(( t + ${12} + ${13} ))
    done
    echo "$t"
}
# busy and steal ticks of one core
core_ticks() { awk -v c="cpu$1" '$1==c {print $2+$3+$4+$7+$8, $9}' /proc/stat; }

# ---------------------------------------------------------------- configs
nginx_conf() { # NAME PORT BODY-DIRECTIVES
    local name=$1 port=$2 body=$3 d="$TMP/nginx-$1"
    mkdir -p "$d/tmp"
    cat >"$d/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type text/plain;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    # pingora and LouAILink have no per-connection request limit; nginx's default is 1000
    keepalive_requests 100000000;
    keepalive_timeout 75s;
$body
}
EOF
    echo "$d"
}

start_nginx() { # CPU LIFE NAME DIR
    start "$1" "$2" "$3" -- "$NGINX" -p "$4/" -c "$4/nginx.conf" -e "$4/error.log"
}

louailink_conf() { # NAME PORT KIND(answer|proxy|log)
    local name=$1 port=$2 kind=$3 f="$TMP/louailink-$1.toml"
    cat >"$f" <<EOF
[basic]
threads = 1
pid_file = "$TMP/louailink-$name.pid"
upgrade_sock = "$TMP/louailink-$name.sock"
grace_period = "1s"
graceful_shutdown_timeout = "1s"

EOF
    if [ "$kind" = answer ]; then
        cat >>"$f" <<EOF
[plugins.ping]
category = "ping"
path = "/ping"

[locations.ping]
plugins = ["ping"]
path = "/"

[servers.bench]
addr = "127.0.0.1:$port"
locations = ["ping"]
threads = 1
EOF
    else
        cat >>"$f" <<EOF
[upstreams.backend]
addrs = ["127.0.0.1:$BACKEND_PORT"]

[locations.all]
upstream = "backend"
path = "/"

[servers.bench]
addr = "127.0.0.1:$port"
locations = ["all"]
threads = 1
EOF
        [ "$kind" = log ] && echo 'access_log = "combined"' >>"$f"
    fi
    echo "$f"
}

# ---------------------------------------------------------------- contenders
# Each contender: NAME GROUP SYSTEM URL-PATH EXPECTED-BODY and a start command built by
# start_contender NAME PORT, which prints the pid (process-group id).
declare -A C_GROUP C_PATH C_BODY C_SYSTEM C_SPEC
CONTENDERS=()
add() { CONTENDERS+=("$1"); C_GROUP[$1]=$2; C_SYSTEM[$1]=$3; C_PATH[$1]=$4; C_BODY[$1]=$5; C_SPEC[$1]=${6:-}; }

BACKEND_BODY=hello
if want_group answer; then
    want_system nginx && add nginx-answer answer nginx /ping pong
    want_system bare && add bare-answer answer bare /ping pong "--answer"
    want_system louailink && add louailink-answer answer louailink /ping pong answer
fi
if want_group proxy; then
    want_system nginx && add nginx-proxy proxy nginx / "$BACKEND_BODY"
    want_system bare && add bare-proxy proxy bare / "$BACKEND_BODY" "--proxy"
    want_system louailink && add louailink-proxy proxy louailink / "$BACKEND_BODY" proxy
fi
if want_group log && want_system louailink; then
    add louailink-nolog log louailink / "$BACKEND_BODY" proxy
    add louailink-log log louailink / "$BACKEND_BODY" log
fi
if [ -n "$BARE_VARIANTS" ] && want_system bare; then
    IFS=';' read -r -a _variants <<<"$BARE_VARIANTS"
    for v in "${_variants[@]}"; do
        v=$(echo "$v" | sed 's/^ *//; s/ *$//'); [ -n "$v" ] || continue
        vn=${v%%=*}; vw=${v#*=}
        want_group answer && add "bare-answer-$vn" answer bare /ping pong "--answer $vw"
        want_group proxy && add "bare-proxy-$vn" proxy bare / "$BACKEND_BODY" "--proxy $vw"
    done
fi
[ ${#CONTENDERS[@]} -gt 0 ] || die "nothing selected"

start_contender() { # NAME PORT; sets STARTED
    local name=$1 port=$2 sys=${C_SYSTEM[$1]} spec=${C_SPEC[$1]}
    case "$sys" in
        nginx)
            local d
            if [ "${C_GROUP[$name]}" = answer ]; then
                d=$(nginx_conf "$name" "$port" "    server { listen 127.0.0.1:$port; location / { return 200 \"pong\"; } }")
            else
                d=$(nginx_conf "$name" "$port" "    upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 64; keepalive_requests 100000000; }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }")
            fi
            start_nginx "$SERVER_CPU" "$LIFE" "$name" "$d"
            ;;
        bare)
            local envs=() args=() bin=$BARE_BIN w
            for w in $spec; do
                case "$w" in
                    BIN=*) bin=${w#BIN=} ;;
                    --proxy) args+=(--proxy "127.0.0.1:$BACKEND_PORT") ;;
                    [A-Z]*=*) envs+=("$w") ;;
                    *) args+=("$w") ;;
                esac
            done
            mkdir -p "$TMP/run-$name"
            start "$SERVER_CPU" "$LIFE" "$name" "${envs[@]}" -- "$bin" --listen "127.0.0.1:$port" \
                --run-dir "$TMP/run-$name" "${args[@]}"
            ;;
        louailink)
            local f
            f=$(louailink_conf "$name" "$port" "$spec")
            start "$SERVER_CPU" "$LIFE" "$name" -- "$LOUAILINK_BIN" -c "$f" --log "$TMP/$name.log"
            ;;
    esac
}

# ---------------------------------------------------------------- measuring
to_us() { # "101.00us" / "1.20ms" / "1.00s" -> microseconds
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.1f", v }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.1f", v * 1000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.1f", v * 1000000 }
        else printf "nan" }'
}

RESULTS="$TMP/results.tsv"
printf 'group\tcontender\tround\treq_s\tp50_us\tp99_us\tcpu_us_per_req\terrors\tcore_other_pct\tsteal_pct\tbuild_running\n' >"$RESULTS"

measure() { # NAME ROUND
    local name=$1 round=$2 port pid url out reqs rps p50 p99 errs t0 t1 c0 c1 e0 e1 s0 s1 busy
    port=$(free_port)
    start_contender "$name" "$port"; pid=$STARTED
    url="http://127.0.0.1:$port${C_PATH[$name]}"
    if ! wait_http "$url" "${C_BODY[$name]}"; then
        log "$name did not answer $url with '${C_BODY[$name]}'; stderr:"
        tail -n 20 "$TMP/$name.err" >&2 || true
        stop "$pid"
        printf '%s\t%s\t%s\tnan\tnan\tnan\tnan\tFAILED\tnan\tnan\t-\n' "${C_GROUP[$name]}" "$name" "$round" >>"$RESULTS"
        return 0
    fi
    taskset -c "$CLIENT_CPU" wrk -t"$WRK_THREADS" -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || true
    busy=no; pgrep -x rustc >/dev/null 2>&1 && busy=yes
    t0=$(tree_ticks "$pid"); read -r c0 s0 < <(core_ticks "$SERVER_CPU"); e0=$(date +%s%N)
    out=$(taskset -c "$CLIENT_CPU" wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$url" 2>&1) || true
    t1=$(tree_ticks "$pid"); read -r c1 s1 < <(core_ticks "$SERVER_CPU"); e1=$(date +%s%N)
    pgrep -x rustc >/dev/null 2>&1 && busy=yes
    stop "$pid"
    echo "$out" >"$TMP/$name.round$round.wrk"
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
    p50=$(to_us "$(echo "$out" | awk '$1=="50%" {print $2}')")
    p99=$(to_us "$(echo "$out" | awk '$1=="99%" {print $2}')")
    errs=$(echo "$out" | awk '/Non-2xx/ {n+=$NF} /Socket errors/ {gsub(/,/,""); n+=$4+$6+$8+$10} END {print n+0}')
    local cpu other steal
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v r="${reqs:-0}" 'BEGIN { if (r > 0) printf "%.2f", t / hz * 1e6 / r; else print "nan" }')
    # share of core 0 used by anything but the contender, and the hypervisor's steal
    other=$(awk -v c=$((c1 - c0)) -v t=$((t1 - t0)) -v ns=$((e1 - e0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", (c - t) / hz / (ns / 1e9) * 100 }')
    steal=$(awk -v s=$((s1 - s0)) -v ns=$((e1 - e0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", s / hz / (ns / 1e9) * 100 }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${C_GROUP[$name]}" "$name" "$round" \
        "${rps:-nan}" "$p50" "$p99" "$cpu" "$errs" "$other" "$steal" "$busy" >>"$RESULTS"
    log "$(printf '%-28s round %s: %9s req/s  p50 %7s us  p99 %7s us  cpu %6s us/req  errors %s  other %s%%  steal %s%%%s' \
        "$name" "$round" "${rps:-nan}" "$p50" "$p99" "$cpu" "$errs" "$other" "$steal" \
        "$([ "$busy" = yes ] && echo '  (a build was running)')")"
}

# ---------------------------------------------------------------- backend
BACKEND_PORT=$(free_port)
if want_group proxy || want_group log; then
    bd=$(nginx_conf backend "$BACKEND_PORT" "    server { listen 127.0.0.1:$BACKEND_PORT; location / { return 200 \"$BACKEND_BODY\"; } }")
    start_nginx "$CLIENT_CPU" "$(( (ROUNDS * ${#CONTENDERS[@]} + 2) * (DURATION + WARMUP + 10) + 120 ))" backend "$bd"
    wait_http "http://127.0.0.1:$BACKEND_PORT/" "$BACKEND_BODY" || die "backend nginx did not start: $(cat "$TMP/backend.err")"
fi

# ---------------------------------------------------------------- run
log "machine: $(nproc) cores, $(lscpu | awk -F: '/Model name/ && !m {gsub(/^ +/, "", $2); m = $2} END {print m}'); load $(cut -d' ' -f1-3 /proc/loadavg)"
log "rounds=$ROUNDS duration=${DURATION}s warmup=${WARMUP}s conns=$CONNS wrk threads=$WRK_THREADS; server on core $SERVER_CPU, wrk+backend on core $CLIENT_CPU"
pgrep -x rustc >/dev/null 2>&1 && log "warning: rustc is running: numbers will be noisy"

for group in answer proxy log; do
    members=()
    for c in "${CONTENDERS[@]}"; do [ "${C_GROUP[$c]}" = "$group" ] && members+=("$c"); done
    [ ${#members[@]} -gt 0 ] || continue
    log "group $group: ${members[*]}"
    n=${#members[@]}
    for r in $(seq "$ROUNDS"); do
        for i in $(seq 0 $((n - 1))); do
            measure "${members[$(( (i + r - 1) % n ))]}" "$r"
        done
    done
done

# ---------------------------------------------------------------- report
REFERENCE_answer=bare-answer
REFERENCE_proxy=nginx-proxy
REFERENCE_log=louailink-nolog
echo
echo "LouAILink benchmark $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores, $(lscpu | awk -F: '/Model name/ && !m {gsub(/^ +/, "", $2); m = $2} END {print m}')"
echo "wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency, $ROUNDS alternating rounds, medians; server on core $SERVER_CPU, wrk and backend on core $CLIENT_CPU"
for group in answer proxy log; do
    ref_var=REFERENCE_$group; ref=${!ref_var}
    awk -F'\t' -v g="$group" 'NR > 1 && $1 == g' "$RESULTS" | grep -q . || continue
    awk -F'\t' -v g="$group" -v ref="$ref" '
        function median(arr, n,   i, j, t, k) {
            # arr[1..n] numeric; insertion sort
            for (i = 2; i <= n; i++) { t = arr[i]; j = i - 1; while (j > 0 && arr[j] > t) { arr[j+1] = arr[j]; j-- } arr[j+1] = t }
            if (n == 0) return "nan"
            if (n % 2) return arr[(n+1)/2]
            return (arr[n/2] + arr[n/2+1]) / 2
        }
        NR > 1 && $1 == g {
            c = $2
            if (!(c in seen)) { seen[c] = 1; order[++nc] = c }
            if ($4 == "nan") { failed[c]++; next }
            k = ++cnt[c]; rps[c, k] = $4; p50[c, k] = $5; p99[c, k] = $6; cpu[c, k] = $7; errs[c] += $8
            if (!(c in mn) || $4 < mn[c]) mn[c] = $4
            if (!(c in mx) || $4 > mx[c]) mx[c] = $4
        }
        END {
            printf "\n## %s (ratios against %s)\n\n", g, ref
            printf "| contender | req/s | (min - max) | p50 µs | p99 µs | CPU µs/req | req/s ratio | CPU ratio | errors |\n"
            printf "|---|---|---|---|---|---|---|---|---|\n"
            for (i = 1; i <= nc; i++) {
                c = order[i]; n = cnt[c] + 0
                for (k = 1; k <= n; k++) { a[k] = rps[c, k] } ; m_rps[c] = median(a, n)
                for (k = 1; k <= n; k++) { a[k] = p50[c, k] } ; m_p50[c] = median(a, n)
                for (k = 1; k <= n; k++) { a[k] = p99[c, k] } ; m_p99[c] = median(a, n)
                for (k = 1; k <= n; k++) { a[k] = cpu[c, k] } ; m_cpu[c] = median(a, n)
            }
            for (i = 1; i <= nc; i++) {
                c = order[i]
                if (cnt[c] + 0 == 0) { printf "| %s | FAILED | | | | | | | |\n", c; continue }
                rr = (ref in m_rps && m_rps[ref] > 0) ? sprintf("%.2f×", m_rps[c] / m_rps[ref]) : "-"
                cr = (ref in m_cpu && m_cpu[ref] > 0) ? sprintf("%.2f×", m_cpu[c] / m_cpu[ref]) : "-"
                printf "| %s | %.0f | (%.0f - %.0f) | %.0f | %.0f | %.2f | %s | %s | %d%s |\n", c, m_rps[c], mn[c], mx[c], m_p50[c], m_p99[c], m_cpu[c], rr, cr, errs[c], (failed[c] ? sprintf(" (%d rounds failed)", failed[c]) : "")
            }
        }' "$RESULTS"
done
echo
if [ "$KEEP_TMP" = 1 ]; then echo "raw results: $RESULTS"; else cp "$RESULTS" "${RESULTS_OUT:-/tmp/louailink-bench-results.tsv}"; echo "raw results: ${RESULTS_OUT:-/tmp/louailink-bench-results.tsv}"; fi
