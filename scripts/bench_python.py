"""Python fill benchmark: our dgen_py against dgen-py 0.3.0, run alternately.

Driver:  python3 bench_python.py --ours VENV_PY --theirs VENV_PY [--total 1G] [--rounds 5]
Worker:  VENV_PY bench_python.py --worker fill CHUNK THREADS COMPRESS TOTAL
         VENV_PY bench_python.py --worker alloc COUNT SIZE

Both packages import as dgen_py, so each runs in its own interpreter; every round runs
each configuration once per package, alternating, and the table shows medians in GB/s
(10^9 bytes per second).
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

MiB = 1 << 20


def worker_fill(chunk, threads, compress, total):
    import dgen_py

    threads = None if threads == 0 else threads
    gen = dgen_py.Generator(size=total, compress_ratio=compress, max_threads=threads, seed=1)
    buf = bytearray(chunk)
    gen.fill_chunk(buf)  # warm-up: page faults, thread pool start
    gen.reset()
    start = time.perf_counter()
    done = 0
    while not gen.is_complete():
        done += gen.fill_chunk(buf)
    return done / (time.perf_counter() - start) / 1e9


def worker_alloc(count, size):
    import dgen_py

    out = {}
    for name, make in [
        ("create_bytearrays", lambda: dgen_py.create_bytearrays(count, size)),
        ("[bytearray(size)]", lambda: [bytearray(size) for _ in range(count)]),
    ]:
        start = time.perf_counter()
        bufs = make()
        out[name] = (time.perf_counter() - start) * 1e3
        del bufs
    return out


def run(python, *args):
    out = subprocess.run(
        [python, __file__, "--worker", *map(str, args)],
        check=True, capture_output=True, text=True, cwd="/",
    )
    return json.loads(out.stdout)


def driver(opts):
    impls = {"dgen_py (ours)": opts.ours, "dgen-py 0.3.0": opts.theirs}
    configs = [
        (chunk, threads, compress)
        for compress in (1, 2)
        for chunk in (MiB, 32 * MiB)
        for threads in (1, 2)
    ]
    rates = {(name, c): [] for name in impls for c in configs}
    for _ in range(opts.rounds):
        for c in configs:
            for name, py in impls.items():
                rates[(name, c)].append(run(py, "fill", *c, opts.total))

    print(f"fill_chunk streaming {opts.total / 2**30:g} GiB, median of {opts.rounds} rounds, GB/s")
    print()
    print("| compress | chunk | threads | dgen_py (ours) | dgen-py 0.3.0 | ours / theirs |")
    print("|---|---|---|---|---|---|")
    for c in configs:
        ours = statistics.median(rates[("dgen_py (ours)", c)])
        theirs = statistics.median(rates[("dgen-py 0.3.0", c)])
        chunk, threads, compress = c
        print(
            f"| {compress} | {chunk // MiB} MiB | {threads} | {ours:.2f} | {theirs:.2f} "
            f"| {ours / theirs:.2f}x |"
        )

    print()
    print("allocation, median of rounds, ms")
    print()
    print("| buffers | dgen_py create_bytearrays | dgen-py 0.3.0 create_bytearrays "
          "| [bytearray(size) for ...] |")
    print("|---|---|---|---|")
    for count, size in [(64, 32 * MiB), (10_000, 64 * 1024)]:
        ours, theirs, plain = [], [], []
        for _ in range(opts.rounds):
            a = run(opts.ours, "alloc", count, size)
            b = run(opts.theirs, "alloc", count, size)
            ours.append(a["create_bytearrays"])
            theirs.append(b["create_bytearrays"])
            plain.append(a["[bytearray(size)]"])
        print(
            f"| {count} x {size // 1024} KiB | {statistics.median(ours):.2f} "
            f"| {statistics.median(theirs):.2f} | {statistics.median(plain):.2f} |"
        )


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, *args = sys.argv[2:]
        if kind == "fill":
            chunk, threads, compress, total = args
            result = worker_fill(int(chunk), int(threads), float(compress), int(total))
        else:
            result = worker_alloc(int(args[0]), int(args[1]))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--ours", required=True, help="python of the venv with our dgen_py")
    parser.add_argument("--theirs", required=True, help="python of the venv with dgen-py 0.3.0")
    parser.add_argument("--total", type=int, default=1 << 30, help="bytes per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    driver(parser.parse_args())


if __name__ == "__main__":
    main()
