#!/usr/bin/env bash
# Builds and installs dgen_py into a venv, then runs stubtest and the pytest suite.
#
#   python/run-tests.sh VENV [pytest args...]
#
# VENV is created when missing. Needs rustc/cargo, python3 with venv and headers
# (Debian: python3-venv python3-dev), and for the mount tests /dev/fuse, root and
# fusermount3 (Debian: fuse3); those tests skip with the reason otherwise.
# MOUNTCTL may name the mountctl binary; by default target/release/mountctl is built.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
venv="${1:?usage: python/run-tests.sh VENV [pytest args...]}"
shift

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q pytest mypy numpy
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}" \
    "$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$here"

if [ -z "${MOUNTCTL:-}" ]; then
    (cd "$repo" && cargo build --release --locked -q -p mountctl)
    export MOUNTCTL="$repo/target/release/mountctl"
fi

# From / so that python/dgen_py (without its native module) does not shadow the install.
cd /
echo "== stubtest"
"$venv/bin/python" -m mypy.stubtest dgen_py
echo "== pytest"
"$venv/bin/pytest" -p no:cacheprovider --rootdir "$here" -c "$here/pyproject.toml" "$here/tests" "$@"
