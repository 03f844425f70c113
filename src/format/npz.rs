//! NumPy `.npz` files: a stored (uncompressed) zip64 archive as `numpy.savez` writes it.
//!
//! The archive holds `x.npy` (`uint8`, shape `(dim1, dim2, samples)`, the payload) and
//! `y.npy` (`int64` zeros, shape `(samples,)`), each behind a local header that carries a
//! zip64 extra field, then the central directory and the end record. Field values follow
//! Python's `zipfile` as numpy 2 drives it: version 4.5, DOS date 1980-01-01, mode 0600,
//! zip64 fields in the central directory only past 2 GiB.
//!
//! CRC-32 of `x.npy`: Python checks it when a member is read to its end, so it must be
//! right, and it sits in the first bytes of the file (local header) and in the central
//! directory that readers fetch first. It therefore depends on every payload byte before
//! any payload is read. We compute it once per file, generating the payload in parallel
//! 1 MiB pieces whose CRCs are combined (`crc32fast::Hasher::combine`), and cache it per
//! file in the mount's [`ChecksumCache`](super::ChecksumCache). We chose the cache over
//! combining cached per-unit CRCs because per-unit CRCs still need every unit generated
//! once, and a cache of one `u32` per file is far smaller than one per unit. `stat` needs
//! no CRC; the first read of a file's header or tail costs one extra generation pass over
//! its payload (about 40 ms for a 146 MB unet3d file on two cores), later reads none.
//!
//! TODO: two threads that read the header of the same uncached file at once both compute
//! its CRC; a per-file in-flight marker would halve that work, which only the first
//! concurrent touch of a file pays.

use std::borrow::Cow;

use rayon::prelude::*;

use super::{cached, npy, remember, Framing, Located, Piece, Shape, Source};

/// Sizes and offsets above this need zip64 fields in the central directory (Python's rule).
const ZIP64_LIMIT: u64 = (1 << 31) - 1;

/// Bytes of a local header: 30 fixed, a 5-byte name, a 20-byte zip64 extra field.
const LOCAL_LEN: u64 = 30 + 5 + 20;

/// Version needed to extract (4.5, zip64) and made by (Unix, 4.5).
const VERSION_NEEDED: u16 = 45;
const VERSION_MADE_BY: u16 = (3 << 8) | 45;

/// DOS date of 1980-01-01 (the earliest), time 00:00.
const DOS_DATE: u16 = 0x21;

/// External attributes: a regular file of mode 0600, as `zipfile` writes for `open('w')`.
const EXTERNAL_ATTR: u32 = 0o600 << 16;

/// Payload bytes generated per parallel CRC task.
const CRC_PIECE: u64 = 1 << 20;

/// One member as the archive records it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    name: &'static [u8; 5],
    offset: u64,
    size: u64,
}

/// A `.npz` file for one [`Shape`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Npz {
    x_header: Vec<u8>,
    payload: u64,
    /// `y.npy` whole: header and zeros.
    y: Vec<u8>,
    y_crc: u32,
}

impl Npz {
    /// The archive for `shape`.
    pub fn new(shape: Shape) -> Npz {
        let x_header = npy::header("|u1", &[shape.dim1, shape.dim2, shape.samples]);
        let mut y = npy::header("<i8", &[shape.samples]);
        y.resize(y.len() + 8 * shape.samples as usize, 0);
        let y_crc = crc32fast::hash(&y);
        Npz {
            x_header,
            payload: shape.payload_len(),
            y,
            y_crc,
        }
    }

    fn x(&self) -> Member {
        let size = self.x_header.len() as u64 + self.payload;
        Member {
            name: b"x.npy",
            offset: 0,
            size,
        }
    }

    fn y(&self) -> Member {
        let x = self.x();
        Member {
            name: b"y.npy",
            offset: LOCAL_LEN + x.size,
            size: self.y.len() as u64,
        }
    }

    /// File offset of the first payload byte.
    fn payload_start(&self) -> u64 {
        LOCAL_LEN + self.x_header.len() as u64
    }

    /// File offset of the first byte after the payload.
    fn tail_start(&self) -> u64 {
        self.payload_start() + self.payload
    }

    /// Computes and caches the CRC-32 of `x.npy` unless it is cached.
    pub fn precompute_crc(&self, src: &Source<'_>) {
        self.x_crc(src);
    }

    /// CRC-32 of `x.npy`, from the cache or computed once.
    fn x_crc(&self, src: &Source<'_>) -> u32 {
        if let Some(crc) = cached(&src.cache.member_crc, &src.file_key) {
            return crc;
        }
        let crc = self.compute_x_crc(src);
        remember(&src.cache.member_crc, src.file_key, crc);
        crc
    }

    fn compute_x_crc(&self, src: &Source<'_>) -> u32 {
        let pieces = self.payload.div_ceil(CRC_PIECE);
        // One buffer per worker, not per piece: fresh 1 MiB buffers cost a page fault per
        // 4 KiB, a fifth of the generation time.
        let hashers: Vec<crc32fast::Hasher> = (0..pieces)
            .into_par_iter()
            .map_init(
                || vec![0; CRC_PIECE as usize],
                |buf, k| {
                    let start = k * CRC_PIECE;
                    let piece = &mut buf[..(self.payload - start).min(CRC_PIECE) as usize];
                    src.fill(start, piece);
                    let mut h = crc32fast::Hasher::new();
                    h.update(piece);
                    h
                },
            )
            .collect();
        let mut total = crc32fast::Hasher::new();
        total.update(&self.x_header);
        for h in &hashers {
            total.combine(h);
        }
        total.finalize()
    }

    /// Local header of `x.npy` followed by its npy header.
    fn head(&self, crc: u32) -> Vec<u8> {
        let mut out = local_header(&self.x(), crc);
        out.extend_from_slice(&self.x_header);
        out
    }

    /// Everything after the payload: `y.npy`, the central directory and the end records.
    fn tail(&self, x_crc: u32) -> Vec<u8> {
        let (x, y) = (self.x(), self.y());
        let mut out = local_header(&y, self.y_crc);
        out.extend_from_slice(&self.y);
        let cd_offset = self.tail_start() + out.len() as u64;
        let mut cd = central_entry(&x, x_crc);
        cd.extend_from_slice(&central_entry(&y, self.y_crc));
        let cd_len = cd.len() as u64;
        out.extend_from_slice(&cd);
        out.extend_from_slice(&end_records(cd_offset, cd_len, 2));
        out
    }
}

impl Framing for Npz {
    fn len(&self) -> u64 {
        let (x, y) = (self.x(), self.y());
        let cd_offset = y.offset + LOCAL_LEN + y.size;
        let cd_len = central_len(&x) + central_len(&y);
        cd_offset + cd_len + end_len(cd_offset, cd_len)
    }

    fn piece(&self, src: &Source<'_>, pos: u64) -> Located<'_> {
        let (payload_start, tail_start) = (self.payload_start(), self.tail_start());
        if pos >= payload_start && pos < tail_start {
            return Located {
                start: payload_start,
                len: self.payload,
                piece: Piece::Payload(0),
            };
        }
        let crc = self.x_crc(src);
        let (start, bytes) = match pos < payload_start {
            true => (0, self.head(crc)),
            false => (tail_start, self.tail(crc)),
        };
        let len = bytes.len() as u64;
        let piece = Piece::Bytes(Cow::Owned(bytes));
        Located { start, len, piece }
    }
}

/// A local file header with a zip64 extra field holding both sizes.
fn local_header(m: &Member, crc: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(LOCAL_LEN as usize);
    put32(&mut out, 0x0403_4b50);
    put16(&mut out, VERSION_NEEDED);
    put16(&mut out, 0); // flags
    put16(&mut out, 0); // method: stored
    put16(&mut out, 0); // time
    put16(&mut out, DOS_DATE);
    put32(&mut out, crc);
    put32(&mut out, u32::MAX); // compressed size: in the zip64 field
    put32(&mut out, u32::MAX); // uncompressed size: in the zip64 field
    put16(&mut out, m.name.len() as u16);
    put16(&mut out, 20); // extra field length
    out.extend_from_slice(m.name);
    put16(&mut out, 1); // zip64 extra field id
    put16(&mut out, 16);
    put64(&mut out, m.size); // uncompressed
    put64(&mut out, m.size); // compressed
    out
}

/// Values of the zip64 extra field of a central entry, empty when none is needed.
fn central_zip64(m: &Member) -> Vec<u64> {
    let mut extra = Vec::new();
    if m.size > ZIP64_LIMIT {
        extra.extend([m.size, m.size]);
    }
    if m.offset > ZIP64_LIMIT {
        extra.push(m.offset);
    }
    extra
}

fn central_len(m: &Member) -> u64 {
    let extra = central_zip64(m);
    let extra_len = if extra.is_empty() {
        0
    } else {
        4 + 8 * extra.len()
    };
    (46 + m.name.len() + extra_len) as u64
}

/// A central directory entry.
fn central_entry(m: &Member, crc: u32) -> Vec<u8> {
    let extra = central_zip64(m);
    let clamp = |v: u64| if v > ZIP64_LIMIT { u32::MAX } else { v as u32 };
    let size = if m.size > ZIP64_LIMIT {
        u32::MAX
    } else {
        m.size as u32
    };
    let mut out = Vec::with_capacity(central_len(m) as usize);
    put32(&mut out, 0x0201_4b50);
    put16(&mut out, VERSION_MADE_BY);
    put16(&mut out, VERSION_NEEDED);
    for field in [0, 0, 0, DOS_DATE] {
        put16(&mut out, field); // flags, method, time, date
    }
    put32(&mut out, crc);
    put32(&mut out, size); // compressed
    put32(&mut out, size); // uncompressed
    put16(&mut out, m.name.len() as u16);
    put16(
        &mut out,
        if extra.is_empty() {
            0
        } else {
            4 + 8 * extra.len() as u16
        },
    );
    for field in [0, 0, 0] {
        put16(&mut out, field); // comment length, disk, internal attributes
    }
    put32(&mut out, EXTERNAL_ATTR);
    put32(&mut out, clamp(m.offset));
    out.extend_from_slice(m.name);
    if !extra.is_empty() {
        put16(&mut out, 1);
        put16(&mut out, 8 * extra.len() as u16);
        extra.iter().for_each(|&v| put64(&mut out, v));
    }
    out
}

fn needs_zip64_end(cd_offset: u64, cd_len: u64) -> bool {
    cd_offset > ZIP64_LIMIT || cd_len > ZIP64_LIMIT
}

fn end_len(cd_offset: u64, cd_len: u64) -> u64 {
    if needs_zip64_end(cd_offset, cd_len) {
        56 + 20 + 22
    } else {
        22
    }
}

/// The zip64 end record and locator when needed, then the end of central directory record.
fn end_records(cd_offset: u64, cd_len: u64, entries: u16) -> Vec<u8> {
    let mut out = Vec::new();
    if needs_zip64_end(cd_offset, cd_len) {
        let record_at = cd_offset + cd_len;
        put32(&mut out, 0x0606_4b50);
        put64(&mut out, 44); // size of the rest of the record
        put16(&mut out, VERSION_NEEDED);
        put16(&mut out, VERSION_NEEDED);
        put32(&mut out, 0); // this disk
        put32(&mut out, 0); // disk of the central directory
        put64(&mut out, u64::from(entries));
        put64(&mut out, u64::from(entries));
        put64(&mut out, cd_len);
        put64(&mut out, cd_offset);
        put32(&mut out, 0x0706_4b50);
        put32(&mut out, 0); // disk of the zip64 end record
        put64(&mut out, record_at);
        put32(&mut out, 1); // disks
    }
    put32(&mut out, 0x0605_4b50);
    put32(&mut out, 0); // this disk, disk of the central directory
    put16(&mut out, entries);
    put16(&mut out, entries);
    put32(&mut out, cd_len.min(u64::from(u32::MAX)) as u32);
    put32(&mut out, cd_offset.min(u64::from(u32::MAX)) as u32);
    put16(&mut out, 0); // comment length
    out
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fixture, read_all};
    use super::super::{FileLayout, Format};
    use super::*;

    /// The central entry of `y.npy` in `numpy.savez(f, x=np.zeros((3, 5, 2), np.uint8),
    /// y=[0, 0])` as numpy 2.4 writes it.
    const Y_ENTRY_HEX: &str = "504b01022d032d000000000000002100e06a5105900000009000\
        00000500000000000000000000008001d5000000792e6e7079";

    #[test]
    fn layout_matches_numpy_savez() {
        let shape = Shape {
            dim1: 3,
            dim2: 5,
            samples: 2,
        };
        let npz = Npz::new(shape);
        assert_eq!(npz.len(), 536);
        assert_eq!(npz.y_crc, 0x0551_6ae0);
        let zero_payload_crc = {
            let mut h = crc32fast::Hasher::new();
            h.update(&npz.x_header);
            h.update(&[0; 30]);
            h.finalize()
        };
        assert_eq!(zero_payload_crc, 0xee7b_121e);
        let tail = npz.tail(zero_payload_crc);
        let y_entry = &tail[tail.len() - 22 - 51..tail.len() - 22];
        let want: Vec<u8> = (0..Y_ENTRY_HEX.len() / 2)
            .map(|i| u8::from_str_radix(&Y_ENTRY_HEX[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_eq!(y_entry, &want[..]);
    }

    #[test]
    fn crc_is_cached_and_matches_a_plain_pass() {
        let (generator, cache) = fixture();
        let src = Source {
            generator: &generator,
            stream_offset: 4096,
            file_key: 9,
            cache: &cache,
        };
        let shape = Shape {
            dim1: 1000,
            dim2: 3000,
            samples: 1,
        };
        let layout = FileLayout::new(Format::Npz, shape);
        let bytes = read_all(&layout, &src, 1 << 20);
        let x_len = 128 + 3_000_000;
        let want = crc32fast::hash(&bytes[55..55 + x_len]);
        assert_eq!(u32::from_le_bytes(bytes[14..18].try_into().unwrap()), want);
        assert_eq!(cached(&cache.member_crc, &9), Some(want));
    }

    #[test]
    fn big_members_get_zip64_central_fields() {
        let x = Member {
            name: b"x.npy",
            offset: 0,
            size: 3 << 30,
        };
        assert_eq!(central_entry(&x, 0).len() as u64, central_len(&x));
        assert_eq!(central_len(&x), 46 + 5 + 20);
        assert_eq!(end_records(3 << 30, 100, 2).len(), 98);
    }
}
