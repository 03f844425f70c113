"""The stubs describe the module that is installed."""

import subprocess
import sys


def test_stubtest():
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "dgen_py"],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert result.returncode == 0, result.stdout + result.stderr
