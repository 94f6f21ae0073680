#!/usr/bin/env bash
# Where the time goes, per request: user-space instructions (valgrind callgrind) or system calls
# (strace -c), for one server at a time, on loopback. Instruction and syscall counts do not depend
# on how busy the machine is, unlike req/s.
#
# Usage: tests/bench/profile.sh TARGET...
#   TARGET: nginx-answer, nginx-proxy, bare-answer, bare-proxy, louailink-answer, louailink-proxy,
#           louailink-plugins (the proxy pass with limit + key_auth + request_id)
#   MODE=callgrind (default) | strace
#   SECS=5        seconds of measured load (after 2 s of warm-up), wrk -t1 -c$CONNS (CONNS default 10)
#   BARE_ARGS     extra arguments for bare_pingora (e.g. "--no-work-stealing")
#   BARE_ENV      environment for bare_pingora (e.g. "BARE_PINGORA_ALLOC=system")
#   BARE_BIN, LOUAILINK_BIN, KEEP_TMP=1 (keeps callgrind.out files), TOP=25 (functions listed)
# Prints, per target: requests, instructions (or syscalls) per request, and the top functions
# (inclusive and self) or the syscall table.
set -euo pipefail

MODE=${MODE:-callgrind}
SECS=${SECS:-5}
CONNS=${CONNS:-10}
TOP=${TOP:-25}
KEEP_TMP=${KEEP_TMP:-0}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BARE_BIN=${BARE_BIN:-$TARGET_DIR/release/examples/bare_pingora}
LOUAILINK_BIN=${LOUAILINK_BIN:-$TARGET_DIR/release/louailink}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

[ $# -gt 0 ] || { sed -n '2,16p' "$0"; exit 2; }
for t in valgrind strace wrk; do
    command -v $t >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind strace wrk nginx >/dev/null; break; }
done

TMP=$(mktemp -d /tmp/louailink-profile.XXXXXX)
PGIDS=()
cleanup() {
    local pg
    for pg in "${PGIDS[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
    if [ "$KEEP_TMP" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # below the ephemeral range, no socket in any state on it
    local p lo
    lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$lo" -gt 12000 ] || lo=32768
    while :; do p=$((10000 + RANDOM % (lo - 10000))); ss -Htan "sport = :$p" | grep -q . || { echo "$p"; return; }; done
}
STARTED=
start() { # CPU NAME CMD...  (under timeout, own process group; STARTED = pid = pgid)
    local cpu=$1 name=$2; shift 2
    taskset -c "$cpu" timeout -k 5 600 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
    STARTED=$!; PGIDS+=("$STARTED")
}
wait_http() { local i; for i in $(seq 600); do [ "$(curl -fsS --max-time 2 "$1" 2>/dev/null)" = "$2" ] && return 0; sleep 0.1; done; return 1; }
nginx_dir() { # NAME SERVER-BLOCK -> dir (single process: master_process off)
    local d="$TMP/nginx-$1"; mkdir -p "$d/tmp"
    cat >"$d/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
    access_log off; default_type text/plain; keepalive_requests 100000000;
    client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy; fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;
$2
}
EOF
    echo "$d"
}
# the real server pid below timeout (and valgrind, which execs in place)
server_pid() { local p=$1 c; c=$(pgrep -P "$p" | head -1); echo "${c:-$p}"; }

# callgrind_annotate lines "N (x%)  path:function [object]" -> "per-request  function"
per_request() {
    awk -v r="$1" -v top="$TOP" '
        /file:function/ { on = 1; next }
        on && n < top && /^ *[0-9,]+ +\(/ {
            v = $1; gsub(/,/, "", v)
            line = $0; sub(/^ *[0-9,]+ +\([^)]*\) +/, "", line); sub(/^[^:]*:/, "", line); sub(/ \[[^]]*\]$/, "", line)
            printf "%10.0f  %s\n", v / r, substr(line, 1, 150)
            n++
        }'
}

BACKEND_PORT=$(free_port)
bd=$(nginx_dir backend "server { listen 127.0.0.1:$BACKEND_PORT; location / { return 200 \"hello\"; } }")
start 1 backend "$NGINX" -p "$bd/" -c "$bd/nginx.conf" -e "$bd/error.log"
wait_http "http://127.0.0.1:$BACKEND_PORT/" hello || { echo "backend failed" >&2; exit 1; }

for target in "$@"; do
    port=$(free_port)
    case "$target" in
        *-answer) path=/ping; body=pong ;;
        *-proxy|*-plugins) path=/; body=hello ;;
        *) echo "unknown target $target" >&2; exit 2 ;;
    esac
    case "$target" in
        nginx-answer) d=$(nginx_dir "$target" "server { listen 127.0.0.1:$port; location / { return 200 \"pong\"; } }")
            cmd=("$NGINX" -p "$d/" -c "$d/nginx.conf" -e "$d/error.log") ;;
        nginx-proxy) d=$(nginx_dir "$target" "upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 64; keepalive_requests 100000000; }
server { listen 127.0.0.1:$port; location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }")
            cmd=("$NGINX" -p "$d/" -c "$d/nginx.conf" -e "$d/error.log") ;;
        bare-answer) mkdir -p "$TMP/run"; cmd=(env ${BARE_ENV:-} "$BARE_BIN" --listen "127.0.0.1:$port" --run-dir "$TMP/run" --answer ${BARE_ARGS:-}) ;;
        bare-proxy) mkdir -p "$TMP/run"; cmd=(env ${BARE_ENV:-} "$BARE_BIN" --listen "127.0.0.1:$port" --run-dir "$TMP/run" --proxy "127.0.0.1:$BACKEND_PORT" ${BARE_ARGS:-}) ;;
        louailink-answer|louailink-proxy|louailink-plugins)
            f="$TMP/$target.toml"
            printf '[basic]\nthreads = 1\npid_file = "%s"\nupgrade_sock = "%s"\ngrace_period = "1s"\ngraceful_shutdown_timeout = "1s"\n\n' \
                "$TMP/$target.pid" "$TMP/$target.sock" >"$f"
            if [ "$target" = louailink-answer ]; then
                printf '[plugins.ping]\ncategory = "ping"\npath = "/ping"\n\n[locations.ping]\nplugins = ["ping"]\npath = "/"\n\n[servers.bench]\naddr = "127.0.0.1:%s"\nlocations = ["ping"]\nthreads = 1\n' "$port" >>"$f"
            else
                printf '[upstreams.backend]\naddrs = ["127.0.0.1:%s"]\n\n[locations.all]\nupstream = "backend"\npath = "/"\n\n[servers.bench]\naddr = "127.0.0.1:%s"\nlocations = ["all"]\nthreads = 1\n' "$BACKEND_PORT" "$port" >>"$f"
            fi
            if [ "$target" = louailink-plugins ]; then # the key in the query: wrk sends no header
                sed -i 's/^path = "\/"$/path = "\/"\nplugins = ["limit", "key", "rid"]/' "$f"
                printf '\n[plugins.limit]\ncategory = "limit"\nmax = 100000000\n\n[plugins.key]\ncategory = "key_auth"\nquery = "k"\nkeys = ["bench-key"]\n\n[plugins.rid]\ncategory = "request_id"\n' >>"$f"
            fi
            cmd=("$LOUAILINK_BIN" -c "$f" --log "$TMP/$target.log") ;;
    esac
    url="http://127.0.0.1:$port$path"
    [ "$target" = louailink-plugins ] && url="$url?k=bench-key"
    if [ "$MODE" = callgrind ]; then
        start 0 "$target" valgrind --tool=callgrind --instr-atstart=no --trace-children=yes \
            --callgrind-out-file="$TMP/callgrind.out.$target.%p" "${cmd[@]}"
    else
        start 0 "$target" "${cmd[@]}"
    fi
    pg=$STARTED
    wait_http "$url" "$body" || { echo "$target did not start:" >&2; tail "$TMP/$target.err" >&2; exit 1; }
    spid=$(server_pid "$pg")
    [ "${cmd[0]}" = env ] && spid=$(server_pid "$spid")
    taskset -c 1 wrk -t1 -c"$CONNS" -d2s "$url" >/dev/null
    if [ "$MODE" = callgrind ]; then
        callgrind_control -i on "$spid" >/dev/null
        out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "$url")
        callgrind_control -i off "$spid" >/dev/null
    else
        strace -c -f -o "$TMP/strace.$target" -p "$spid" &
        spid_strace=$!
        sleep 1
        out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "$url")
        kill -INT "$spid_strace"; wait "$spid_strace" || true
    fi
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    kill -INT -- "-$pg" 2>/dev/null || true
    for i in $(seq 600); do kill -0 "$pg" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pg" 2>/dev/null || true
    wait "$pg" 2>/dev/null || true
    echo "=== $target ($MODE): $reqs requests${BARE_ARGS:+, BARE_ARGS=$BARE_ARGS}${BARE_ENV:+, BARE_ENV=$BARE_ENV}"
    if [ "$MODE" = callgrind ]; then
        f=$(ls "$TMP"/callgrind.out."$target"* | head -1)
        total=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t {gsub(/,/, "", $1); t = $1} END {print t}')
        echo "instructions per request: $(awk -v t="$total" -v r="$reqs" 'BEGIN { printf "%.0f", t / r }')  (total $total)"
        echo "--- top $TOP inclusive (instructions per request, function)"
        callgrind_annotate --inclusive=yes "$f" 2>/dev/null | per_request "$reqs"
        echo "--- top $TOP self"
        callgrind_annotate "$f" 2>/dev/null | per_request "$reqs"
        [ "$KEEP_TMP" = 1 ] && echo "callgrind file: $f"
    else
        # columns: % time, seconds, usecs/call, calls, [errors], syscall
        awk -v r="$reqs" 'NR <= 2 || /^-/ { next } $NF == "total" { printf "syscalls per request: %.2f\n", $4 / r; next }
            NF >= 5 { printf "%8.3f /req  %s\n", $4 / r, $NF }' "$TMP/strace.$target"
        cat "$TMP/strace.$target"
    fi
done
