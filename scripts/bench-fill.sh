#!/usr/bin/env bash
# Fill speed of dgenfs vs dgen-py 0.3.0, memcpy and memset, plus achieved compress ratios.
# Usage: scripts/bench-fill.sh [rounds]   (prints markdown tables for docs/BENCHMARKS.md)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${DGENPY_VENV:-/tmp/dgenpy-0.3.0}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q dgen-py==0.3.0
fi
cargo build --release -q -p mountctl
cargo build --release -q -p dgenfs --example ratios
echo "## Fill speed"
python3 scripts/bench_fill.py target/release/mountctl "$venv/bin/python" "${1:-7}"
echo
echo "## Achieved compress ratios (16 MiB stream, seed 1)"
target/release/examples/ratios 16 1 1.5 2 3 4 8 16 32 64
