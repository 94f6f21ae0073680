#!/usr/bin/env bash
# Installs what LouAILink's build (and, with --test, its tests) need, when missing.
#   build: cmake (pingora's zlib-ng), protobuf-compiler (etcd-client code generation)
#   test:  curl, nginx, wrk, nghttp2-client (h2load), etcd-server/etcd-client (Debian),
#          and schemathesis (PyPI) in a venv under the cargo target dir
#   --schemathesis: only the schemathesis venv (the control plane's schemathesis test runs
#          this itself when the venv is missing)
# Every step checks first and does nothing when already installed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

# The version the control plane's schemathesis test was written against (CLI: `st run`).
SCHEMATHESIS_VERSION="4.32.5"
SCHEMATHESIS_VENV="${SCHEMATHESIS_VENV:-${CARGO_TARGET_DIR:-$ROOT/target}/tmp/schemathesis-venv}"

install_schemathesis() {
  local venv="$SCHEMATHESIS_VENV" want="st, version $SCHEMATHESIS_VERSION"
  if [[ -x "$venv/bin/st" ]] && [[ "$("$venv/bin/st" --version 2>/dev/null)" == "$want" ]]; then
    return 0
  fi
  command -v python3 >/dev/null || {
    echo "install-deps: python3 is missing (needed for schemathesis): apt-get install -y python3 python3-venv" >&2
    return 1
  }
  mkdir -p "$(dirname "$venv")"
  # One installer at a time (parallel test runs share the venv).
  exec 9>"$venv.lock"
  flock 9
  if ! { [[ -x "$venv/bin/st" ]] && [[ "$("$venv/bin/st" --version 2>/dev/null)" == "$want" ]]; }; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || {
      echo "install-deps: python3 -m venv failed: apt-get install -y python3-venv" >&2
      return 1
    }
    "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >/dev/null
    "$venv/bin/st" --version
  fi
  exec 9>&-
}

if [[ "${1:-}" == "--schemathesis" ]]; then
  install_schemathesis
  exit 0
fi

packages=(cmake protobuf-compiler libprotobuf-dev curl)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(nginx wrk nghttp2-client etcd-server etcd-client)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ "${1:-}" == "--test" ]]; then
  install_schemathesis
fi
