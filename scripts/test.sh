#!/usr/bin/env bash
# Runs every test: installs what the tests need, checks formatting and lints (clippy with the
# workspace's lints, warnings as errors), builds the binaries the end-to-end tests start, then
# runs unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --test
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
cargo test --workspace --no-fail-fast
