#!/usr/bin/env bash
# FUSE read speed of a dgenfs mount next to the same-size files on tmpfs (/dev/shm), in one
# run, plus time and RSS to mount 10 TiB / 10 million files. Two mounts take part: the
# default (per-CPU io_uring queues when the kernel offers them, see scripts/setup.sh) and
# one with --io-uring off (/dev/fuse). Prints a markdown table for docs/BENCHMARKS.md.
# Needs root, /dev/fuse, fio and python3; uses about 2 x FILE of RAM.
#
#   scripts/bench-fuse.sh [FILE_SIZE] [FIO_SECONDS] [ROUNDS]      (defaults: 4G, 10, 3)
#
# Each row alternates the two mounts and tmpfs ROUNDS times (one dd or cp pass, or one fio run
# of FIO_SECONDS, per turn) and reports the medians, because on a small shared machine one
# run can land in a bad scheduling phase.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

file_size=${1:-4G}
fio_secs=${2:-10}
rounds=${3:-3}
mountctl=target/release/mountctl
cargo build --release -q -p mountctl

work=$(mktemp -d /tmp/dgenfs-bench.XXXXXX)
mnt=$work/mnt
dev=$work/dev
big=$work/big
shm=/dev/shm/dgenfs-bench.$$
mkdir -p "$mnt" "$dev" "$big" "$shm"
cleanup() {
    "$mountctl" umount "$mnt" >/dev/null 2>&1 || true
    "$mountctl" umount "$dev" >/dev/null 2>&1 || true
    "$mountctl" umount "$big" >/dev/null 2>&1 || true
    rm -rf "$shm" "$work"
}
trap cleanup EXIT

"$mountctl" mount "$mnt" --size "$file_size" --files 1 --seed 1 >/dev/null
bytes=$(stat -c %s "$mnt/file_0")
"$mountctl" umount "$mnt" >/dev/null
"$mountctl" mount "$mnt" --size $((2 * bytes)) --files 2 --seed 1 --compress 1 >/dev/null
"$mountctl" mount "$dev" --size $((2 * bytes)) --files 2 --seed 1 --io-uring off >/dev/null
transport="/dev/fuse (the kernel does not offer io_uring)"
"$mountctl" status "$mnt" | grep -q "io_uring queues" && transport="io_uring"
"$mountctl" generate --size "$bytes" --seed 1 -o "$shm/file_0" 2>/dev/null
"$mountctl" generate --size "$bytes" --offset "$bytes" --seed 1 -o "$shm/file_1" 2>/dev/null

cp_rate() {
    local start end
    start=$(now)
    cp "$1" /dev/null
    end=$(now)
    python3 -c "print(f'{$bytes / ($end - $start) / 1e9:.2f}')"
}

# Runs "$@" with each of the three roots (default mount, /dev/fuse mount, tmpfs) as $root,
# the three taking turns $rounds times; prints the medians of each output column, root by
# root (the columns of the default mount first).
three() {
    local runs="" line
    for _ in $(seq "$rounds"); do
        line=""
        for root in "$mnt" "$dev" "$shm"; do line+="$(root=$root "$@") "; done
        runs+="$line"$'\n'
    done
    python3 -c 'import statistics,sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
print(" ".join("%g" % statistics.median(c) for c in zip(*rows)))' <<<"$runs"
}

# fio randread on one file: prints "GB/s IOPS p50_us p90_us" (completion latency
# percentiles). Extra fio flags may follow the five.
fio_rate() {
    local file=$root/$1 bs=$2 engine=$3 direct=$4 depth=$5
    shift 5
    fio "$@" --name=r --filename="$file" --readonly --rw=randread --bs="$bs" --ioengine="$engine" \
        --direct="$direct" --iodepth="$depth" --numjobs=2 --time_based --runtime="$fio_secs" \
        --group_reporting --output-format=json 2>/dev/null |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["jobs"][0]["read"];
p=r["clat_ns"]["percentile"];
print("%.2f %.0f %.1f %.1f" % (r["bw_bytes"] / 1e9, r["iops"], p["50.000000"] / 1e3,
    p["90.000000"] / 1e3))'
}

row() { # name, default mount value, /dev/fuse mount value, tmpfs value
    python3 -c "
f, d, t = float('$2'), float('$3'), float('$4')
show = lambda v: f'{v:.0f}' if v >= 1000 else f'{v:g}'
print(f'| $1 | {show(f)} | {show(d)} | {show(t)} | {f / t:.2f} | {d / t:.2f} |')"
}

echo "dgenfs serves through $transport; the --io-uring off mount through /dev/fuse."
echo
echo "| workload (file of $(numfmt --to=iec "$bytes")) | dgenfs | dgenfs --io-uring off" \
    "| tmpfs | dgenfs / tmpfs | off / tmpfs |"
echo "|---|---|---|---|---|---|"
dd1() { dd_rate "$root/file_0"; }
dd2() { dd_rate "$root/file_0" "$root/file_1"; }
cp1() { cp_rate "$root/file_0"; }
row "dd bs=1M, 1 reader (GB/s)" $(three dd1)
row "dd bs=1M, 2 readers (GB/s total)" $(three dd2)
row "cp to /dev/null (GB/s)" $(three cp1)
for spec in "4k psync 0 1" "1M psync 0 1" "4k libaio 1 16" "1M libaio 1 16"; do
    set -- $spec
    read -r fb fi fp50 fp90 db di dp50 dp90 tb ti tp50 tp90 <<<"$(three fio_rate file_0 "$@")"
    label="fio randread $1 $2, 2 jobs"
    [ "$3" = 1 ] && label="fio randread $1 $2 direct qd$4, 2 jobs"
    row "$label (GB/s)" "$fb" "$db" "$tb"
    row "$label (IOPS)" "$fi" "$di" "$ti"
    if [ "$1 $2" = "4k psync" ]; then
        latency="fio randread 4k psync, 2 jobs, completion latency median (p90): dgenfs"
        latency+=" $fp50 µs ($fp90 µs), --io-uring off $dp50 µs ($dp90 µs),"
        latency+=" tmpfs $tp50 µs ($tp90 µs)."
    fi
done
pid=$("$mountctl" status "$mnt" | sed -n 's/.*pid \([0-9]*\).*/\1/p')
served=$("$mountctl" status "$mnt" | sed -n 's/.*served: \(.*\) in.*/\1/p')
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")

# Page-cache mode: the first pass fills the cache, the measured pass reads from it.
"$mountctl" umount "$mnt" >/dev/null
"$mountctl" umount "$dev" >/dev/null
"$mountctl" mount "$mnt" --size $((2 * bytes)) --files 2 --seed 1 --kernel-cache >/dev/null
"$mountctl" mount "$dev" --size $((2 * bytes)) --files 2 --seed 1 --kernel-cache \
    --io-uring off >/dev/null
cat "$mnt/file_0" "$dev/file_0" >/dev/null
read -r fb fi fp50 fp90 db di dp50 dp90 tb ti tp50 tp90 \
    <<<"$(three fio_rate file_0 4k psync 0 1 --invalidate=0)"
row "fio randread 4k psync, 2 jobs, --kernel-cache, cached (IOPS)" "$fi" "$di" "$ti"
echo
echo "$latency"
echo
echo "Daemon RSS after serving $served: $((rss / 1024)) MiB."

start=$(now)
"$mountctl" mount "$big" --size 10T --files 10000000 --seed 1 >/dev/null
end=$(now)
pid=$("$mountctl" status "$big" | sed -n 's/.*pid \([0-9]*\).*/\1/p')
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
last=$(find "$big" -maxdepth 1 -name 'dir_*' | sort | tail -1)
deep=$(find "$last" -maxdepth 1 -name 'dir_*' | sort | tail -1)
count=$(find "$deep" -type f | wc -l)
echo "Mount of 10 TiB / 10,000,000 files (2 directory levels, 1000 per dir):" \
    "$(python3 -c "print(f'{($end - $start) * 1000:.0f}')") ms until \`mountctl mount\`" \
    "returned, daemon RSS $((rss / 1024)) MiB; the last leaf directory lists $count files."
