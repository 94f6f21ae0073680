#!/usr/bin/env bash
# Installs what LouAILink's build (and, with --test, its tests) need, when missing.
#   build: cmake (pingora's zlib-ng), protobuf-compiler and libprotobuf-dev (etcd-client code
#          generation), curl and ca-certificates
#   test:  nginx, wrk, nghttp2-client (h2load), etcd-server/etcd-client (Debian),
#          and schemathesis (PyPI) in a venv under the cargo target dir (with python3-venv
#          from Debian when python3 is Debian's, which cannot make a venv without it)
#   --schemathesis: only the schemathesis venv (the control plane's schemathesis test runs
#          this itself when the venv is missing)
# Every step checks first and does nothing when already installed.
# scripts/fresh-check.sh proves this on a clean Debian root.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

# Installs the Debian packages among "$@" that are not installed yet. apt-get update first:
# a fresh machine may have no package lists at all.
apt_install() {
  local missing=() p sudo_cmd=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "installing: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || {
      echo "install-deps: not root and no sudo; as root run: apt-get update && apt-get install -y ${missing[*]}" >&2
      return 1
    }
    sudo_cmd=(sudo)
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The Debian packages `python3 -m venv` still needs: Debian's python3 has no ensurepip without
# python3-venv ("ensurepip is not available"); pyenv's CPython has it built in.
python_packages() {
  if ! command -v python3 >/dev/null; then
    echo python3 python3-venv
  elif ! python3 -c 'import ensurepip' 2>/dev/null && [[ "$(command -v python3)" == /usr/bin/python3 ]]; then
    echo python3-venv
  fi
}

# The version the control plane's schemathesis test was written against (CLI: `st run`).
SCHEMATHESIS_VERSION="4.32.5"
SCHEMATHESIS_VENV="${SCHEMATHESIS_VENV:-${CARGO_TARGET_DIR:-$ROOT/target}/tmp/schemathesis-venv}"

install_schemathesis() {
  local venv="$SCHEMATHESIS_VENV" want="st, version $SCHEMATHESIS_VERSION"
  if [[ -x "$venv/bin/st" ]] && [[ "$("$venv/bin/st" --version 2>/dev/null)" == "$want" ]]; then
    return 0
  fi
  mkdir -p "$(dirname "$venv")"
  # One installer at a time (parallel test runs share the venv, and apt-get has one lock).
  exec 9>"$venv.lock"
  flock 9
  if ! { [[ -x "$venv/bin/st" ]] && [[ "$("$venv/bin/st" --version 2>/dev/null)" == "$want" ]]; }; then
    local py
    read -ra py <<<"$(python_packages)"
    apt_install "${py[@]}"
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

# ca-certificates: only a Recommends of curl, and cargo and pip need it for HTTPS on a minimal
# Debian/Ubuntu (a container image has none).
packages=(cmake protobuf-compiler libprotobuf-dev curl ca-certificates)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(nginx wrk nghttp2-client etcd-server etcd-client)
  read -ra py <<<"$(python_packages)"
  packages+=("${py[@]}")
fi

apt_install "${packages[@]}"

if [[ "${1:-}" == "--test" ]]; then
  install_schemathesis
fi
