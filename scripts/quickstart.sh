#!/usr/bin/env bash
# Builds louailink, starts it on conf/quickstart.toml (no backend or etcd needed) and shows
# it answering. It keeps running in the background; the last line says how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release -p louailink

conf=conf/quickstart.toml
log=/tmp/louailink-quickstart.log
pid_file=/tmp/louailink-quickstart.pid
if [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  echo "stopping the previous quick-start instance (pid $(cat "$pid_file"))"
  kill "$(cat "$pid_file")"
  sleep 1
fi

target/release/louailink -t -c "$conf"
target/release/louailink -c "$conf" -d --log "$log"
for _ in $(seq 50); do
  curl -fs http://127.0.0.1:6188/ping >/dev/null 2>&1 && break
  sleep 0.1
done

echo; echo "\$ curl -i http://127.0.0.1:6188/ping"
curl -si http://127.0.0.1:6188/ping; echo
echo; echo "\$ curl -i http://127.0.0.1:6188/hello"
curl -si http://127.0.0.1:6188/hello; echo
echo
echo "louailink is running (pid $(cat "$pid_file")), logs in $log"
echo "stop it with: kill \$(cat $pid_file)"
