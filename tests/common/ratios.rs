//! Compress ratios of a buffer measured with real compressors, shared by tests and examples.

use std::io::Write;

/// A compressor the contract names, at the level it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compressor {
    /// zstd level 1.
    Zstd1,
    /// zstd level 3.
    Zstd3,
    /// lz4 block format (as storage arrays use it: no frame header).
    Lz4,
    /// deflate level 6 (gzip -6 without the 18-byte gzip header and trailer).
    Deflate6,
}

/// Every compressor, in report order.
pub const ALL: [Compressor; 4] = [
    Compressor::Zstd1,
    Compressor::Zstd3,
    Compressor::Lz4,
    Compressor::Deflate6,
];

impl Compressor {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Compressor::Zstd1 => "zstd-1",
            Compressor::Zstd3 => "zstd-3",
            Compressor::Lz4 => "lz4",
            Compressor::Deflate6 => "gzip-6",
        }
    }

    /// Compressed size of `data` in bytes.
    pub fn compressed_len(self, data: &[u8]) -> usize {
        match self {
            Compressor::Zstd1 => zstd::bulk::compress(data, 1).unwrap().len(),
            Compressor::Zstd3 => zstd::bulk::compress(data, 3).unwrap().len(),
            Compressor::Lz4 => lz4_flex::block::compress(data).len(),
            Compressor::Deflate6 => {
                let mut enc = flate2::write::DeflateEncoder::new(
                    Vec::with_capacity(data.len()),
                    flate2::Compression::new(6),
                );
                enc.write_all(data).unwrap();
                enc.finish().unwrap().len()
            }
        }
    }

    /// Ratio of `data` compressed whole (`block = None`) or in independent blocks.
    pub fn ratio(self, data: &[u8], block: Option<usize>) -> f64 {
        let compressed: usize = match block {
            None => self.compressed_len(data),
            Some(size) => data.chunks(size).map(|b| self.compressed_len(b)).sum(),
        };
        data.len() as f64 / compressed as f64
    }
}

/// Block sizes measured: the whole stream, 128 KiB and 4 KiB.
pub const BLOCKS: [Option<usize>; 3] = [None, Some(128 << 10), Some(4 << 10)];
