"""dgen_py.mount: round trip with plain open(), and no stale mount however Python ends."""

import os
import signal
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
