#!/usr/bin/env bash
# Installs the Debian packages LouAILink's build (and, with --test, its tests) need, when missing.
#   build: cmake (pingora's zlib-ng), protobuf-compiler (etcd-client code generation)
#   test:  curl, nginx, wrk, nghttp2-client (h2load), etcd-server/etcd-client
set -euo pipefail

packages=(cmake protobuf-compiler curl)
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
