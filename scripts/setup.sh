#!/usr/bin/env bash
# Installs what dgenfs needs on a fresh Debian machine and builds `mountctl` into
# /usr/local/bin. Run as root. Idempotent: packages already present are not reinstalled.
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

cargo build --release --locked -p mountctl
install -m 0755 target/release/mountctl /usr/local/bin/mountctl
echo "installed /usr/local/bin/mountctl"
