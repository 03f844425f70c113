"""Fill speed of dgenfs next to dgen-py 0.3.0, memcpy and memset, measured in one run.

Usage: python3 scripts/bench_fill.py MOUNTCTL DGENPY_PYTHON [rounds]

MOUNTCTL is the release `mountctl` binary; DGENPY_PYTHON a Python with dgen-py==0.3.0
installed. For every buffer size, ratio and thread count the two take turns `rounds` times,
three rounds of 256 MiB each per turn (after a warm-up fill), so a burst of load from other
work on the machine hits both alike; the table gives the medians in GB/s (10^9 bytes/s)
and their ratios. memcpy and memset of the same buffer run with the row's thread count,
split as the fill is (buffers under 4 MiB stay on one thread).
"""

import statistics
import subprocess
import sys

SIZES = {"1 MiB": 1 << 20, "8 MiB": 8 << 20, "32 MiB": 32 << 20}
RATIOS = [1, 2]
THREADS = [1, 2]
# Rounds of 256 MiB per contender per turn (each turn reports the median of its rounds), so
# that a turn is not one ~10 ms sample taken just after the process started.
PER_TURN = 3

# dgen-py's Generator allocates memory in proportion to `size` (about 8 GB for 2**50), so
# the stream is 1 TiB: more than a run fills, and a few MiB of its tables.
DGENPY = r"""
import sys, time, statistics, dgen_py
size, c, threads, rounds = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
g = dgen_py.Generator(size=1 << 40, compress_ratio=c, max_threads=threads, chunk_size=size)
buf = bytearray(size)
g.fill_chunk(buf)
calls = max(1, (256 << 20) // size)
rates = []
for _ in range(rounds):
    t = time.perf_counter()
    for _ in range(calls):
        g.fill_chunk(buf)
    rates.append(calls * size / (time.perf_counter() - t) / 1e9)
print(statistics.median(rates))
"""


def ours(mountctl, size, c, threads, rounds):
    out = subprocess.run(
        [mountctl, "bench", "--size", str(size), "--compress", str(c),
         "--threads", str(threads), "--rounds", str(rounds)],
        check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[2].replace(".", "", 1).isdigit():
            rows[cells[0], int(cells[1])] = float(cells[2])
    fill = next(v for (what, _), v in rows.items() if what.startswith("fill"))
    return fill, rows["memcpy", threads], rows["memset", threads]


def dgenpy(python, size, c, threads, rounds):
    out = subprocess.run([python, "-c", DGENPY, str(size), str(c), str(threads), str(rounds)],
                         check=True, capture_output=True, text=True).stdout
    return float(out.strip())


def main():
    mountctl, python = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    print("| buffer | compress | threads | dgenfs GB/s | dgen-py 0.3.0 GB/s | dgenfs / dgen-py "
          "| memcpy GB/s | memset GB/s | dgenfs / memcpy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, size in SIZES.items():
        for c in RATIOS:
            for threads in THREADS:
                samples = []
                for _ in range(rounds):
                    theirs = dgenpy(python, size, c, threads, PER_TURN)
                    samples.append((theirs, *ours(mountctl, size, c, threads, PER_TURN)))
                theirs, fill, memcpy, memset = (statistics.median(x) for x in zip(*samples))
                print(f"| {name} | {c} | {threads} | {fill:.2f} | {theirs:.2f} | "
                      f"{fill / theirs:.2f}x | {memcpy:.2f} | {memset:.2f} | "
                      f"{fill / memcpy:.2f} |", flush=True)


if __name__ == "__main__":
    main()
