#!/usr/bin/env bash
# Benchmarks our dgen_py against dgen-py 0.3.0 from PyPI, each in its own venv (both
# import as dgen_py), alternating in one run. Prints markdown tables for docs/BENCHMARKS.md.
#
#   scripts/bench-python.sh [VENV_DIR] [--rounds N] [--total BYTES]
#
# VENV_DIR (default /tmp/dgen-bench) holds the two venvs; they are reused when present.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-/tmp/dgen-bench}"
[ $# -gt 0 ] && shift

if [ ! -x "$dir/theirs/bin/python" ]; then
    python3 -m venv "$dir/theirs"
    "$dir/theirs/bin/python" -m pip install -q dgen-py==0.3.0
fi
[ -x "$dir/ours/bin/python" ] || python3 -m venv "$dir/ours"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/python/target}" \
    "$dir/ours/bin/python" -m pip install -q --force-reinstall --no-deps "$repo/python"

python3 "$repo/scripts/bench_python.py" \
    --ours "$dir/ours/bin/python" --theirs "$dir/theirs/bin/python" "$@"
