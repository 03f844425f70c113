#!/usr/bin/env bash
# Installs what dgenfs needs on a fresh Debian machine, builds `mountctl` into
# /usr/local/bin and installs the `dgen_py` Python package into python3 (or, where the
# interpreter is externally managed, into the venv .venv). Run as root. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# fuse3: fusermount3 for auto-unmount; fio and zstd: tests and benchmarks; python3-venv:
# the Python test venv; libhwloc-dev, libudev-dev, pkg-config: hwlocality (NUMA placement
# of the cache).
packages=(fuse3 fio zstd pkg-config python3-venv libhwloc-dev libudev-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# FUSE over io_uring (Linux 6.14+) is off in the kernel by default; mounts use it once it
# is on (per-CPU request queues: reads are answered on the reader's CPU).
uring=/sys/module/fuse/parameters/enable_uring
if [ -w "$uring" ] && [ "$(cat "$uring")" != Y ]; then
    echo Y > "$uring"
    echo "turned on FUSE over io_uring ($uring)"
fi

cargo build --release --locked -p mountctl
install -m 0755 target/release/mountctl /usr/local/bin/mountctl
echo "installed /usr/local/bin/mountctl"

# dgen_py: the build backend (maturin) comes from PyPI; python/target keeps the Rust build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/python/target}"
if python3 -m pip install -q ./python 2>/dev/null; then
    echo "installed dgen_py into $(command -v python3)"
else
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q ./python
    echo "installed dgen_py into $PWD/.venv (use .venv/bin/python)"
fi
