#!/usr/bin/env bash
# Read speed of each DLIO format through the mount next to raw files of the same sizes, in
# one run, and the time to mount the full-size MLPerf Storage presets. Prints markdown for
# docs/BENCHMARKS.md. Needs root and /dev/fuse.
#
#   scripts/bench-dlio.sh [FILES] [RECORD_LENGTH] [ROUNDS]   (defaults: 8, 128MiB, 5)
#
# Every format serves FILES files of one sample of RECORD_LENGTH bytes (tfrecord: the same
# bytes as 1024 records, like resnet50), read whole by two parallel `dd bs=1M` streams.
# Each round mounts every format afresh, reads each one once ("first": nothing computed
# ahead, every npz CRC and TFRecord CRC comes from this pass) and then once more ("later"),
# format after format, so load spikes from other processes hit all formats alike. The
# table gives medians over ROUNDS rounds; "vs raw" is the median of per-round ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

files=${1:-8}
record=${2:-128MiB}
rounds=${3:-5}
mountctl=${CARGO_TARGET_DIR:-target}/release/mountctl
cargo build --release -q -p mountctl

work=$(mktemp -d /tmp/dgenfs-bench-dlio.XXXXXX)
umount_all() {
    for m in "$work"/*/; do "$mountctl" umount "$m" >/dev/null 2>&1 || true; done
}
cleanup() {
    umount_all
    rm -rf "$work"
}
trap cleanup EXIT

# GB/s (10^9) of reading every file under $1 with two dd streams.
read_rate() {
    local list start end total
    list=$(find "$1" -type f | sort)
    total=$(echo "$list" | xargs stat -c %s |
        python3 -c "import sys; print(sum(map(int, sys.stdin)))")
    start=$(now)
    echo "$list" | xargs -P 2 -I{} dd if={} of=/dev/null bs=1M status=none
    end=$(now)
    python3 -c "print(f'{$total / ($end - $start) / 1e9:.2f}')"
}

# Formatted files bypass the block cache, so the baseline is raw with --cache 0 (the same
# generator-direct path); "raw+cache" is raw with a 256M block cache, for reference.
formats=(raw npy npz hdf5 tfrecord raw+cache)
record_bytes=$(python3 -c "print(int($(echo "$record" | sed 's/MiB/*1048576/; s/KiB/*1024/')))")
mount_all() {
    local format samples cache
    for format in "${formats[@]}"; do
        mkdir -p "$work/$format"
        samples=1
        [ "$format" = tfrecord ] && samples=1024
        cache=(--cache 0)
        [ "$format" = raw+cache ] && cache=(--cache 256M)
        "$mountctl" mount "$work/$format" --layout dlio --format "${format%+cache}" \
            --files-train "$files" --samples-per-file "$samples" \
            --record-length $((record_bytes / samples)) --seed 7 "${cache[@]}" >/dev/null
    done
}

declare -A first later
for _ in $(seq "$rounds"); do
    mount_all
    for format in "${formats[@]}"; do first[$format]+=" $(read_rate "$work/$format")"; done
    for format in "${formats[@]}"; do later[$format]+=" $(read_rate "$work/$format")"; done
    umount_all
done

# "vs raw" is the median over rounds of the format's rate over raw's in the same round.
echo "| format | first read GB/s | vs raw | later reads GB/s | vs raw |"
echo "|---|---|---|---|---|"
for format in "${formats[@]}"; do
    python3 -c "
import statistics as st
f, rf = [$(echo ${first[$format]} | tr ' ' ,)], [$(echo ${first[raw]} | tr ' ' ,)]
l, rl = [$(echo ${later[$format]} | tr ' ' ,)], [$(echo ${later[raw]} | tr ' ' ,)]
ratio = lambda a, b: st.median(x / y for x, y in zip(a, b))
cells = [st.median(f), ratio(f, rf), st.median(l), ratio(l, rl)]
print('| $format | ' + ' | '.join(f'{c:.2f}' for c in cells) + ' |')"
done
echo
echo "| preset | files | mount + stat of the last file | ls of train/ |"
echo "|---|---|---|---|"
declare -A last=([unet3d]=img_167_of_168.npz [resnet50]=img_1023_of_1024.tfrecord
    [cosmoflow]=img_524287_of_524288.tfrecord)
for preset in unet3d resnet50 cosmoflow; do
    mkdir -p "$work/$preset"
    start=$(now)
    "$mountctl" mount "$work/$preset" --preset "$preset" --seed 1 >/dev/null
    stat -c %s "$work/$preset/train/${last[$preset]}" >/dev/null
    end=$(now)
    count=$(ls -f "$work/$preset/train" | grep -c img_)
    listed=$(now)
    python3 -c "
print(f'| $preset | $count | {($end - $start) * 1000:.0f} ms | {($listed - $end) * 1000:.0f} ms |')"
    "$mountctl" umount "$work/$preset" >/dev/null
done
