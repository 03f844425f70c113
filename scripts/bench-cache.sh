#!/usr/bin/env bash
# Block cache and read-ahead, in one run: one and two `dd bs=1M` readers with --cache 0,
# --cache 256M (over io_uring and /dev/fuse) and the same files on tmpfs (/dev/shm), taking
# turns round by round; a dedup-10 tree read twice
# (hit rate, throughput); daemon peak RSS against --cache while two readers read 20 GiB.
# Prints markdown for the Cache section of docs/BENCHMARKS.md. Needs root, /dev/fuse and
# python3; uses about 2 x FILE of RAM for the tmpfs copies.
#
#   scripts/bench-cache.sh [FILE_SIZE] [RSS_TOTAL] [ROUNDS]      (defaults: 1G, 20G, 5)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

file_size=${1:-1G}
rss_total=${2:-20G}
rounds=${3:-5}
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

to_bytes() {
    python3 -c "import sys; u = {'K': 10, 'M': 20, 'G': 30, 'T': 40}; s = sys.argv[1]
print(int(s[:-1]) << u[s[-1]] if s[-1] in u else int(s))" "$1"
}
bytes=$(to_bytes "$file_size")

# "median (min-max)" of the numbers given.
spread() {
    python3 -c "import statistics, sys; v = sorted(map(float, sys.argv[1:]))
print(f'{statistics.median(v):.2f} ({v[0]:.2f}-{v[-1]:.2f})')" "$@"
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
echo "One fresh mount per read; the four settings take turns, $rounds rounds;"
echo "GB/s, median (min-max)."
echo
echo "| readers | --cache 0 (the default) | --cache 256M | --cache 256M --io-uring off | tmpfs |"
echo "|---|---|---|---|---|"
settings=("--cache 0" "--cache 256M" "--cache 256M --io-uring off")
for readers in 1 2; do
    files=(); for ((i = 0; i < readers; i++)); do files+=("$mnt/file_$i"); done
    shm_files=(); for ((i = 0; i < readers; i++)); do shm_files+=("$shm/file_$i"); done
    declare -a r0=() r1=() r2=() rt=()
    for ((round = 0; round < rounds; round++)); do
        for s in 0 1 2; do
            # shellcheck disable=SC2086
            mount_tree --size $((2 * bytes)) --files 2 ${settings[$s]}
            rate=$(dd_rate "${files[@]}")
            umount_tree
            case $s in 0) r0+=("$rate") ;; 1) r1+=("$rate") ;; 2) r2+=("$rate") ;; esac
        done
        rt+=("$(dd_rate "${shm_files[@]}")")
    done
    echo "| $readers x dd bs=1M, $file_size each | $(spread "${r0[@]}") | $(spread "${r1[@]}") |" \
        "$(spread "${r2[@]}") | $(spread "${rt[@]}") |"
    unset r0 r1 r2 rt
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
