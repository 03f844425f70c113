#!/usr/bin/env bash
# Sets up a fresh machine and runs every test: formatting, lints, the Rust test suites
# (content contract, kernel-free filesystem core, real FUSE mounts) and the Python suite.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

cargo fmt --all --check
cargo clippy --release --locked --all-targets -- -D warnings
cargo test --release --locked --workspace
if [ -x python/run-tests.sh ]; then
    python/run-tests.sh "${DGENFS_VENV:-$PWD/.venv}"
fi
