#!/usr/bin/env bash
# Runs DLIO (dlio-benchmark 2.0.0) against a mounted unet3d-like npz tree, with no data
# generation step. Not part of CI: it installs TensorFlow and MPI (about 1 GB).
#
#   tests/dlio/run.sh [FILES_TRAIN]
#
# Needs root (FUSE mount) and PyPI; MPI comes from PyPI's mpich wheel. DLIO_VENV names the
# venv (default .venv-dlio in the repository). dlio-benchmark's pinned dependencies include
# NVIDIA DALI, which cannot be installed here and which no non-DALI loader imports, and
# torch, whose PyPI wheel pulls CUDA; so we install DLIO with --no-deps plus its real
# imports, and run the unet3d workload with the TensorFlow framework and loader (same npz
# reader as pytorch).
# pydftracer is needed although DLIO guards its import: the fallback it defines fails.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${DLIO_VENV:-$repo/.venv-dlio}"
files="${1:-16}"

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip="$venv/bin/python -m pip install -q"
$pip --no-deps dlio-benchmark==2.0.0
$pip numpy h5py mpi4py mpich omegaconf hydra-core pandas psutil PyYAML Pillow tensorflow-cpu \
    pydftracer==1.0.2

(cd "$repo" && cargo build --release -q -p mountctl)
mountctl="${CARGO_TARGET_DIR:-$repo/target}/release/mountctl"

mnt="$(mktemp -d /tmp/dlio-mnt.XXXXXX)"
work="$(mktemp -d /tmp/dlio-work.XXXXXX)"
cleanup() {
    "$mountctl" umount "$mnt" || true
    rmdir "$mnt" || true
}
trap cleanup EXIT

# unet3d's shape scaled down: npz, one sample per file, 32 MiB mean with a 8 MiB spread.
"$mountctl" mount "$mnt" --preset unet3d --files-train "$files" \
    --record-length 32MiB --record-length-stdev 8MiB --seed 42
ls "$mnt" "$mnt/train" | head

cd "$work"
start=$(date +%s.%N)
"$venv/bin/dlio_benchmark" workload=unet3d_h100 \
    ++workload.framework=tensorflow \
    ++workload.reader.data_loader=tensorflow \
    ++workload.workflow.generate_data=False \
    ++workload.workflow.checkpoint=False \
    ++workload.dataset.data_folder="$mnt" \
    ++workload.dataset.num_files_train="$files" \
    ++workload.dataset.record_length=33554432 \
    ++workload.dataset.record_length_stdev=8388608 \
    ++workload.reader.read_threads=2 \
    ++workload.reader.batch_size=2 \
    ++workload.train.epochs=2 \
    ++workload.train.computation_time=0.01
end=$(date +%s.%N)
"$mountctl" status "$mnt" || true
echo "dlio finished in $(echo "$end - $start" | bc) s; output in $work"
