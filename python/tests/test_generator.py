"""The dgen-py 0.3.0 surface: documented usage patterns, determinism and errors."""

import mmap
import os
from pathlib import Path

import numpy as np
import pytest

import dgen_py

MiB = 1 << 20


def stream(seed, n, offset=0, **kw):
    g = dgen_py.Generator(size=offset + n, seed=seed, **kw)
    g.seek(offset)
    buf = bytearray(n)
    assert g.fill_chunk(buf) == n
    return bytes(buf)


def test_streaming_loop_until_complete():
    gen = dgen_py.Generator(size=10 * MiB + 123, dedup_ratio=2.0, compress_ratio=3.0, seed=1)
    buf = bytearray(MiB)
    total = 0
    pieces = []
    while not gen.is_complete():
        n = gen.fill_chunk(buf)
        if n == 0:
            break
        total += n
        pieces.append(bytes(memoryview(buf)[:n]))
    assert total == gen.total_size() == gen.position() == 10 * MiB + 123
    assert gen.fill_chunk(buf) == 0
    assert gen.get_chunk(10) is None
    assert b"".join(pieces) == stream(1, total, dedup_ratio=2.0, compress_ratio=3.0)


def test_default_chunk_size_and_buffer():
    gen = dgen_py.Generator(size=100 * MiB, seed=3)
    assert gen.chunk_size == 32 * MiB
    assert dgen_py.Generator(size=1, chunk_size=1000).chunk_size == 1000
    buf = bytearray(gen.chunk_size)
    assert gen.fill_chunk(buf) == 32 * MiB


def test_set_seed_alternation_repeats_chunks():
    gen = dgen_py.Generator(size=100 * MiB, seed=1111)
    buf = bytearray(MiB)
    gen.set_seed(1111)
    gen.fill_chunk(buf)
    a = bytes(buf)
    gen.set_seed(2222)
    gen.fill_chunk(buf)
    b = bytes(buf)
    gen.set_seed(1111)
    gen.fill_chunk(buf)
    assert bytes(buf) == a != b
    assert gen.position() == 3 * MiB
    gen.fill_chunk(buf)
    assert bytes(buf) == stream(1111, MiB, offset=MiB)
    assert gen.seed == 1111


def test_reset_rewinds_the_current_stream():
    gen = dgen_py.Generator(size=8 * MiB, seed=42)
    first = bytes(gen.get_chunk(MiB))
    gen.get_chunk(MiB)
    gen.reset()
    assert gen.position() == 0
    assert bytes(gen.get_chunk(MiB)) == first


def test_reproducible_seeds_and_random_default():
    assert stream(12345, MiB) == stream(12345, MiB)
    assert stream(12345, MiB) != stream(12346, MiB)
    g1, g2 = dgen_py.Generator(size=MiB), dgen_py.Generator(size=MiB)
    assert g1.seed != g2.seed
    assert bytes(g1.get_chunk(MiB)) != bytes(g2.get_chunk(MiB))
    gen = dgen_py.Generator(size=MiB, seed=1)
    gen.set_seed(None)
    assert gen.seed != 1


def test_create_bytearrays_then_fill_each():
    chunks = dgen_py.create_bytearrays(count=8, size=MiB)
    assert [type(c) for c in chunks] == [bytearray] * 8
    assert all(len(c) == MiB for c in chunks)
    gen = dgen_py.Generator(size=8 * MiB, seed=9)
    for buf in chunks:
        assert gen.fill_chunk(buf) == MiB
    assert gen.is_complete()
    assert b"".join(chunks) == stream(9, 8 * MiB)


@pytest.mark.parametrize("compress,dedup", [(1.0, 1.0), (2.5, 1.7), (8.0, 3.0)])
def test_same_bytes_for_any_chunk_size_and_thread_count(compress, dedup):
    n = 6 * MiB + 777
    ref = stream(5, n, compress_ratio=compress, dedup_ratio=dedup, max_threads=1)
    for chunk in [1, 511, 4097, 300_000, MiB, 5 * MiB]:
        for threads in [1, 2, None]:
            gen = dgen_py.Generator(
                size=n, seed=5, compress_ratio=compress, dedup_ratio=dedup, max_threads=threads
            )
            out = bytearray()
            buf = bytearray(chunk)
            while (k := gen.fill_chunk(buf)) > 0:
                out += buf[:k]
            if chunk < 4096 and threads is not None:
                break  # small chunks are slow; once per compress/dedup is enough
            assert out == ref, (chunk, threads)


def test_seek_and_read_at():
    ref = stream(7, 3 * MiB)
    gen = dgen_py.Generator(size=3 * MiB, seed=7)
    buf = bytearray(1000)
    assert gen.read_at(buf, 12345) == 1000
    assert bytes(buf) == ref[12345:13345]
    assert gen.position() == 0
    gen.seek("1M")
    assert bytes(gen.get_chunk(10)) == ref[MiB : MiB + 10]
    assert gen.read_at(buf, 3 * MiB - 10) == 10
    assert gen.read_at(buf, 3 * MiB + 5) == 0
    with pytest.raises(ValueError, match="offset"):
        gen.seek(3 * MiB + 1)


def test_fills_any_writable_buffer_in_place():
    ref = stream(11, 64 * 1024)
    arr = np.zeros((128, 128), dtype=np.uint32)
    gen = dgen_py.Generator(size=len(ref), seed=11)
    assert gen.fill_chunk(arr) == len(ref)
    assert arr.tobytes() == ref

    for make in [
        lambda: bytearray(len(ref)),
        lambda: memoryview(bytearray(len(ref))),
        lambda: mmap.mmap(-1, len(ref)),
    ]:
        buf = make()
        assert dgen_py.Generator(size=len(ref), seed=11).fill_chunk(buf) == len(ref)
        assert bytes(buf) == ref

    view = memoryview(bytearray(100))[10:60]
    assert dgen_py.Generator(size=50, seed=11).fill_chunk(view) == 50
    assert bytes(view) == ref[:50]


@pytest.mark.parametrize(
    "buf", [b"abc", memoryview(b"abc"), np.zeros(16, np.uint8)[::2], "text", 3]
)
def test_unusable_buffers_are_type_errors(buf):
    with pytest.raises(TypeError):
        dgen_py.Generator(size=100).fill_chunk(buf)


def test_readonly_numpy_is_type_error():
    arr = np.zeros(16, np.uint8)
    arr.flags.writeable = False
    with pytest.raises(TypeError, match="read-only"):
        dgen_py.generate_into_buffer(arr)


@pytest.mark.parametrize(
    "kw,param",
    [
        (dict(size=-1), "size"),
        (dict(size="10X"), "size"),
        (dict(size=1, compress_ratio=0.5), "compress_ratio"),
        (dict(size=1, compress_ratio=float("nan")), "compress_ratio"),
        (dict(size=1, dedup_ratio=1001), "dedup_ratio"),
        (dict(size=1, block_size=1000), "block_size"),
        (dict(size=1, numa_mode="both"), "numa_mode"),
        (dict(size=1, max_threads=-2), "max_threads"),
        (dict(size=1, seed=-1), "seed"),
        (dict(size=1, method="fast"), "method"),
    ],
)
def test_bad_values_are_value_errors_naming_the_field(kw, param):
    with pytest.raises(ValueError, match=param):
        dgen_py.Generator(**kw)


def node_cpus(node):
    """The CPUs of NUMA node `node`, from sysfs."""
    cpus = set()
    text = Path(f"/sys/devices/system/node/node{node}/cpulist").read_text().strip()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def node_fill_threads(node):
    """Thread ids of this process's fill threads bound to NUMA node `node`, by name."""
    tids = []
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_text().startswith(f"dgen-py-n{node}-"):
                tids.append(int(task.name))
        except FileNotFoundError:
            pass
    return tids


@pytest.mark.parametrize("max_threads,method", [(1, "parallel"), (2, "parallel"),
                                                (None, "parallel"), (None, "sequential")])
def test_numa_node_runs_fills_on_threads_bound_to_the_node(max_threads, method):
    if not Path("/sys/devices/system/node/node0/cpulist").exists():
        pytest.skip("sysfs lists no NUMA node 0")
    gen = dgen_py.Generator(size=8 * MiB, compress_ratio=2, seed=5, numa_node=0,
                            max_threads=max_threads, method=method)
    assert gen.numa_node == 0
    buf = bytearray(8 * MiB)
    assert gen.fill_chunk(buf) == 8 * MiB
    assert bytes(buf) == stream(5, 8 * MiB, compress_ratio=2)
    want = 1 if method == "sequential" else max_threads or len(node_cpus(0))
    tids = node_fill_threads(0)
    assert len(tids) >= want
    for tid in tids:
        assert os.sched_getaffinity(tid) <= node_cpus(0)


@pytest.mark.parametrize("mode", ["auto", "force", "disabled"])
def test_numa_node_the_machine_lacks_is_a_value_error(mode):
    with pytest.raises(ValueError, match="numa_node '4096'"):
        dgen_py.Generator(size=MiB, numa_mode=mode, numa_node=4096)
    with pytest.raises(ValueError, match="numa_node"):
        dgen_py.generate_buffer(MiB, numa_mode=mode, numa_node=4096)


def test_numa_modes_without_a_node_give_the_same_bytes():
    for mode in ["auto", "force", "disabled"]:
        assert bytes(dgen_py.generate_buffer(MiB, compress_ratio=2, seed=6, numa_mode=mode,
                                             numa_node=None)) == stream(6, MiB, compress_ratio=2)
    buf = bytearray(MiB)
    dgen_py.generate_into_buffer(buf, compress_ratio=2, numa_node=0, seed=6)
    assert bytes(buf) == stream(6, MiB, compress_ratio=2)


def test_fractional_ratios_and_string_sizes():
    gen = dgen_py.Generator(size="1.5M", compress_ratio=2.5, dedup_ratio=1.5, block_size="8K")
    assert gen.total_size() == 3 * MiB // 2
    assert (gen.compress_ratio, gen.dedup_ratio, gen.block_size) == (2.5, 1.5, 8192)


def test_zero_size_is_complete_at_once():
    gen = dgen_py.Generator(size=0)
    assert gen.is_complete()
    assert gen.fill_chunk(bytearray(10)) == 0


def test_one_shot_functions():
    view = dgen_py.generate_buffer(MiB, compress_ratio=2, seed=4)
    assert len(view) == MiB and memoryview(view).readonly
    assert bytes(view) == stream(4, MiB, compress_ratio=2)
    assert np.frombuffer(view, dtype=np.uint8).size == MiB
    buf = bytearray(MiB)
    assert dgen_py.generate_into_buffer(buf, 1.0, 2.0, "auto", 2, None, 4) == MiB
    assert bytes(buf) == bytes(view)
    assert len(dgen_py.generate_data(1000)) == 1000
    assert dgen_py.fill_buffer(bytearray(1000), compress_ratio=3) == 1000


def test_system_info_keys():
    info = dgen_py.get_system_info()
    assert info is not None
    assert {"num_nodes", "physical_cores", "logical_cpus", "deployment_type"} <= info.keys()
    assert info["logical_cpus"] >= info["physical_cores"] >= 1 <= info["num_nodes"]


def test_fill_releases_the_gil():
    import threading
    import time

    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    buf = bytearray(256 * MiB)
    start = time.perf_counter()
    dgen_py.Generator(size=len(buf), max_threads=1).fill_chunk(buf)
    end = time.perf_counter()
    stop.set()
    t.join()
    during = [x for x in ticks if start < x < end]
    assert end - start < 0.05 or len(during) >= 3, (end - start, len(during))
