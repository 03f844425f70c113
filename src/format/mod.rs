//! File formats: the bytes of one file as computed framing around a generated payload.
//!
//! A [`FileLayout`] describes one file of a [`Format`] and [`Shape`]: which file offsets
//! hold computed bytes (headers, framing, checksums) and which hold payload. Payload byte
//! `k` of a file is byte `stream_offset + k` of the content stream, so the compress and
//! dedup ratios of the stream hold for the payload. A read of `len` bytes costs O(len) plus,
//! for checksums over payload, the work described in each format module (npz and tfrecord
//! compute their CRCs from the payload bytes being served, and cache them per file).
//!
//! This module does not know where files live in a tree; [`crate::dlio`] does.

pub mod hdf5;
pub mod npy;
pub mod npz;
pub mod tfrecord;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

use crate::content::Generator;
use crate::spec::SpecError;

/// How the bytes of a file are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Payload only, no framing.
    #[default]
    Raw,
    /// One NumPy `.npy` array of `uint8`, shape `(dim1, dim2, samples)`.
    Npy,
    /// A stored zip of `x.npy` (`uint8`, shape `(dim1, dim2, samples)`) and `y.npy` (`int64`
    /// zeros, shape `(samples,)`), as `numpy.savez` writes it.
    Npz,
    /// An HDF5 file with contiguous datasets `records` (`uint8`, `(samples, dim1, dim2)`) and
    /// `labels` (`int64` zeros, `(samples,)`), as h5py writes DLIO's files.
    Hdf5,
    /// `samples` TFRecords, each a `tf.train.Example` with features `image` (bytes) and
    /// `size` (int64).
    TfRecord,
}

impl Format {
    /// Every format, in the order the help text lists them.
    pub const ALL: [Format; 5] = [
        Format::Raw,
        Format::Npy,
        Format::Npz,
        Format::Hdf5,
        Format::TfRecord,
    ];

    /// The name used on the command line and as the file extension (DLIO's convention).
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Npy => "npy",
            Format::Npz => "npz",
            Format::Hdf5 => "hdf5",
            Format::TfRecord => "tfrecord",
        }
    }

    /// Parses a format name such as `npz`.
    pub fn parse(text: &str) -> Result<Format, SpecError> {
        let allowed = "expected raw, npy, npz, hdf5 or tfrecord";
        Format::ALL
            .into_iter()
            .find(|f| f.name() == text.trim())
            .ok_or_else(|| SpecError::new("format", text, allowed))
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The samples of one file: `samples` images of `dim1 x dim2` bytes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// First image dimension, at least 1.
    pub dim1: u64,
    /// Second image dimension, at least 1.
    pub dim2: u64,
    /// Samples (images) in the file, at least 1.
    pub samples: u64,
}

impl Shape {
    /// Bytes of one sample.
    pub fn sample_bytes(&self) -> u64 {
        self.dim1 * self.dim2
    }

    /// Bytes of payload in the file: all samples.
    pub fn payload_len(&self) -> u64 {
        self.sample_bytes() * self.samples
    }
}

/// Where one file's payload comes from and how its checksums are cached.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The content stream.
    pub generator: &'a Generator,
    /// Stream offset of payload byte 0.
    pub stream_offset: u64,
    /// A key unique to this file within the mount, for the caches.
    pub file_key: u64,
    /// Checksums already computed.
    pub cache: &'a ChecksumCache,
}

impl Source<'_> {
    /// Fills `buf` with payload bytes from payload offset `offset` on.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        self.generator.fill(self.stream_offset + offset, buf);
    }
}

/// One stretch of a file as a format describes it.
#[derive(Debug)]
pub(crate) enum Piece<'a> {
    /// Computed bytes; byte 0 sits at the piece's start.
    Bytes(Cow<'a, [u8]>),
    /// Payload bytes from this payload offset on.
    Payload(u64),
}

/// A piece and the file range it covers.
#[derive(Debug)]
pub(crate) struct Located<'a> {
    /// File offset of the piece's first byte.
    pub start: u64,
    /// Bytes in the piece.
    pub len: u64,
    /// What the piece holds.
    pub piece: Piece<'a>,
}

/// What each format module provides: its length and the piece at any offset.
pub(crate) trait Framing {
    /// Length of the file in bytes.
    fn len(&self) -> u64;

    /// The piece holding file offset `pos` (`pos < len()`).
    fn piece(&self, src: &Source<'_>, pos: u64) -> Located<'_>;

    /// Sees payload bytes `bytes` at payload offset `offset` just served, for streaming
    /// checksums; the default ignores them.
    fn observe(&self, _src: &Source<'_>, _offset: u64, _bytes: &[u8]) {}
}

/// The layout of one file: its length and how to compute any byte range of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileLayout {
    /// Payload only.
    Raw(u64),
    /// A `.npy` file.
    Npy(npy::Npy),
    /// A `.npz` file.
    Npz(npz::Npz),
    /// An HDF5 file.
    Hdf5(hdf5::Hdf5),
    /// A TFRecord file.
    TfRecord(tfrecord::TfRecord),
}

impl FileLayout {
    /// The layout of a file of `format` holding the samples of `shape`.
    pub fn new(format: Format, shape: Shape) -> FileLayout {
        match format {
            Format::Raw => FileLayout::Raw(shape.payload_len()),
            Format::Npy => FileLayout::Npy(npy::Npy::new(shape)),
            Format::Npz => FileLayout::Npz(npz::Npz::new(shape)),
            Format::Hdf5 => FileLayout::Hdf5(hdf5::Hdf5::new(shape)),
            Format::TfRecord => FileLayout::TfRecord(tfrecord::TfRecord::new(shape)),
        }
    }

    /// Length of the file in bytes; computing it costs no payload work.
    pub fn len(&self) -> u64 {
        self.framing().map_or_else(|len| len, |f| f.len())
    }

    /// True when the file has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the file's bytes from `offset` on; returns how many there were
    /// (fewer than `buf.len()` only at the end of the file).
    pub fn read(&self, src: &Source<'_>, offset: u64, buf: &mut [u8]) -> usize {
        let n = self.len().saturating_sub(offset).min(buf.len() as u64) as usize;
        if n == 0 {
            // At or past the end; `offset` may be near u64::MAX, so add nothing to it.
            return 0;
        }
        match self.framing() {
            Err(_) => src.fill(offset, &mut buf[..n]),
            Ok(framing) => read_pieces(framing, src, offset, &mut buf[..n]),
        }
        n
    }

    /// The framing of a formatted file, or the length of a raw one.
    fn framing(&self) -> Result<&dyn Framing, u64> {
        match self {
            FileLayout::Raw(len) => Err(*len),
            FileLayout::Npy(f) => Ok(f),
            FileLayout::Npz(f) => Ok(f),
            FileLayout::Hdf5(f) => Ok(f),
            FileLayout::TfRecord(f) => Ok(f),
        }
    }
}

/// Fills all of `buf` (which ends at or before the end of the file) piece by piece.
fn read_pieces(framing: &dyn Framing, src: &Source<'_>, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut rest = buf;
    while !rest.is_empty() {
        let located = framing.piece(src, pos);
        let within = pos - located.start;
        let take = ((located.len - within) as usize).min(rest.len());
        let (head, tail) = rest.split_at_mut(take);
        match located.piece {
            Piece::Bytes(bytes) => head.copy_from_slice(&bytes[within as usize..][..take]),
            Piece::Payload(at) => {
                src.fill(at + within, head);
                framing.observe(src, at + within, head);
            }
        }
        pos += take as u64;
        rest = tail;
    }
}

/// Bounded caches of checksums over payload, shared by all files of a mount.
///
/// Each map holds at most [`ChecksumCache::CAPACITY`] entries; when full it is cleared, which
/// costs a recomputation of whatever is asked for next and nothing else.
#[derive(Debug, Default)]
pub struct ChecksumCache {
    /// CRC-32 of a whole npz member, by file key.
    member_crc: Mutex<HashMap<u64, u32>>,
    /// Running CRC-32 of an npz `x.npy` up to its forcing bytes, by file key.
    member_prefix: Mutex<HashMap<u64, npz::RunningCrc>>,
    /// Running CRC-32C over a prefix of a TFRecord's data: (file key, record) to
    /// (bytes covered, crc).
    record_crc: Mutex<HashMap<(u64, u64), (u64, u32)>>,
}

impl ChecksumCache {
    /// Most entries each map holds before it is cleared.
    pub const CAPACITY: usize = 1 << 18;

    /// The cached CRC-32 of the payload member of npz file `file_key`, if computed.
    pub fn member_crc(&self, file_key: u64) -> Option<u32> {
        cached(&self.member_crc, &file_key)
    }
}

/// Looks `key` up in `map`.
fn cached<K: Hash + Eq, V: Copy>(map: &Mutex<HashMap<K, V>>, key: &K) -> Option<V> {
    lock(map).get(key).copied()
}

/// Locks `map`, which a panicking holder cannot leave inconsistent (every update is one
/// insert or one in-place change of a value).
fn lock<T>(map: &Mutex<T>) -> MutexGuard<'_, T> {
    map.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stores `value` under `key` in `map`, clearing the map first when it is full.
fn remember<K: Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, key: K, value: V) {
    let mut map = lock(map);
    if map.len() >= ChecksumCache::CAPACITY {
        map.clear();
    }
    map.insert(key, value);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::spec::ContentSpec;

    /// A generator and cache for format tests.
    pub(crate) fn fixture() -> (Generator, ChecksumCache) {
        let generator = Generator::new(&ContentSpec::with_seed(11)).unwrap();
        (generator, ChecksumCache::default())
    }

    /// Reads all of `layout` in pieces of `step` bytes.
    pub(crate) fn read_all(layout: &FileLayout, src: &Source<'_>, step: usize) -> Vec<u8> {
        let mut out = vec![0; layout.len() as usize];
        for (i, chunk) in out.chunks_mut(step).enumerate() {
            assert_eq!(layout.read(src, (i * step) as u64, chunk), chunk.len());
        }
        out
    }

    #[test]
    fn formats_parse_by_name() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.name()), Ok(f));
        }
        assert_eq!(Format::parse("zip").unwrap_err().field, "format");
    }

    #[test]
    fn every_format_reads_the_same_bytes_in_any_step() {
        let (generator, cache) = fixture();
        let src = Source {
            generator: &generator,
            stream_offset: 1 << 20,
            file_key: 3,
            cache: &cache,
        };
        let shape = Shape {
            dim1: 37,
            dim2: 41,
            samples: 3,
        };
        for format in Format::ALL {
            let layout = FileLayout::new(format, shape);
            let whole = read_all(&layout, &src, 1 << 20);
            for step in [1, 7, 512, 4096] {
                assert_eq!(read_all(&layout, &src, step), whole, "{format} step {step}");
            }
            let mut tail = [0u8; 16];
            assert_eq!(layout.read(&src, layout.len() - 3, &mut tail), 3);
            assert_eq!(layout.read(&src, layout.len(), &mut tail), 0);
        }
    }
}
