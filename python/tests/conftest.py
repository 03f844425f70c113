"""Shared fixtures: the mountctl binary and FUSE availability."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def mounted_points():
    """Mount points listed in /proc/mounts."""
    with open("/proc/mounts") as f:
        return {line.split()[1] for line in f}


@pytest.fixture(scope="session")
def mountctl():
    """Path of a mountctl built from this tree ($MOUNTCTL or target/release/mountctl)."""
    path = Path(os.environ.get("MOUNTCTL", REPO / "target" / "release" / "mountctl"))
    if not path.exists():
        pytest.skip(f"{path} not built; run `cargo build --release -p mountctl`")
    return path


@pytest.fixture(scope="session")
def fuse():
    """Skips mount tests, with the reason, where this machine cannot mount."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse is absent")
    if os.geteuid() != 0:
        pytest.skip("mounting needs root here")
    if shutil.which("fusermount3") is None:
        pytest.skip("fusermount3 missing (Debian package fuse3): auto-unmount unavailable")


def run_child(code, **kwargs):
    """Starts `python -c code` with this interpreter, stdout piped."""
    # Run from / so that the source tree's dgen_py/ does not shadow the installed one.
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd="/", **kwargs
    )
