#!/usr/bin/env bash
# A local LouAILink fleet on loopback: one etcd (temporary data dir, free ports), the control
# plane, and three data planes following etcd, each with its own node id, state dir, admin
# listener, pid file and upgrade socket.
#
#   deploy/fleet.sh start    # build if needed, start everything, seed conf/quickstart.toml into an empty etcd
#   deploy/fleet.sh status   # what runs, and the control plane's view of the nodes
#   deploy/fleet.sh stop     # stop exactly what `start` started, by the PIDs it recorded
#
# Environment: FLEET_DIR (default /tmp/louailink-fleet) holds data, logs, PIDs and fleet.env
# (the ports); NODES (default 3); BIN_DIR (default <target>/debug); FLEET_SEED=0 skips seeding.
#
# Note: every node serves the same config, so the seeded listener (127.0.0.1:6188) is shared by
# the three processes on this one machine; that needs the data plane to bind with SO_REUSEPORT
# (otherwise only the first node listens and the others report the bind error). Each node's
# admin listener is its own.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FLEET_DIR="${FLEET_DIR:-/tmp/louailink-fleet}"
NODES="${NODES:-3}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN_DIR="${BIN_DIR:-$TARGET/debug}"
PIDS="$FLEET_DIR/pids"

say() { echo "fleet: $*"; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A loopback port nobody listens on and not handed out before in this run.
TAKEN=" "
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    if [[ "$TAKEN" != *" $p "* ]] && ! port_in_use "$p"; then
      TAKEN="$TAKEN$p "
      echo "$p"
      return 0
    fi
  done
  echo "fleet: no free port found" >&2
  return 1
}

# Starts a process in the background, recording its PID under a name.
spawn() {
  local name="$1" log="$2"
  shift 2
  "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
  echo "$*" >"$PIDS/$name.cmd"
}

# True while the recorded PID still runs the recorded program.
alive() {
  local name="$1" pid
  [[ -f "$PIDS/$name.pid" ]] || return 1
  pid="$(cat "$PIDS/$name.pid")"
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  local prog
  prog="$(head -c 4096 "/proc/$pid/cmdline" | tr '\0' ' ' | cut -d' ' -f1)"
  [[ "$(cut -d' ' -f1 "$PIDS/$name.cmd")" == "$prog" ]]
}

wait_until() {
  local what="$1" tries="$2"
  shift 2
  for _ in $(seq 1 "$tries"); do
    if "$@"; then return 0; fi
    sleep 0.2
  done
  say "gave up waiting for $what"
  return 1
}

ctl() { "$BIN_DIR/louailink-control" ctl --server "http://127.0.0.1:$HTTP_PORT" "$@"; }

start() {
  if [[ -d "$PIDS" ]] && ls "$PIDS"/*.pid >/dev/null 2>&1; then
    for f in "$PIDS"/*.pid; do
      if alive "$(basename "$f" .pid)"; then
        say "already running (deploy/fleet.sh stop first); state in $FLEET_DIR"
        exit 1
      fi
    done
  fi
  for bin in etcd curl; do
    command -v "$bin" >/dev/null || { say "$bin is missing: apt-get install -y etcd-server etcd-client curl"; exit 1; }
  done
  if [[ ! -x "$BIN_DIR/louailink" || ! -x "$BIN_DIR/louailink-control" ]]; then
    say "building louailink and louailink-control"
    (cd "$ROOT" && cargo build --bins -p louailink -p louailink-control)
  fi
  rm -rf "$FLEET_DIR"
  mkdir -p "$PIDS" "$FLEET_DIR/etcd"

  ETCD_PORT="$(free_port)"; PEER_PORT="$(free_port)"
  HTTP_PORT="$(free_port)"; GRPC_PORT="$(free_port)"
  cat >"$FLEET_DIR/fleet.env" <<EOF
ETCD_PORT=$ETCD_PORT
HTTP_PORT=$HTTP_PORT
GRPC_PORT=$GRPC_PORT
ETCD_URL=etcd://127.0.0.1:$ETCD_PORT/louailink
EOF

  say "etcd on 127.0.0.1:$ETCD_PORT (data in $FLEET_DIR/etcd)"
  spawn etcd "$FLEET_DIR/etcd.log" etcd --name fleet --data-dir "$FLEET_DIR/etcd/data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
    --initial-cluster "fleet=http://127.0.0.1:$PEER_PORT" --initial-cluster-state new
  wait_until "etcd" 150 sh -c "curl -fs http://127.0.0.1:$ETCD_PORT/health 2>/dev/null | grep -q true"

  say "control plane: REST http://127.0.0.1:$HTTP_PORT/api/v1, gRPC 127.0.0.1:$GRPC_PORT"
  export RUST_LOG="${RUST_LOG:-info}"
  spawn control "$FLEET_DIR/control.log" "$BIN_DIR/louailink-control" \
    --etcd "etcd://127.0.0.1:$ETCD_PORT/louailink" \
    --http "127.0.0.1:$HTTP_PORT" --grpc "127.0.0.1:$GRPC_PORT"
  wait_until "the control plane" 150 curl -fs -o /dev/null "http://127.0.0.1:$HTTP_PORT/api/v1/openapi.json"

  if [[ "${FLEET_SEED:-1}" != 0 ]] && ctl get servers | grep -q '"items": \[\]'; then
    say "seeding conf/quickstart.toml"
    ctl apply -f "$ROOT/conf/quickstart.toml" >/dev/null
  fi

  for i in $(seq 1 "$NODES"); do
    local dir="$FLEET_DIR/node-$i" admin
    mkdir -p "$dir"
    admin="$(free_port)"
    echo "NODE_${i}_ADMIN=$admin" >>"$FLEET_DIR/fleet.env"
    say "data plane node-$i (admin 127.0.0.1:$admin, state $dir)"
    spawn "node-$i" "$dir/stderr.log" "$BIN_DIR/louailink" \
      -c "etcd://127.0.0.1:$ETCD_PORT/louailink" --node-id "node-$i" --state-dir "$dir" \
      --admin "127.0.0.1:$admin" --pid-file "$dir/louailink.pid" --upgrade-sock "$dir/upgrade.sock" \
      --log "$dir/louailink.log"
  done
  sleep 1
  status
}

status() {
  [[ -f "$FLEET_DIR/fleet.env" ]] || { say "not started"; return 0; }
  # shellcheck disable=SC1091
  source "$FLEET_DIR/fleet.env"
  for f in "$PIDS"/*.pid; do
    local name
    name="$(basename "$f" .pid)"
    if alive "$name"; then
      say "$name running (pid $(cat "$f"))"
    else
      say "$name NOT running (see its log in $FLEET_DIR)"
    fi
  done
  if alive control; then
    ctl nodes || true
  fi
}

stop() {
  [[ -d "$PIDS" ]] || { say "nothing to stop"; return 0; }
  # Data planes first (SIGINT: pingora exits at once), then the control plane, then etcd.
  local order=() name
  for f in "$PIDS"/node-*.pid; do [[ -f "$f" ]] && order+=("$(basename "$f" .pid)"); done
  order+=(control etcd)
  for name in "${order[@]}"; do
    if alive "$name"; then
      local pid sig=TERM
      pid="$(cat "$PIDS/$name.pid")"
      [[ "$name" == node-* ]] && sig=INT
      kill "-$sig" "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do alive "$name" || break; sleep 0.2; done
      if alive "$name"; then
        kill -KILL "$pid" 2>/dev/null || true
      fi
      say "stopped $name (pid $pid)"
    fi
    rm -f "$PIDS/$name.pid"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|status|stop" >&2; exit 2 ;;
esac
