"""dgen_py: synthetic data of exact compress and dedup ratios, in-process or as a mount.

A drop-in for the dgen-py 0.3.0 package (same names, parameters and defaults) backed by
the dgenfs content engine: fractional ratios, byte streams that do not depend on chunk
sizes or thread counts, compressible bytes mixed into every sector, seeking, and a FUSE
mount of a whole tree with ``mount()``. Docstrings live in ``__init__.pyi``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
import weakref
from pathlib import Path
from typing import Any, Dict, Optional, Union

from . import _native
from ._native import (
    CONTENT_VERSION,
    BytesView,
    Generator,
    create_bytearrays,
    generate_buffer,
    generate_into_buffer,
)

__all__ = [
    "CONTENT_VERSION",
    "BytesView",
    "Generator",
    "Mount",
    "StreamingGenerator",
    "create_bytearrays",
    "fill_buffer",
    "generate_buffer",
    "generate_data",
    "generate_into_buffer",
    "get_numa_info",
    "get_system_info",
    "mount",
]

try:
    from importlib.metadata import version as _version

    __version__ = _version("dgen-py")
except Exception:  # pragma: no cover - only without installed metadata
    __version__ = "unknown"

StreamingGenerator = Generator

def generate_data(
    size: int,
    dedup_ratio: float = 1.0,
    compress_ratio: float = 1.0,
    numa_mode: str = "auto",
    max_threads: Optional[int] = None,
) -> BytesView:
    return generate_buffer(size, dedup_ratio, compress_ratio, numa_mode, max_threads)


def fill_buffer(
    buffer: Any,
    dedup_ratio: float = 1.0,
    compress_ratio: float = 1.0,
    numa_mode: str = "auto",
    max_threads: Optional[int] = None,
) -> int:
    return generate_into_buffer(buffer, dedup_ratio, compress_ratio, numa_mode, max_threads)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def get_system_info() -> Optional[Dict[str, Any]]:
    nodes = sorted(Path("/sys/devices/system/node").glob("node[0-9]*"))
    num_nodes = max(len(nodes), 1)
    cpus = sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*"))
    cores = set()
    for cpu in cpus:
        topo = cpu / "topology"
        cores.add((_read(topo / "physical_package_id"), _read(topo / "core_id") or cpu.name))
    logical = os.cpu_count() or len(cpus) or 1
    physical = len(cores) or logical
    if num_nodes == 1:
        kind = "UMA (single NUMA node)"
    else:
        kind = f"NUMA ({num_nodes} nodes)"
    return {
        "num_nodes": num_nodes,
        "physical_cores": physical,
        "logical_cpus": logical,
        "is_uma": num_nodes == 1,
        "deployment_type": kind,
    }


get_numa_info = get_system_info


SizeLike = Union[int, str]


class Mount:
    def __init__(self, handle: Any, spec: Dict[str, Any], tmpdir: Optional[Path]) -> None:
        self._handle = handle
        self._tmpdir = tmpdir
        self.path = Path(handle.path())
        self.spec = spec
        self.seed: int = spec["seed"]
        # Runs on unmount(), on garbage collection and at interpreter exit, once.
        self._finalizer = weakref.finalize(self, _release, handle, tmpdir)

    def stats(self) -> Dict[str, Any]:
        return dict(self._handle.stats())

    def is_mounted(self) -> bool:
        return bool(self._handle.is_mounted())

    def unmount(self) -> None:
        if self._finalizer.alive:
            self._finalizer.detach()
            _release(self._handle, self._tmpdir, raise_errors=True)

    def __enter__(self) -> "Mount":
        return self

    def __exit__(self, *exc: object) -> None:
        self.unmount()

    def __repr__(self) -> str:
        state = "mounted" if self._finalizer.alive else "unmounted"
        return f"<dgen_py.Mount {str(self.path)!r} size={self.spec['size']} {state}>"


def _release(handle: Any, tmpdir: Optional[Path], raise_errors: bool = False) -> None:
    try:
        handle.unmount()
    except OSError:
        if raise_errors:
            raise
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


def mount(
    size: SizeLike = "1T",
    *,
    compress: float = 1.0,
    dedup: float = 1.0,
    seed: Optional[int] = None,
    file_size: Optional[SizeLike] = None,
    files: Optional[int] = None,
    mountpoint: Union[str, "os.PathLike[str]", None] = None,
    threads: Optional[int] = None,
    kernel_cache: bool = False,
    cache: Optional[SizeLike] = None,
    numa: Union[str, int] = "auto",
    io_uring: str = "auto",
    dedup_unit: SizeLike = "4K",
    format: Optional[str] = None,
    layout: Optional[str] = None,
    preset: Optional[str] = None,
    files_train: Optional[int] = None,
    files_valid: Optional[int] = None,
    samples_per_file: Optional[int] = None,
    record_length: Optional[SizeLike] = None,
    record_length_stdev: Optional[SizeLike] = None,
    subfolders: Optional[int] = None,
) -> Mount:
    if file_size is not None and files is not None:
        raise ValueError("give file_size or files, not both")
    dataset = {
        "format": format,
        "layout": layout,
        "preset": preset,
        "files_train": files_train,
        "files_valid": files_valid,
        "samples_per_file": samples_per_file,
        "record_length": record_length,
        "record_length_stdev": record_length_stdev,
        "subfolders": subfolders,
    }
    auto_unmount = shutil.which("fusermount3") is not None
    if not auto_unmount:
        warnings.warn(
            "fusermount3 not found (Debian package fuse3): a SIGKILL of this process "
            "would leave a stale mount",
            RuntimeWarning,
            stacklevel=2,
        )

    tmpdir = None
    if mountpoint is None:
        tmpdir = Path(tempfile.mkdtemp(prefix="dgen_py-"))
        mountpoint = tmpdir
    try:
        handle = _native.mount(
            os.fspath(mountpoint),
            size,
            compress=compress,
            dedup=dedup,
            dedup_unit=dedup_unit,
            seed=seed,
            file_size=file_size,
            files=files,
            threads=threads,
            kernel_cache=kernel_cache,
            cache=cache,
            numa=numa,
            io_uring=io_uring,
            dataset=dataset,
            auto_unmount=auto_unmount,
        )
    except BaseException:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    spec = dict(handle.spec())
    spec.update(kernel_cache=kernel_cache, threads=threads)
    return Mount(handle, spec, tmpdir)

