"""dgen_py.mount: round trip with plain open(), and no stale mount however Python ends."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import dgen_py
from conftest import mounted_points, run_child

MiB = 1 << 20


def files_under(root):
    return sorted(Path(r) / f for r, _, fs in os.walk(root) for f in fs)


def wait_unmounted(path, seconds=5.0):
    deadline = time.monotonic() + seconds
    while str(path) in mounted_points():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_round_trip_with_open(fuse):
    with dgen_py.mount(size="6M", file_size="2M", compress=2.5, dedup=1.5, seed=77) as m:
        assert str(m.path) in mounted_points()
        assert m.seed == 77 and m.spec["size"] == 6 * MiB and m.spec["compress"] == 2.5
        files = files_under(m.path)
        assert len(files) == 3
        gen = dgen_py.Generator(size=6 * MiB, compress_ratio=2.5, dedup_ratio=1.5, seed=77)
        for f in files:
            with open(f, "rb") as fh:
                data = fh.read()
            assert len(data) == f.stat().st_size == 2 * MiB
            assert bytes(gen.get_chunk(2 * MiB)) == data, f
        assert m.stats()["bytes_read"] >= 6 * MiB
        path = m.path
    assert str(path) not in mounted_points()
    assert not path.exists()


def test_explicit_mountpoint_is_kept(fuse, tmp_path):
    m = dgen_py.mount(size=MiB, files=4, mountpoint=tmp_path)
    assert m.path == tmp_path.resolve()
    assert len(files_under(m.path)) == 4
    m.unmount()
    m.unmount()
    assert tmp_path.is_dir() and str(tmp_path) not in mounted_points()


def test_mount_errors(fuse, tmp_path):
    with pytest.raises(FileNotFoundError):
        dgen_py.mount(mountpoint=tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        dgen_py.mount(mountpoint=tmp_path / "file")
    with pytest.raises(ValueError, match="compress"):
        dgen_py.mount(compress=100)
    with pytest.raises(ValueError, match="size"):
        dgen_py.mount(size="lots")


def test_exception_in_with_block_unmounts(fuse):
    with pytest.raises(RuntimeError):
        with dgen_py.mount(size="1G") as m:
            path = m.path
            raise RuntimeError("boom")
    assert str(path) not in mounted_points()


CHILD = """
import sys, time, dgen_py
m = dgen_py.mount(size="1G")
print(m.path, flush=True)
{tail}
"""


def child_mount(tail):
    child = run_child(CHILD.format(tail=tail))
    path = Path(child.stdout.readline().strip())
    return child, path


@pytest.mark.parametrize(
    "tail,code",
    [("pass", 0), ("raise RuntimeError('uncaught')", 1)],
    ids=["interpreter-exit", "uncaught-exception"],
)
def test_no_stale_mount_when_python_exits(fuse, tail, code):
    child, path = child_mount(tail)
    assert child.wait(timeout=30) == code
    assert str(path) not in mounted_points()
    assert not path.exists()


def test_no_stale_mount_after_sigkill(fuse):
    child, path = child_mount("time.sleep(60)")
    try:
        assert str(path) in mounted_points()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        assert wait_unmounted(path), f"{path} still mounted 5 s after SIGKILL"
    finally:
        if child.poll() is None:
            child.kill()
        if str(path) in mounted_points():
            os.system(f"umount -l {path}")
        if path.is_dir():
            path.rmdir()


def test_dlio_npz_tree_loads_with_numpy(fuse, mountctl, tmp_path):
    np = pytest.importorskip("numpy")
    with dgen_py.mount(
        layout="dlio", format="npz", files_train=4, files_valid=1, record_length="64KiB",
        samples_per_file=2, seed=5,
    ) as m:
        assert m.spec["layout"] == "dlio" and m.spec["format"] == "npz"
        assert m.spec["files"] == 5 and m.spec["record_length"] == 64 * 1024
        files = files_under(m.path)
        names = [str(f.relative_to(m.path)) for f in files]
        assert names == [f"train/img_{i}_of_4.npz" for i in range(4)] + ["valid/img_0_of_1.npz"]
        for f, name in zip(files, names):
            with np.load(f) as npz:
                x, y = npz["x"], npz["y"]
            assert x.dtype == np.uint8 and x.shape == (256, 256, 2), name
            assert y.dtype == np.int64 and not y.any(), name
            cli = tmp_path / "cli.npz"
            subprocess.run(
                [str(mountctl), "generate", "--seed", "5", "--format", "npz",
                 "--files-train", "4", "--files-valid", "1", "--record-length", "64KiB",
                 "--samples-per-file", "2", "--path", name, "-o", str(cli)],
                check=True, capture_output=True,
            )
            assert f.read_bytes() == cli.read_bytes(), name


def test_preset_with_overrides(fuse):
    with dgen_py.mount(preset="unet3d", files_train=2, record_length="1MiB",
                       record_length_stdev=0) as m:
        assert m.spec["format"] == "npz" and m.spec["files_train"] == 2
        assert [f.name for f in files_under(m.path)] == ["img_0_of_2.npz", "img_1_of_2.npz"]


@pytest.mark.parametrize("cache,numa", [(0, "auto"), (None, "uma"), ("8M", 0), ("8M", "0")])
def test_cache_and_numa_options(fuse, cache, numa):
    with dgen_py.mount(size="4M", files=2, seed=9, cache=cache, numa=numa) as m:
        expected = {None: 0, 0: 0, "8M": 8 * MiB}[cache]
        assert m.spec["cache"] == expected and m.spec["numa"] == str(numa)
        gen = dgen_py.Generator(size=4 * MiB, seed=9)
        for f in files_under(m.path):
            assert f.read_bytes() == bytes(gen.get_chunk(2 * MiB)), f


def kernel_offers_io_uring():
    try:
        return Path("/sys/module/fuse/parameters/enable_uring").read_text().strip() == "Y"
    except OSError:
        return False


@pytest.mark.parametrize("io_uring", ["auto", "on", "off"])
def test_io_uring_modes_serve_the_same_bytes(fuse, io_uring):
    offered = kernel_offers_io_uring()
    if io_uring == "on" and not offered:
        with pytest.raises(OSError, match="io_uring"):
            dgen_py.mount(size="4M", files=2, io_uring="on")
        return
    with dgen_py.mount(size="4M", files=2, seed=5, io_uring=io_uring) as m:
        assert m.spec["io_uring"] == (offered and io_uring != "off")
        gen = dgen_py.Generator(size=4 * MiB, seed=5)
        for f in files_under(m.path):
            assert f.read_bytes() == bytes(gen.get_chunk(2 * MiB)), f


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(format="parquet"), "format"),
        (dict(layout="flat"), "layout"),
        (dict(layout="plain", format="npz"), "layout"),
        (dict(layout="plain", preset="resnet50"), "layout"),
        (dict(preset="bert"), "preset"),
        (dict(layout="dlio", samples_per_file=0), "samples_per_file"),
        (dict(layout="dlio", record_length=0), "record_length"),
        (dict(layout="dlio", record_length="big"), "record_length"),
        (dict(layout="dlio", record_length_stdev="wide"), "record_length_stdev"),
        (dict(layout="dlio", files_train=2, subfolders=3), "subfolders"),
        (dict(layout="dlio", files_train=-1), "files_train"),
        (dict(cache="lots"), "cache"),
        (dict(numa="both"), "numa"),
        (dict(numa=-1), "numa"),
        (dict(numa=4096), "numa"),
        (dict(io_uring="yes"), "io_uring"),
    ],
)
def test_option_value_errors(fuse, tmp_path, kwargs, field):
    with pytest.raises(ValueError, match=f"invalid {field} "):
        dgen_py.mount(mountpoint=tmp_path, **kwargs)
    assert str(tmp_path) not in mounted_points()


def test_option_type_errors(tmp_path):
    with pytest.raises(TypeError, match="format"):
        dgen_py.mount(mountpoint=tmp_path, format=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="numa"):
        dgen_py.mount(mountpoint=tmp_path, numa=1.5)  # type: ignore[arg-type]
