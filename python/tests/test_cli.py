"""Generator bytes equal `mountctl generate` bytes for the same spec."""

import subprocess

import pytest

import dgen_py


@pytest.mark.parametrize(
    "compress,dedup,unit,offset",
    [(1.0, 1.0, None, 0), (2.5, 1.7, None, 12345), (4.0, 3.0, 65536, 1 << 20)],
)
def test_fill_chunk_matches_cli(mountctl, tmp_path, compress, dedup, unit, offset):
    size = 3 * (1 << 20) + 99
    out = tmp_path / "cli.bin"
    cmd = [
        str(mountctl), "generate", "--size", str(size), "--compress", str(compress),
        "--dedup", str(dedup), "--seed", "31337", "--offset", str(offset), "-o", str(out),
    ]
    if unit:
        cmd += ["--dedup-unit", str(unit)]
    subprocess.run(cmd, check=True, capture_output=True)

    gen = dgen_py.Generator(
        size=offset + size, compress_ratio=compress, dedup_ratio=dedup, block_size=unit,
        seed=31337,
    )
    gen.seek(offset)
    buf = bytearray(size)
    assert gen.fill_chunk(buf) == size
    assert bytes(buf) == out.read_bytes()
