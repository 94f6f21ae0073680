#!/usr/bin/env bash
# Proves the README's quick start on a fresh machine. It builds a clean Debian bookworm root
# (debootstrap) holding only what a fresh machine of this kind has (gcc/g++/make, git, Debian's
# python3, CA certificates and a copy of the host's Rust toolchain; no curl, no apt lists),
# clones this repository at a commit into it (only committed files go in), and runs inside the
# root exactly the README's two commands:
#   1. scripts/quickstart.sh   must print `pong` and the mock's answer (then it is stopped)
#   2. scripts/test.sh         must pass
# Whatever those need, the repo's own scripts must install: nothing is installed by hand here.
#
# Usage: scripts/fresh-check.sh [--quick-only] [--keep] [--ref REF] [--dir DIR] [--rebuild-base]
#   --quick-only    run only the first command
#   --keep          keep the root (DIR/root) for inspection (the mounts are undone all the same)
#   --ref REF       commit or branch to check (default: HEAD of the repository this script is in)
#   --dir DIR       work folder (default $LOUAILINK_FRESH_DIR, else /var/tmp/louailink-fresh): the
#                   cached pristine base (base-bookworm.tar), the root and the logs
#   --rebuild-base  download the base again instead of reusing the cached tarball
# Runs as root (debootstrap, chroot, mount). Exits 0 only when every command it ran passed.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
quick_only=0 keep=0 rebuild_base=0
ref=HEAD
dir="${LOUAILINK_FRESH_DIR:-/var/tmp/louailink-fresh}"
args=("$@")
while (($#)); do
  case "$1" in
    --quick-only) quick_only=1 ;;
    --keep) keep=1 ;;
    --rebuild-base) rebuild_base=1 ;;
    --ref) ref="$2"; shift ;;
    --dir) dir="$2"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fresh-check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $(id -u) -eq 0 ]] || { echo "fresh-check: run as root (debootstrap, chroot, mount)" >&2; exit 2; }

# All mounts live in a private mount namespace: nothing can propagate to the host's /dev, and
# whatever is left mounted disappears with the namespace even if this script is killed.
if [[ -z "${FRESH_CHECK_IN_NS:-}" ]]; then
  exec unshare --mount --propagation private env FRESH_CHECK_IN_NS=1 "$0" "${args[@]}"
fi

SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# A fresh machine of this kind: gcc for -sys crates, make, git, CPython 3.11 (there from pyenv;
# Debian's python3 stands in for it here, which has no ensurepip without python3-venv), and CA
# certificates (pip and cargo reach their registries over HTTPS).
BASE_PACKAGES="gcc,g++,make,libc6-dev,git,python3,ca-certificates"
NICE="${FRESH_NICE:-10}" # the machine is shared: builds and tests run at a lower priority
QUICK_PORT=6188           # conf/quickstart.toml's listener

dir="$(mkdir -p "$dir" && cd "$dir" && pwd -P)"
root="$dir/root"
base_tar="$dir/base-$SUITE.tar"
sha="$(git -C "$REPO" rev-parse --verify "$ref^{commit}")"
log() { printf '\n==> %s\n' "$*"; }
die() { echo "fresh-check: $*" >&2; exit 1; }
mmss() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# One run per work folder at a time.
exec 8>"$dir/lock"
flock -n 8 || die "another fresh-check is running in $dir"

mounted_under() { awk -v r="$1/" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo; }

# Ends the processes still running inside the root (all started by this run), by pid.
# shellcheck disable=SC2317  # called from the EXIT trap
stop_root_processes() {
  local sig pid left
  for sig in TERM KILL; do
    left=()
    for pid in /proc/[0-9]*; do
      pid="${pid#/proc/}"
      [[ "$(readlink "/proc/$pid/root" 2>/dev/null)" == "$root" ]] && left+=("$pid")
    done
    ((${#left[@]})) || return 0
    echo "fresh-check: SIG$sig to processes left in the root: $(for p in "${left[@]}"; do
      printf '%s(%s) ' "$p" "$(cat "/proc/$p/comm" 2>/dev/null)"; done)"
    kill "-$sig" "${left[@]}" 2>/dev/null || true
    sleep 4
  done
}

# shellcheck disable=SC2317  # called from the EXIT trap
unmount_root() {
  local m
  for m in $(mounted_under "$root" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
}

remove_root() {
  [[ -e "$root" ]] || return 0
  [[ -z "$(mounted_under "$root")" ]] || die "still mounted under $root, not removing it"
  rm -rf --one-file-system "$root"
}

# shellcheck disable=SC2317  # the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -d "$root" ]] && stop_root_processes
  unmount_root
  if ((keep)); then
    echo "fresh-check: root kept in $root (chroot $root /bin/bash -l to look around)"
  else
    remove_root
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the pristine base, cached as a tarball -----------------------------------------------
t0=$SECONDS
if ((rebuild_base)) || [[ ! -f "$base_tar" ]] || [[ "$(cat "$base_tar.packages" 2>/dev/null)" != "$BASE_PACKAGES" ]]; then
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap on the host"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  log "debootstrap $SUITE (minbase + $BASE_PACKAGES) from $MIRROR"
  staging="$dir/base.staging"
  rm -rf --one-file-system "$staging"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$staging" "$MIRROR" >"$dir/debootstrap.log" 2>&1 ||
    { tail -20 "$dir/debootstrap.log"; die "debootstrap failed (log: $dir/debootstrap.log)"; }
  [[ -z "$(mounted_under "$staging")" ]] || die "debootstrap left mounts under $staging"
  # A fresh machine has no downloaded packages and possibly no (or stale) package lists:
  # the repo's scripts must run apt-get update themselves.
  rm -rf "$staging"/var/cache/apt/archives/*.deb "$staging"/var/lib/apt/lists/*
  tar -C "$staging" --numeric-owner -cf "$base_tar.tmp" .
  mv "$base_tar.tmp" "$base_tar"
  echo "$BASE_PACKAGES" >"$base_tar.packages"
  rm -rf --one-file-system "$staging"
fi

log "fresh root in $root (from $base_tar)"
remove_root
rm -f "$dir/quickstart.log" "$dir/test.log" # no log of an earlier run may be taken for this one's
mkdir -p "$root"
tar -C "$root" --numeric-owner -xpf "$base_tar"
t_base=$((SECONDS - t0))

# --- what the machine has besides the packages ------------------------------------------------
# Network settings and the host's apt sources (bookworm, -updates, -security), as on the machine.
cp /etc/resolv.conf /etc/hosts "$root/etc/"
# The machine's TLS trust: on this network the registries can be reached through a proxy whose
# CA the machine adds to its bundle (without it pip fails with CERTIFICATE_VERIFY_FAILED,
# "self-signed certificate in certificate chain"), and pip is pointed at that bundle.
[[ -f /etc/ssl/certs/ca-certificates.crt ]] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
[[ -f /etc/pip.conf ]] && cp /etc/pip.conf "$root/etc/"
if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
  cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
  rm -f "$root/etc/apt/sources.list"
fi
# The root shares the host's network: a daemon started by a package's postinst (nginx on :80,
# etcd on :2379) would take the host's ports and outlive the run. Deny service starts, as
# chroots do (a policy-rc.d answering 101).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

# The host's Rust toolchain, the same version, with no network fetch: hard links when the root
# is on the same file system (nothing writes into a toolchain), else a copy.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
sysroot="$(cd "$REPO" && rustc --print sysroot)"
toolchain="$(basename "$sysroot")"
mkdir -p "$root/root/.rustup/toolchains" "$root/root/.cargo"
cp -al "$sysroot" "$root/root/.rustup/toolchains/$toolchain" 2>/dev/null ||
  cp -a "$sysroot" "$root/root/.rustup/toolchains/$toolchain"
printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "default"\nauto_self_update = "disable"\n' \
  "$toolchain" >"$root/root/.rustup/settings.toml"
cp -a "$cargo_home/bin" "$root/root/.cargo/"
# The crates already downloaded on the host, so they are not fetched again (a real copy:
# cargo rewrites index cache files in place).
[[ -d "$cargo_home/registry" ]] && cp -a "$cargo_home/registry" "$root/root/.cargo/"

# The repository at $sha: committed files only.
git clone -q --no-checkout "$REPO" "$root/root/louailink"
git -C "$root/root/louailink" cat-file -e "$sha^{commit}" 2>/dev/null || git -C "$root/root/louailink" fetch -q "$REPO" "$sha"
git -C "$root/root/louailink" checkout -q --detach "$sha"

# --- mounts ------------------------------------------------------------------------------
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"

# Runs a command in the root as a fresh login would, output to a log (streamed here too; a
# log file rather than a pipe, so a daemon that keeps our stdout cannot hang the run).
run_in_root() {
  local logf="$1" cmd="$2" pid rc=0
  : >"$logf"
  nice -n "$NICE" chroot "$root" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
    TERM="${TERM:-dumb}" LANG=C.UTF-8 RUSTUP_AUTO_INSTALL=0 \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "cd /root/louailink && $cmd" </dev/null >"$logf" 2>&1 &
  pid=$!
  tail -n +1 -f --pid="$pid" "$logf" &
  wait "$pid" || rc=$?
  wait $! 2>/dev/null || true
  return "$rc"
}

echo "checking $sha ($(git -C "$REPO" log -1 --format=%s "$sha" | cut -c1-70)) with toolchain $toolchain"
summary=()
failed=0

# --- 1. the README's first command ------------------------------------------------------------
# A louailink of someone else's on :6188 would answer for ours (the root shares the network).
if (exec 3<>"/dev/tcp/127.0.0.1/$QUICK_PORT") 2>/dev/null; then
  die "127.0.0.1:$QUICK_PORT is already in use on this machine; stop that first"
fi
log "1/2 scripts/quickstart.sh (log: $dir/quickstart.log)"
t0=$SECONDS
qs_rc=0
run_in_root "$dir/quickstart.log" scripts/quickstart.sh || qs_rc=$?
t_quick=$((SECONDS - t0))
pid_file="$root/tmp/louailink-quickstart.pid"
qs_pid="$(cat "$pid_file" 2>/dev/null || true)"
problems=()
((qs_rc == 0)) || problems+=("exit code $qs_rc")
grep -qE '^pong\r?$' "$dir/quickstart.log" || problems+=("no 'pong' from /ping")
grep -qF '{"message": "hello from louailink"}' "$dir/quickstart.log" || problems+=("no mock answer from /hello")
if [[ -n "$qs_pid" ]] && [[ "$(readlink "/proc/$qs_pid/root" 2>/dev/null)" == "$root" ]]; then
  # Stop it by its pid file, as the script's last line tells the user.
  kill "$qs_pid"
  for _ in $(seq 100); do kill -0 "$qs_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$qs_pid" 2>/dev/null && problems+=("pid $qs_pid still running 10 s after SIGTERM")
elif ((qs_rc == 0)); then
  problems+=("no running louailink of this root in $pid_file")
fi
if ((${#problems[@]})); then
  failed=1
  summary+=("FAIL  scripts/quickstart.sh  $(mmss $t_quick)  (${problems[*]})")
else
  summary+=("ok    scripts/quickstart.sh  $(mmss $t_quick)  (pong and the mock's answer; stopped by its pid file)")
fi

# --- 2. the README's second command -----------------------------------------------------------
if ((quick_only)); then
  summary+=("skip  scripts/test.sh  (--quick-only)")
else
  log "2/2 scripts/test.sh (log: $dir/test.log)"
  t0=$SECONDS
  test_rc=0
  run_in_root "$dir/test.log" scripts/test.sh || test_rc=$?
  t_test=$((SECONDS - t0))
  counts="$(grep -E '^test result: ' "$dir/test.log" |
    awk '{ p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d ignored in %d test binaries", p, f, i, NR }')"
  if ((test_rc == 0)); then
    summary+=("ok    scripts/test.sh  $(mmss $t_test)  ($counts)")
  else
    failed=1
    summary+=("FAIL  scripts/test.sh  $(mmss $t_test)  (exit code $test_rc; $counts)")
    while read -r name; do summary+=("        failed: $name"); done < <(grep -E '^test .* \.\.\. FAILED$' "$dir/test.log" | awk '{ print $2 }')
  fi
fi

log "summary ($sha, root from $(basename "$base_tar") in $(mmss $t_base))"
printf '  %s\n' "${summary[@]}"
exit "$failed"
