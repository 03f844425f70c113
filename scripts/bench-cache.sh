#!/usr/bin/env bash
# Block cache and read-ahead, in one run: one and two `dd bs=1M` readers with --cache 0,
# the default cache and the same files on tmpfs (/dev/shm); a dedup-10 tree read twice
# (hit rate, throughput); daemon peak RSS against --cache while two readers read 20 GiB.
# Prints markdown for the Cache section of docs/BENCHMARKS.md. Needs root, /dev/fuse and
# python3; uses about 2 x FILE of RAM for the tmpfs copies.
#
#   scripts/bench-cache.sh [FILE_SIZE] [RSS_TOTAL]      (defaults: 1G, 20G)
set -euo pipefail
cd "$(dirname "$0")/.."

file_size=${1:-1G}
rss_total=${2:-20G}
mountctl=target/release/mountctl
cargo build --release -q -p mountctl

work=$(mktemp -d /tmp/dgenfs-cache-bench.XXXXXX)
mnt=$work/mnt
shm=/dev/shm/dgenfs-cache-bench.$$
mkdir -p "$mnt" "$shm"
cleanup() {
    "$mountctl" umount "$mnt" >/dev/null 2>&1 || true
    rm -rf "$shm" "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
to_bytes() { python3 -c "import sys; u={'K':10,'M':20,'G':30,'T':40}; s=sys.argv[1]; print(int(s[:-1]) << u[s[-1]] if s[-1] in u else int(s))" "$1"; }
bytes=$(to_bytes "$file_size")

# GB/s (10^9) of reading the given files in parallel with dd bs=1M, best of 3.
dd_rate() {
    local best=0 start end rate total=0 f
    for f in "$@"; do total=$((total + $(stat -c %s "$f"))); done
    for _ in 1 2 3; do
        start=$(now)
        for f in "$@"; do dd if="$f" of=/dev/null bs=1M status=none & done
        wait
        end=$(now)
        rate=$(python3 -c "print(f'{$total / ($end - $start) / 1e9:.2f}')")
        best=$(python3 -c "print(max($best, $rate))")
    done
    echo "$best"
}

mount_tree() { "$mountctl" mount "$mnt" --seed 1 "$@" >/dev/null; }
umount_tree() { "$mountctl" umount "$mnt" >/dev/null; }
daemon_pid() { "$mountctl" status "$mnt" | sed -n 's/.*  pid \([0-9]*\) .*/\1/p' | head -1; }
cache_line() { "$mountctl" status "$mnt" | grep '  cache:' | sed 's/^ *//'; }

"$mountctl" generate --size "$bytes" --seed 1 -o "$shm/file_0" 2>/dev/null
"$mountctl" generate --size "$bytes" --offset "$bytes" --seed 1 -o "$shm/file_1" 2>/dev/null

mount_tree --size $((2 * bytes)) --files 2 --cache 0
transport="/dev/fuse (the kernel does not offer io_uring)"
"$mountctl" status "$mnt" | grep -q "io_uring queues" && transport="io_uring queues"
umount_tree
echo "Default transport: $transport."
echo
echo "| readers | --cache 0 (the default) | --cache 256M | --cache 256M --io-uring off | tmpfs |"
echo "|---|---|---|---|---|"
for readers in 1 2; do
    files=(); for ((i = 0; i < readers; i++)); do files+=("$mnt/file_$i"); done
    shm_files=(); for ((i = 0; i < readers; i++)); do shm_files+=("$shm/file_$i"); done
    mount_tree --size $((2 * bytes)) --files 2 --cache 0
    off=$(dd_rate "${files[@]}"); umount_tree
    mount_tree --size $((2 * bytes)) --files 2 --cache 256M
    on=$(dd_rate "${files[@]}"); umount_tree
    mount_tree --size $((2 * bytes)) --files 2 --cache 256M --io-uring off
    dev=$(dd_rate "${files[@]}"); umount_tree
    tmpfs=$(dd_rate "${shm_files[@]}")
    echo "| $readers x dd bs=1M, $file_size each | $off GB/s | $on GB/s | $dev GB/s |" \
        "$tmpfs GB/s |"
done
rm -rf "$shm"

echo
printf '%s\n' "| dedup-10 tree, 1 GiB in 64 MiB files, compress 2 | --cache | GB/s |" \
    " cache counters after the pass |" | paste -sd ''
echo "|---|---|---|---|"
for cache in 0 256M; do
    mount_tree --size 1G --file-size 64M --dedup 10 --compress 2 --cache "$cache"
    for pass in 1 2; do
        start=$(now)
        cat "$mnt"/file_* >/dev/null
        end=$(now)
        rate=$(python3 -c "print(f'{(1 << 30) / ($end - $start) / 1e9:.2f}')")
        echo "| pass $pass (cat) | $cache | $rate | $(cache_line) |"
    done
    umount_tree
done

echo
echo "| --cache | daemon peak RSS, 2 readers x $rss_total / 2 | GB/s |"
echo "|---|---|---|"
total=$(to_bytes "$rss_total")
for cache in 0 64M 256M 1G; do
    mount_tree --size "$total" --files 2 --cache "$cache"
    pid=$(daemon_pid)
    start=$(now)
    dd if="$mnt/file_0" of=/dev/null bs=1M status=none &
    dd if="$mnt/file_1" of=/dev/null bs=1M status=none &
    wait
    end=$(now)
    hwm=$(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$pid/status")
    rate=$(python3 -c "print(f'{$total / ($end - $start) / 1e9:.2f}')")
    umount_tree
    echo "| $cache | $hwm | $rate |"
done
