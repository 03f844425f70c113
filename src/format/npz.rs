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
//! directory that readers fetch first, before any payload. Computing it over the payload
//! would cost a whole extra generation pass on the first read of every file. Instead the
//! CRC is chosen first and four payload bytes are set to make it true: a CRC is linear, so
//! for any bytes before them there are exactly four bytes that bring the CRC to a given
//! value ([`forge`]). These *forcing bytes* sit at payload offset
//! `payload - 4 - min(payload - 4, SUFFIX)`, 64 KiB before the end of `x.npy`; the CRC up
//! to and including them is a hash of the file's stream offset and length, and the member
//! CRC adds the CRC of the 64 KiB after them, which costs 64 KiB of generation on the first
//! read of the header or tail (a few microseconds). Every other payload byte is the stream's.
//!
//! The forcing bytes depend on the CRC of everything before them. Readers read in order
//! (`dd`, `cp`), or read the end records, the header and then the data in order (Python's
//! `zipfile`, so `np.load`), and the end records are more than a kernel page away from the
//! forcing bytes. So each payload piece served before the forcing bytes extends a running
//! CRC in the mount's [`ChecksumCache`](super::ChecksumCache) (CRC at about 90 GB/s over
//! bytes still in cache; pieces that arrive out of order wait for the prefix), and the
//! forcing bytes take it from there. A reader that jumps to them makes us generate the part
//! not served yet, once per file, in pieces spread over the rayon pool.
//!
//! Four bytes per file differ from the stream, so a file's dedup unit holding them is
//! unique: a dedup ratio measured over npz files falls short of the stream's by one unit
//! per file (0.003% of a unet3d file). Payloads shorter than four bytes have no forcing
//! bytes; their CRC is computed from the payload.
//!
//! TODO: a reader that touches the forcing bytes before the payload in front of them (a
//! random-access or backwards reader, an mmap fault that reads around them) pays one
//! generation pass over the part not served, and two threads doing so at once both pay
//! it; a per-file in-flight marker would share it. No reader DLIO uses does that.

use std::borrow::Cow;

use crc_fast::CrcAlgorithm::Crc32IsoHdlc;
use rayon::prelude::*;

use super::{cached, lock, npy, remember, Framing, Located, Piece, Shape, Source};
use crate::content::lanes::mix64;

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

/// Bytes of `x.npy` data after the forcing bytes (see the module docs).
const SUFFIX: u64 = 64 << 10;

/// Payload bytes generated at a time when the CRC needs bytes not served yet.
const CRC_PIECE: usize = 256 << 10;

/// The reflected CRC-32 polynomial (ISO-HDLC, as zip uses).
const POLY: u32 = 0xedb8_8320;

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
    /// CRC-32 of `x_header`: the running CRC of `x.npy` before any payload.
    x_header_crc: u32,
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
        Npz {
            x_header_crc: crc32(&x_header),
            x_header,
            payload: shape.payload_len(),
            y_crc: crc32(&y),
            y,
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

    /// Payload offset of the four forcing bytes, `None` when the payload is shorter.
    fn force_at(&self) -> Option<u64> {
        let last = self.payload.checked_sub(4)?;
        Some(last.saturating_sub(SUFFIX))
    }

    /// CRC-32 of `x.npy`, from the cache or computed from the few payload bytes it needs.
    fn x_crc(&self, src: &Source<'_>) -> u32 {
        if let Some(crc) = cached(&src.cache.member_crc, &src.file_key) {
            return crc;
        }
        let crc = match self.force_at() {
            Some(at) => {
                let suffix = self.generate_crc(src, at + 4, self.payload, 0);
                crc32_combine(self.forced_crc(src), suffix, self.payload - at - 4)
            }
            None => self.generate_crc(src, 0, self.payload, self.x_header_crc),
        };
        remember(&src.cache.member_crc, src.file_key, crc);
        crc
    }

    /// The CRC-32 of `x.npy` up to and including the forcing bytes: a hash of the file's
    /// place in the stream, so it is known before any payload byte is.
    fn forced_crc(&self, src: &Source<'_>) -> u32 {
        let seed = mix64(src.generator.spec().seed ^ 0x510e_527f_ade6_82d1);
        mix64(mix64(seed ^ src.stream_offset) ^ self.payload) as u32
    }

    /// The four forcing bytes of a file whose payload is at least four bytes long.
    fn forcing_bytes(&self, src: &Source<'_>, at: u64) -> [u8; 4] {
        let before = self.prefix_crc(src, at);
        forge(before, self.forced_crc(src))
    }

    /// CRC-32 of the `x.npy` bytes before payload offset `at` (the forcing bytes): the
    /// running CRC of what readers were served, extended by generating what they skipped.
    fn prefix_crc(&self, src: &Source<'_>, at: u64) -> u32 {
        let (covered, crc) = self.running(src);
        if covered == at {
            return crc;
        }
        let missing = at - covered;
        tracing::debug!(
            file = src.file_key,
            missing,
            "npz forcing bytes need unserved payload"
        );
        let crc = crc32_combine(crc, self.generate_crc(src, covered, at, 0), missing);
        let done = RunningCrc {
            covered: at,
            crc,
            pending: Vec::new(),
        };
        remember(&src.cache.member_prefix, src.file_key, done);
        crc
    }

    /// (payload bytes covered, CRC-32 of `x.npy` up to them) of the running CRC.
    fn running(&self, src: &Source<'_>) -> (u64, u32) {
        lock(&src.cache.member_prefix)
            .get(&src.file_key)
            .map_or((0, self.x_header_crc), |r| (r.covered, r.crc))
    }

    /// CRC-32 of payload bytes `[from, to)` appended to CRC `crc`, generated in pieces
    /// that stay in cache while they are hashed, spread over the rayon pool.
    fn generate_crc(&self, src: &Source<'_>, from: u64, to: u64, crc: u32) -> u32 {
        let pieces = (to - from).div_ceil(CRC_PIECE as u64);
        let parts = (rayon::current_num_threads() as u64).min(pieces).max(1);
        let per_part = pieces.div_ceil(parts) * CRC_PIECE as u64;
        let crcs: Vec<(u32, u64)> = (0..parts)
            .into_par_iter()
            .map(|k| {
                let start = (from + k * per_part).min(to);
                let end = (start + per_part).min(to);
                (generate_run_crc(src, start, end), end - start)
            })
            .collect();
        crcs.into_iter()
            .fold(crc, |acc, (part, len)| crc32_combine(acc, part, len))
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

    /// The payload stretch holding payload offset `at`: (first offset, length, payload
    /// offset it serves from, or `None` for the forcing bytes).
    fn payload_piece(&self, at: u64) -> (u64, u64, Option<u64>) {
        match self.force_at() {
            None => (0, self.payload, Some(0)),
            Some(f) if at < f => (0, f, Some(0)),
            Some(f) if at < f + 4 => (f, 4, None),
            Some(f) => (f + 4, self.payload - f - 4, Some(f + 4)),
        }
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
            let (at, len, from) = self.payload_piece(pos - payload_start);
            let piece = match from {
                Some(from) => Piece::Payload(from),
                None => Piece::Bytes(Cow::Owned(self.forcing_bytes(src, at).to_vec())),
            };
            let start = payload_start + at;
            return Located { start, len, piece };
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

    fn observe(&self, src: &Source<'_>, offset: u64, bytes: &[u8]) {
        let Some(at) = self.force_at() else { return };
        if offset >= at || self.running(src).0 >= at {
            return; // Past the prefix, or the prefix is known.
        }
        let take = (at - offset).min(bytes.len() as u64);
        let crc = crc32(&bytes[..take as usize]);
        let mut map = lock(&src.cache.member_prefix);
        if map.len() >= super::ChecksumCache::CAPACITY && !map.contains_key(&src.file_key) {
            map.clear();
        }
        let header = self.x_header_crc;
        map.entry(src.file_key)
            .or_insert_with(|| RunningCrc::new(header))
            .add(offset, take, crc);
    }
}

/// The CRC-32 of a prefix of one file's `x.npy`, built from the pieces served.
///
/// Requests of one file may be served out of order by parallel session threads (the
/// kernel reads ahead asynchronously), so pieces that start past the prefix wait in
/// `pending` until the prefix reaches them.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunningCrc {
    /// Payload bytes covered by `crc`, from payload offset 0.
    covered: u64,
    /// CRC-32 of the npy header and payload `[0, covered)`.
    crc: u32,
    /// (payload offset, length, CRC-32) of pieces past `covered`, at most [`PENDING`].
    pending: Vec<(u64, u64, u32)>,
}

/// Most out-of-order pieces kept per file; further ones are generated again if needed.
const PENDING: usize = 16;

impl RunningCrc {
    fn new(header_crc: u32) -> RunningCrc {
        RunningCrc {
            crc: header_crc,
            ..RunningCrc::default()
        }
    }

    /// Adds the piece at payload offset `offset` of `len` bytes whose CRC-32 is `crc`.
    fn add(&mut self, offset: u64, len: u64, crc: u32) {
        if offset > self.covered {
            if self.pending.len() < PENDING {
                self.pending.push((offset, len, crc));
            }
            return;
        }
        if offset < self.covered {
            return; // A re-read.
        }
        self.crc = crc32_combine(self.crc, crc, len);
        self.covered += len;
        while let Some(k) = self.pending.iter().position(|p| p.0 == self.covered) {
            let (_, len, crc) = self.pending.swap_remove(k);
            self.crc = crc32_combine(self.crc, crc, len);
            self.covered += len;
        }
        self.pending.retain(|p| p.0 > self.covered);
    }
}

/// CRC-32 of payload bytes `[start, end)`, generated piece by piece on one thread.
fn generate_run_crc(src: &Source<'_>, start: u64, end: u64) -> u32 {
    thread_local! {
        // One buffer per thread, not per call: fresh buffers cost a page fault per 4 KiB.
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.resize(CRC_PIECE, 0);
        let mut digest = crc_fast::Digest::new(Crc32IsoHdlc);
        let mut pos = start;
        while pos < end {
            let piece = &mut buf[..(end - pos).min(CRC_PIECE as u64) as usize];
            src.fill(pos, piece);
            digest.update(piece);
            pos += piece.len() as u64;
        }
        digest.finalize() as u32
    })
}

/// CRC-32 (ISO-HDLC, as zip uses) of `data`.
fn crc32(data: &[u8]) -> u32 {
    crc_fast::crc32_iso_hdlc(data)
}

/// CRC-32 of two byte strings back to back, from their CRCs and the second one's length.
///
/// The first CRC is multiplied by `x^(8 * second_len)` modulo the polynomial, from a table
/// of `x^(2^k)`: a few hundred shifts, where the GF(2) matrix method of `crc_fast` and
/// `crc32fast` squares 32x32 matrices (tens of microseconds for a 1 MiB piece).
pub(crate) fn crc32_combine(first: u32, second: u32, second_len: u64) -> u32 {
    let mut power = 1 << 31; // x^0, bit-reflected
    let (mut n, mut k) = (second_len, 3); // x^(8n) = x^(n * 2^3)
    while n != 0 {
        if n & 1 == 1 {
            power = mul_mod(X_POW2[k % 32], power);
        }
        n >>= 1;
        k += 1;
    }
    mul_mod(power, first) ^ second
}

/// `X_POW2[k]` is `x^(2^k)` modulo the CRC-32 polynomial; it repeats with period 32.
const X_POW2: [u32; 32] = {
    let mut table = [0; 32];
    let mut p = 1 << 30; // x^1
    let mut k = 0;
    while k < 32 {
        table[k] = p;
        p = mul_mod(p, p);
        k += 1;
    }
    table
};

/// Product of two bit-reflected polynomials modulo the CRC-32 polynomial.
const fn mul_mod(a: u32, mut b: u32) -> u32 {
    let mut product = 0;
    let mut m = 1 << 31;
    while m != 0 {
        if a & m != 0 {
            product ^= b;
        }
        m >>= 1;
        b = if b & 1 == 1 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    product
}

/// The four bytes that, appended to bytes whose CRC-32 is `before`, make it `after`.
///
/// Appending a 32-bit word `w` to a CRC register `r` yields `M(r ^ w)`, where `M` shifts
/// the register through 32 zero bits; `M` is invertible, so `w = M^-1(after) ^ before` on
/// registers (a finished CRC is its register inverted).
fn forge(before: u32, after: u32) -> [u8; 4] {
    let mut r = !after;
    for _ in 0..32 {
        // Undo one step: a set top bit means the polynomial was folded in after a 1 left.
        r = match r & 0x8000_0000 {
            0 => r << 1,
            _ => ((r ^ POLY) << 1) | 1,
        };
    }
    (r ^ !before).to_le_bytes()
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
    use super::super::{ChecksumCache, FileLayout, Format};
    use super::*;
    use crate::content::Generator;

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

    /// The CRC-32 stored in the local header and the one of the `x.npy` bytes.
    fn stored_and_actual_crc(npz: &Npz, bytes: &[u8]) -> (u32, u32) {
        let x = &bytes[LOCAL_LEN as usize..npz.tail_start() as usize];
        let stored = u32::from_le_bytes(bytes[14..18].try_into().unwrap());
        (stored, crc32fast::hash(x))
    }

    fn src<'a>(generator: &'a Generator, cache: &'a ChecksumCache) -> Source<'a> {
        Source {
            generator,
            stream_offset: 4096 + 77,
            file_key: 9,
            cache,
        }
    }

    #[test]
    fn crc_is_right_in_any_read_order_and_size() {
        let (generator, _) = fixture();
        for dim2 in [1, 3, 4, 5, 2000, 3000] {
            let shape = Shape {
                dim1: 100,
                dim2,
                samples: dim2.min(3),
            };
            let npz = Npz::new(shape);
            let layout = FileLayout::new(Format::Npz, shape);
            let cache = ChecksumCache::default();
            let forward = read_all(&layout, &src(&generator, &cache), 1 << 16);
            let (stored, actual) = stored_and_actual_crc(&npz, &forward);
            assert_eq!(stored, actual, "payload {}", npz.payload);
            assert_eq!(cached(&cache.member_crc, &9), Some(actual));

            // Backwards with a fresh cache: the forcing bytes come before their prefix.
            let cache = ChecksumCache::default();
            let mut backward = vec![0; forward.len()];
            for (k, chunk) in backward.chunks_mut(4099).enumerate().rev() {
                layout.read(&src(&generator, &cache), (k * 4099) as u64, chunk);
            }
            assert_eq!(backward, forward, "payload {}", npz.payload);
        }
    }

    #[test]
    fn in_order_reads_leave_nothing_to_generate() {
        let (generator, cache) = fixture();
        let shape = Shape {
            dim1: 1000,
            dim2: 3000,
            samples: 1,
        };
        let npz = Npz::new(shape);
        let src = src(&generator, &cache);
        let step = 1 << 20;
        let mut buf = vec![0; step];
        // Piece 1 arrives before piece 0, as parallel session threads may serve them.
        let layout = FileLayout::Npz(npz.clone());
        for k in [1, 0] {
            layout.read(&src, (k * step) as u64, &mut buf);
        }
        assert_eq!(npz.running(&src).0, 2 * step as u64 - npz.payload_start());
        layout.read(&src, 2 * step as u64, &mut buf);
        assert_eq!(npz.running(&src).0, npz.force_at().unwrap());
        let bytes = read_all(&FileLayout::Npz(npz.clone()), &src, step);
        let (stored, actual) = stored_and_actual_crc(&npz, &bytes);
        assert_eq!(stored, actual);
    }

    #[test]
    fn forge_and_combine_agree_with_plain_crcs() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for split in [0, 1, 4, 999, 5000] {
            let (a, b) = data.split_at(split);
            let combined = crc32_combine(crc32(a), crc32(b), b.len() as u64);
            assert_eq!(combined, crc32(&data), "split {split}");
        }
        let long = crc_fast::checksum_combine(Crc32IsoHdlc, 0x1234_5678, 0x9abc, 5 << 32);
        assert_eq!(crc32_combine(0x1234_5678, 0x9abc, 5 << 32), long as u32);
        for target in [0, 1, 0xdead_beef, u32::MAX] {
            let mut forged = data.clone();
            forged.extend_from_slice(&forge(crc32(&data), target));
            assert_eq!(crc32(&forged), target);
        }
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
