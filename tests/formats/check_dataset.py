"""Checks a mounted DLIO dataset with the readers DLIO uses: numpy, h5py and a TFRecord reader.

    check_dataset.py ROOT FORMAT FILES_TRAIN FILES_VALID SAMPLES SUBFOLDERS

Lists train/ and valid/ the way DLIO 2.0's main.py does, checks names, sorting and
subfolders, then reads every file: np.load for npy and npz (shape and dtype), h5py for
hdf5 (`records` and `labels`), and a pure-Python TFRecord reader that checks both CRCs of
every record and parses its tf.train.Example. For npz it also flips one payload byte in a
copy and expects zipfile's CRC check to catch it. Prints one line per check; exits non-zero
on the first failure.
"""

import glob
import os
import shutil
import struct
import sys
import tempfile
import zipfile

import numpy as np


def dlio_list(root, split, fmt, subfolders):
    """The file list DLIO builds: sorted, filtered by extension, one level of subfolders."""
    folder = os.path.join(root, split)
    if subfolders > 1 and split == "train":
        return sorted(glob.glob(os.path.join(folder, f"*/*.{fmt}")))
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(fmt))


def expected_names(split, n, fmt, subfolders):
    width, sub_width = len(str(n)), len(str(subfolders))
    names = []
    for i in range(n):
        name = f"img_{str(i).rjust(width, '0')}_of_{n}.{fmt}"
        if subfolders > 1 and split == "train":
            name = f"{str(i % subfolders).rjust(sub_width, '0')}/{name}"
        names.append(f"{split}/{name}")
    return sorted(names)


def read_whole(path):
    with open(path, "rb") as f:
        data = f.read()
    size = os.stat(path).st_size
    assert len(data) == size, f"{path}: read {len(data)} bytes, stat says {size}"
    return data


def check_npy(path, samples):
    read_whole(path)
    a = np.load(path)
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == samples, (path, a.shape)


def check_npz(path, samples):
    read_whole(path)
    with np.load(path) as z:
        x, y = z["x"], z["y"]
    assert x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == samples, (path, x.shape)
    assert y.dtype == np.int64 and y.shape == (samples,) and not y.any(), (path, y)


def check_npz_crc_is_real(path):
    """A copy with one payload byte flipped must fail zipfile's CRC-32 check."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "flipped.npz")
        shutil.copyfile(path, copy)
        with open(copy, "r+b") as f:
            f.seek(55 + 128 + 7)  # local header, npy header, then into the payload
            b = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([b[0] ^ 0x40]))
        try:
            with np.load(copy) as z:
                z["x"]
        except zipfile.BadZipFile as e:
            assert "CRC" in str(e), e
            return
        raise AssertionError(f"{copy}: flipped byte not detected")


def check_hdf5(path, samples):
    import h5py

    read_whole(path)
    with h5py.File(path, "r") as f:
        records, labels = f["records"][:], f["labels"][:]
    assert records.dtype == np.uint8 and records.ndim == 3, (path, records.shape)
    assert records.shape[0] == samples, (path, records.shape)
    assert labels.dtype == np.int64 and labels.shape == (samples,) and not labels.any()
    with open(path, "rb") as f:
        f.seek(2048)
        raw = np.frombuffer(f.read(records.size), np.uint8)
    assert (raw == records.ravel()).all(), f"{path}: records differ from the file's payload"


# CRC-32C (Castagnoli), table-driven, as TFRecord uses it.
_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(buf, pos):
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def fields(buf):
    """(field number, wire type, value) of a protobuf message; LEN values as bytes."""
    pos, out = 0, []
    while pos < len(buf):
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 2:
            n, pos = varint(buf, pos)
            out.append((number, wire, buf[pos : pos + n]))
            pos += n
        elif wire == 0:
            v, pos = varint(buf, pos)
            out.append((number, wire, v))
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    assert pos == len(buf)
    return out


def parse_example(data):
    """{name: bytes or [int]} from a serialized tf.train.Example."""
    (features,) = [v for n, w, v in fields(data) if n == 1]
    out = {}
    for _, _, entry in fields(features):
        kv = {n: v for n, w, v in fields(entry)}
        name, feature = kv[1].decode(), fields(kv[2])
        (kind, _, body) = feature[0]
        if kind == 1:  # bytes_list
            out[name] = [v for _, _, v in fields(body)][0]
        elif kind == 3:  # int64_list, packed
            (_, _, packed) = fields(body)[0]
            values, pos = [], 0
            while pos < len(packed):
                v, pos = varint(packed, pos)
                values.append(v)
            out[name] = values
    return out


def check_tfrecord(path, samples):
    data = read_whole(path)
    pos = count = 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        (len_crc,) = struct.unpack_from("<I", data, pos + 8)
        assert len_crc == masked(crc32c(data[pos : pos + 8])), f"{path}: length CRC"
        record = data[pos + 12 : pos + 12 + length]
        (data_crc,) = struct.unpack_from("<I", data, pos + 12 + length)
        assert data_crc == masked(crc32c(record)), f"{path}: data CRC of record {count}"
        example = parse_example(record)
        assert set(example) == {"image", "size"} and len(example["image"]) > 0, example.keys()
        pos += 16 + length
        count += 1
    assert pos == len(data) and count == samples, (path, count, samples)


CHECKS = {"npy": check_npy, "npz": check_npz, "hdf5": check_hdf5, "tfrecord": check_tfrecord}


def main():
    root, fmt = sys.argv[1], sys.argv[2]
    train, valid, samples, subfolders = (int(a) for a in sys.argv[3:7])
    assert sorted(os.listdir(root)) == ["train", "valid"], os.listdir(root)
    for split, n in (("train", train), ("valid", valid)):
        files = dlio_list(root, split, fmt, subfolders)
        names = [os.path.relpath(f, root) for f in files]
        assert names == expected_names(split, n, fmt, subfolders), (names[:5], split)
        for f in files:
            CHECKS[fmt](f, samples)
        print(f"ok {fmt} {split}: {len(files)} files read and checked")
    if fmt == "npz" and train:
        check_npz_crc_is_real(dlio_list(root, "train", fmt, subfolders)[0])
        print("ok npz: a flipped payload byte fails the CRC-32 check")


if __name__ == "__main__":
    main()
