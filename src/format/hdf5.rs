//! HDF5 files as h5py writes DLIO's: contiguous datasets `records` and `labels`.
//!
//! DLIO's hdf5 generator creates `records` (`uint8`, shape `(samples, dim1, dim2)`), writes
//! it, then creates `labels` (`int64` zeros, shape `(samples,)`). With h5py's defaults
//! (superblock version 0, 8-byte offsets and lengths, metadata aggregated in a 2 KiB block)
//! the file is a 2048-byte metadata block, then the records, then the labels. Only a few
//! fields of the metadata depend on the shape: the end-of-file address, the dimensions of
//! both dataspaces and the address and size of both contiguous layouts. We build the block
//! field by field below, each named as in the HDF5 file format specification (version 0
//! superblock, version 1 object headers and B-trees), and patch those fields. The block
//! was read off files written by h5py 3.16 (HDF5 1.14) and `tests/formats.rs` checks that
//! h5py reads ours.

use std::borrow::Cow;

use super::{Framing, Located, Piece, Shape, Source};

/// Bytes of the metadata block before the records.
const META: u64 = 2048;

/// An undefined address.
const UNDEF: u64 = u64::MAX;

/// Where the objects sit in the metadata block.
const ROOT_HEADER: u64 = 96;
const ROOT_BTREE: u64 = 136;
const LOCAL_HEAP: u64 = 680;
const HEAP_DATA: u64 = 712;
const RECORDS_HEADER: u64 = 800;
const SYMBOL_NODE: u64 = 1072;
const LABELS_HEADER: u64 = 1400;

/// Offsets of names in the local heap's data segment.
const NAME_RECORDS: u64 = 8;
const NAME_LABELS: u64 = 16;

/// An HDF5 file for one [`Shape`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hdf5 {
    meta: Vec<u8>,
    payload: u64,
    samples: u64,
}

impl Hdf5 {
    /// The file for `shape`.
    pub fn new(shape: Shape) -> Hdf5 {
        let payload = shape.payload_len();
        Hdf5 {
            meta: metadata(shape),
            payload,
            samples: shape.samples,
        }
    }
}

impl Framing for Hdf5 {
    fn len(&self) -> u64 {
        META + self.payload + 8 * self.samples
    }

    fn piece(&self, _src: &Source<'_>, pos: u64) -> Located<'_> {
        let (start, len, piece) = if pos < META {
            (0, META, Piece::Bytes(Cow::Borrowed(&self.meta)))
        } else if pos < META + self.payload {
            (META, self.payload, Piece::Payload(0))
        } else {
            // The labels: zeros. Served from a borrowed run of zeros of at most this size.
            let start = META + self.payload + (pos - META - self.payload) / ZEROS * ZEROS;
            let len = (self.len() - start).min(ZEROS);
            (
                start,
                len,
                Piece::Bytes(Cow::Borrowed(&ZERO_RUN[..len as usize])),
            )
        };
        Located { start, len, piece }
    }
}

/// Length of the run of zeros labels are served from.
const ZEROS: u64 = 4096;
static ZERO_RUN: [u8; ZEROS as usize] = [0; ZEROS as usize];

/// Writes little-endian fields into a zeroed block.
struct Block(Vec<u8>);

impl Block {
    fn bytes(&mut self, at: u64, bytes: &[u8]) -> &mut Self {
        self.0[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
        self
    }

    fn u16(&mut self, at: u64, v: u16) -> &mut Self {
        self.bytes(at, &v.to_le_bytes())
    }

    fn u32(&mut self, at: u64, v: u32) -> &mut Self {
        self.bytes(at, &v.to_le_bytes())
    }

    fn u64(&mut self, at: u64, v: u64) -> &mut Self {
        self.bytes(at, &v.to_le_bytes())
    }
}

/// The metadata block for `shape`.
fn metadata(shape: Shape) -> Vec<u8> {
    let payload = shape.payload_len();
    let mut b = Block(vec![0; META as usize]);
    superblock(&mut b, META + payload + 8 * shape.samples);
    root_group(&mut b);
    let records = [shape.samples, shape.dim1, shape.dim2];
    dataset(&mut b, RECORDS_HEADER, &records, Dtype::U8, (META, payload));
    let labels = [shape.samples];
    dataset(
        &mut b,
        LABELS_HEADER,
        &labels,
        Dtype::I64,
        (META + payload, 8 * shape.samples),
    );
    b.0
}

/// Superblock version 0 and the root group's symbol table entry.
fn superblock(b: &mut Block, eof: u64) {
    b.bytes(0, b"\x89HDF\r\n\x1a\n");
    // Versions of superblock, free space, root symbol table, (reserved), shared header: 0.
    b.bytes(13, &[8, 8]); // size of offsets, size of lengths
    b.u16(16, 4).u16(18, 16); // group leaf node K, group internal node K
    b.u64(24, 0); // base address
    b.u64(32, UNDEF); // free-space info address
    b.u64(40, eof); // end-of-file address
    b.u64(48, UNDEF); // driver information block address
    b.u64(56, 0).u64(64, ROOT_HEADER); // root entry: link name offset, object header
    b.u32(72, 1); // cache type 1: scratch pad holds the group's B-tree and heap
    b.u64(80, ROOT_BTREE).u64(88, LOCAL_HEAP);
}

/// The root group: its object header, B-tree, local heap of names and symbol table node.
fn root_group(b: &mut Block) {
    // Object header version 1: 1 message, refcount 1, 24 bytes of messages.
    b.bytes(ROOT_HEADER, &[1, 0]).u16(ROOT_HEADER + 2, 1);
    b.u32(ROOT_HEADER + 4, 1).u32(ROOT_HEADER + 8, 24);
    b.u16(ROOT_HEADER + 16, 0x11).u16(ROOT_HEADER + 18, 16); // symbol table message
    b.u64(ROOT_HEADER + 24, ROOT_BTREE)
        .u64(ROOT_HEADER + 32, LOCAL_HEAP);

    // Version 1 B-tree of the group: type 0, level 0, one child (the symbol table node).
    b.bytes(ROOT_BTREE, b"TREE\x00\x00").u16(ROOT_BTREE + 6, 1);
    b.u64(ROOT_BTREE + 8, UNDEF).u64(ROOT_BTREE + 16, UNDEF); // left and right siblings
    b.u64(ROOT_BTREE + 24, 0); // key 0: the empty name
    b.u64(ROOT_BTREE + 32, SYMBOL_NODE); // child 0
    b.u64(ROOT_BTREE + 40, NAME_RECORDS); // key 1: the greatest name in child 0

    // Local heap: 88-byte data segment; free list head at offset 24.
    b.bytes(LOCAL_HEAP, b"HEAP");
    b.u64(LOCAL_HEAP + 8, 88)
        .u64(LOCAL_HEAP + 16, 24)
        .u64(LOCAL_HEAP + 24, HEAP_DATA);
    b.bytes(HEAP_DATA + NAME_RECORDS, b"records\0");
    b.bytes(HEAP_DATA + NAME_LABELS, b"labels\0");
    b.u64(HEAP_DATA + 24, 1).u64(HEAP_DATA + 32, 64); // free block: last (1), 64 bytes

    // Symbol table node version 1 with 2 entries, in name order.
    b.bytes(SYMBOL_NODE, b"SNOD\x01\x00")
        .u16(SYMBOL_NODE + 6, 2);
    b.u64(SYMBOL_NODE + 8, NAME_LABELS)
        .u64(SYMBOL_NODE + 16, LABELS_HEADER);
    b.u64(SYMBOL_NODE + 48, NAME_RECORDS)
        .u64(SYMBOL_NODE + 56, RECORDS_HEADER);
}

/// Element types of the two datasets.
#[derive(Clone, Copy)]
enum Dtype {
    U8,
    I64,
}

/// A dataset's version 1 object header: dataspace, datatype, fill value, contiguous
/// layout at `(address, size)`, and a NIL message filling the 256 bytes of messages.
fn dataset(b: &mut Block, at: u64, dims: &[u64], dtype: Dtype, (address, size): (u64, u64)) {
    b.bytes(at, &[1, 0])
        .u16(at + 2, 5)
        .u32(at + 4, 1)
        .u32(at + 8, 256);

    // Dataspace version 1: rank, flag 1 (maximum dimensions present), dims, max dims.
    let space_len = 8 + 16 * dims.len() as u16;
    b.u16(at + 16, 1).u16(at + 18, space_len);
    b.bytes(at + 24, &[1, dims.len() as u8, 1]);
    for (k, &d) in dims.iter().enumerate() {
        let k = k as u64;
        b.u64(at + 32 + 8 * k, d)
            .u64(at + 32 + 8 * (dims.len() as u64 + k), d);
    }

    // Datatype (constant): fixed-point version 1, little-endian, size, offset 0, precision.
    let m = at + 24 + u64::from(space_len);
    let (bits, bytes, precision) = match dtype {
        Dtype::U8 => (0x00, 1, 8),
        Dtype::I64 => (0x08, 8, 64), // 0x08: signed
    };
    b.u16(m, 3).u16(m + 2, 16).bytes(m + 4, &[1]);
    b.bytes(m + 8, &[0x10, bits])
        .u32(m + 12, bytes)
        .u16(m + 18, precision);

    // Fill value version 2 (constant): allocate late, write if set, defined, no value.
    b.u16(m + 24, 5).u16(m + 26, 8).bytes(m + 28, &[1]);
    b.bytes(m + 32, &[2, 2, 2, 1]);

    // Data layout version 3, class 1 (contiguous).
    b.u16(m + 40, 8).u16(m + 42, 24);
    b.bytes(m + 48, &[3, 1])
        .u64(m + 50, address)
        .u64(m + 58, size);

    // NIL message: the rest of the 256 bytes of messages.
    let nil = at + 16 + 256 - (m + 72);
    b.u16(m + 72, 0).u16(m + 74, nil as u16 - 8);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Non-zero runs of the metadata h5py 3.16 wrote for shape (1, 3, 5), as (offset, hex).
    const H5PY_1_3_5: [(u64, &str); 6] = [
        (
            0,
            "894844460d0a1a0a000000000008080004001000000000000000000000000000ffffffffffffffff\
             1708000000000000ffffffffffffffff00000000000000006000000000000000010000000000\
             00008800000000000000a8020000000000000100010001000000180000000000000011001000\
             000000008800000000000000a8020000000000005452454500000100ffffffffffffffffffff\
             ffffffffffff000000000000000030040000000000000800000000000000",
        ),
        (
            680,
            "484541500000000058000000000000001800000000000000c802000000000000000000000000\
               00007265636f726473006c6162656c73000001000000000000004000000000000000",
        ),
        (
            800,
            "0100050001000000000100000000000001003800000000000103010000000000010000000000\
               000003000000000000000500000000000000010000000000000003000000000000000500000000\
               000000030010000100000010000000010000000000080000000000050008000100000002020201\
               000000000800180000000000030100080000000000000f00000000000000000000000000000070\
               0000000000",
        ),
        (1072, "534e4f440100020010000000000000007805000000000000"),
        (1120, "08000000000000002003000000000000"),
        (
            1400,
            "010005000100000000010000000000000100180000000000010101000000000001000000000000\
                000100000000000000030010000100000010080000080000000000400000000000050008000100\
                00000202020100000000080018000000000003010f080000000000000800000000000000000000\
                0000000000900000000000",
        ),
    ];

    #[test]
    fn metadata_matches_h5py() {
        let mut want = vec![0u8; META as usize];
        for (at, hex) in H5PY_1_3_5 {
            let hex: String = hex.split_whitespace().collect();
            for i in 0..hex.len() / 2 {
                want[at as usize + i] = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
            }
        }
        let got = metadata(Shape {
            dim1: 3,
            dim2: 5,
            samples: 1,
        });
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "byte {i}");
        }
    }
}
