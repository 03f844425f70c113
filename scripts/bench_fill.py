"""Fill speed of dgenfs next to dgen-py 0.3.0, memcpy and memset, measured in one run.

Usage: python3 scripts/bench_fill.py MOUNTCTL DGENPY_PYTHON [rounds]

MOUNTCTL is the release `mountctl` binary; DGENPY_PYTHON a Python with dgen-py==0.3.0
installed. For every buffer size and ratio the two take turns `rounds` times: in a turn
dgen-py runs three rounds of 256 MiB at each thread count, then one `mountctl bench` call
runs three rounds at each, alternating the thread counts round by round (after a warm-up
fill), so a burst of load from other work on the machine hits every contender alike. The
table gives the medians in GB/s (10^9 bytes/s) and their ratios; memcpy and memset of the
same buffer run with the row's thread count, split as the fill is (buffers under 4 MiB stay
on one thread). The scaling table gives the median over turns of each turn's two-thread /
one-thread ratio.
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


def ours(mountctl, size, c, rounds):
    """One `mountctl bench` call for every thread count, its rounds alternating between
    them: {threads: (fill, memcpy, memset)}."""
    out = subprocess.run(
        [mountctl, "bench", "--size", str(size), "--compress", str(c),
         "--threads", ",".join(map(str, THREADS)), "--rounds", str(rounds)],
        check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[2].replace(".", "", 1).isdigit():
            what = "fill" if cells[0].startswith("fill") else cells[0]
            rows[what, int(cells[1])] = float(cells[2])
    return {t: (rows["fill", t], rows["memcpy", t], rows["memset", t]) for t in THREADS}


def dgenpy(python, size, c, threads, rounds):
    out = subprocess.run([python, "-c", DGENPY, str(size), str(c), str(threads), str(rounds)],
                         check=True, capture_output=True, text=True).stdout
    return float(out.strip())


def main():
    mountctl, python = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    rows, scaling = [], []
    for name, size in SIZES.items():
        for c in RATIOS:
            # One turn: dgen-py at each thread count, then one `mountctl bench` call.
            turns = []
            for _ in range(rounds):
                theirs = {t: dgenpy(python, size, c, t, PER_TURN) for t in THREADS}
                turns.append((theirs, ours(mountctl, size, c, PER_TURN)))
            for t in THREADS:
                theirs = statistics.median(turn[0][t] for turn in turns)
                fill, memcpy, memset = (statistics.median(turn[1][t][i] for turn in turns)
                                        for i in range(3))
                rows.append(f"| {name} | {c} | {t} | {fill:.2f} | {theirs:.2f} | "
                            f"{fill / theirs:.2f}x | {memcpy:.2f} | {memset:.2f} | "
                            f"{fill / memcpy:.2f} |")
            # Each turn's ratio comes from one process whose rounds alternated the counts.
            lo, hi = THREADS[0], THREADS[-1]
            ratio = statistics.median(turn[1][hi][0] / turn[1][lo][0] for turn in turns)
            theirs = statistics.median(turn[0][hi] / turn[0][lo] for turn in turns)
            scaling.append(f"| {name} | {c} | {ratio:.2f}x | {theirs:.2f}x |")
    print("| buffer | compress | threads | dgenfs GB/s | dgen-py 0.3.0 GB/s | dgenfs / dgen-py "
          "| memcpy GB/s | memset GB/s | dgenfs / memcpy |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print(f"{THREADS[-1]} threads / {THREADS[0]} thread, median of the per-turn ratios:")
    print()
    print("| buffer | compress | dgenfs | dgen-py 0.3.0 |")
    print("|---|---|---|---|")
    print("\n".join(scaling))


if __name__ == "__main__":
    main()
