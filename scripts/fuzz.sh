#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets) for a bounded time: FUZZ_SECS per target (default
# 300). Needs the nightly toolchain; installs cargo-fuzz when missing. Not run by CI.
#   scripts/fuzz.sh                 every target
#   scripts/fuzz.sh path router     only these
# Crashes are written to fuzz/artifacts/<target>/ and the script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${FUZZ_SECS:-300}"
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz: the nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo +nightly install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=($(cd fuzz/fuzz_targets && ls *.rs | sed 's/\.rs$//'))
fi

# Seeds: the repo's own configs for the parser, a few paths and rules for the others.
mkdir -p fuzz/corpus/config fuzz/corpus/path fuzz/corpus/router fuzz/corpus/rewrite
for f in conf/*.toml; do printf '\0' | cat - "$f" > "fuzz/corpus/config/seed-$(basename "$f")"; done
printf 'x/../admin' > fuzz/corpus/path/seed-dots
printf '%%61dmin//b/%%2e%%2e/c' > fuzz/corpus/path/seed-escapes
printf '=/admin\n/secret/\n~^/items/[0-9]+$\n|/admin' > fuzz/corpus/router/seed-kinds
printf '^/api/(?P<rest>.*) /v2/$rest\n/api/a/b' > fuzz/corpus/rewrite/seed-named

failed=()
for t in "${targets[@]}"; do
    echo "== fuzz $t for ${secs}s"
    if ! cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -max_len=4096; then
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]} (see fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: no crash in ${targets[*]} (${secs}s each)"
