//! TFRecord files: `samples` records, each a serialized `tf.train.Example`.
//!
//! A record is `u64 length | masked crc32c(length) | data | masked crc32c(data)`, all
//! little-endian, where the mask is TensorFlow's `((crc >> 15) | (crc << 17)) + 0xa282ead8`.
//! The data is an `Example` protobuf, encoded by hand: one `Features` map with `image` (a
//! `BytesList` holding one sample, the payload) and `size` (a packed `Int64List` holding
//! `dim1`; DLIO stores its nominal image dimension there and no reader uses it). All records
//! of a file have the same length, as DLIO's generator writes them, so record `r` starts at
//! `r * record_len`.
//!
//! The CRC-32C of a record's data needs its payload bytes. A reader that reads the record
//! in order has just served them: every payload piece served extends a running CRC kept in
//! the mount's [`ChecksumCache`](super::ChecksumCache), and the trailer takes it from there
//! at no extra cost. A reader that jumps straight to a trailer makes us generate the part
//! of that one record not yet covered (at most one sample, about 115 KB for resnet50 and
//! 3 MB for cosmoflow).

use std::borrow::Cow;

use crc_fast::CrcAlgorithm::Crc32Iscsi;

use super::{cached, remember, Framing, Located, Piece, Shape, Source};

/// Bytes of the data CRC after the data.
const FOOT: u64 = 4;

/// Payload bytes generated at a time when a trailer needs bytes not yet served.
const CRC_PIECE: usize = 256 << 10;

/// A TFRecord file for one [`Shape`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TfRecord {
    /// Length field, its masked CRC and the protobuf bytes before the image.
    head: Vec<u8>,
    /// The protobuf bytes after the image (the `size` feature).
    suffix: Vec<u8>,
    /// CRC-32C of the protobuf bytes before the image.
    prefix_crc: u32,
    sample: u64,
    samples: u64,
}

impl TfRecord {
    /// The file for `shape`: `samples` records of one `dim1 x dim2` image each.
    pub fn new(shape: Shape) -> TfRecord {
        let sample = shape.sample_bytes();
        let (prefix, suffix) = example(sample, shape.dim1);
        let data_len = prefix.len() as u64 + sample + suffix.len() as u64;
        let len_bytes = data_len.to_le_bytes();
        let mut head = len_bytes.to_vec();
        head.extend_from_slice(&mask(crc32c(&len_bytes)).to_le_bytes());
        head.extend_from_slice(&prefix);
        TfRecord {
            head,
            suffix,
            prefix_crc: crc32c(&prefix),
            sample,
            samples: shape.samples,
        }
    }

    /// Bytes of one record, framing included.
    pub fn record_len(&self) -> u64 {
        self.head.len() as u64 + self.sample + self.suffix.len() as u64 + FOOT
    }

    /// The suffix and the masked data CRC of record `r`.
    fn trailer(&self, src: &Source<'_>, r: u64) -> Vec<u8> {
        let image_crc = self.image_crc(src, r);
        let crc = crc32c_append(image_crc, &self.suffix);
        let mut out = self.suffix.clone();
        out.extend_from_slice(&mask(crc).to_le_bytes());
        out
    }

    /// CRC-32C of the protobuf prefix and the whole image of record `r`.
    fn image_crc(&self, src: &Source<'_>, r: u64) -> u32 {
        let (mut covered, mut crc) =
            cached(&src.cache.record_crc, &(src.file_key, r)).unwrap_or((0, self.prefix_crc));
        let mut buf = vec![0; CRC_PIECE.min((self.sample - covered) as usize)];
        while covered < self.sample {
            let take = (self.sample - covered).min(CRC_PIECE as u64) as usize;
            src.fill(r * self.sample + covered, &mut buf[..take]);
            crc = crc32c_append(crc, &buf[..take]);
            covered += take as u64;
        }
        crc
    }
}

impl Framing for TfRecord {
    fn len(&self) -> u64 {
        self.samples * self.record_len()
    }

    fn piece(&self, src: &Source<'_>, pos: u64) -> Located<'_> {
        let r = pos / self.record_len();
        let base = r * self.record_len();
        let (head, image_end) = (self.head.len() as u64, self.head.len() as u64 + self.sample);
        let (start, len, piece) = match pos - base {
            within if within < head => (base, head, Piece::Bytes(Cow::Borrowed(&self.head))),
            within if within < image_end => {
                (base + head, self.sample, Piece::Payload(r * self.sample))
            }
            _ => {
                let trailer = self.trailer(src, r);
                (
                    base + image_end,
                    trailer.len() as u64,
                    Piece::Bytes(Cow::Owned(trailer)),
                )
            }
        };
        Located { start, len, piece }
    }

    fn observe(&self, src: &Source<'_>, offset: u64, bytes: &[u8]) {
        let (r, within) = (offset / self.sample, offset % self.sample);
        let key = (src.file_key, r);
        let known = cached(&src.cache.record_crc, &key);
        if known.is_some_and(|(covered, _)| covered == self.sample) {
            return; // A re-read of a record whose CRC is known.
        }
        let running = match within {
            0 => Some((0, self.prefix_crc)),
            _ => known.filter(|&(covered, _)| covered == within),
        };
        if let Some((covered, crc)) = running {
            let crc = crc32c_append(crc, bytes);
            remember(
                &src.cache.record_crc,
                key,
                (covered + bytes.len() as u64, crc),
            );
        }
    }
}

/// CRC-32C (Castagnoli) of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_append(0, data)
}

/// CRC-32C of the bytes whose CRC-32C is `crc` followed by `data`.
///
/// `crc_fast` folds with carry-less multiplies (about 50 GB/s here, twice the SSE 4.2
/// instruction alone); its digest starts from a raw register, which is the finished CRC
/// with the final XOR undone.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    let register = u64::from(crc ^ u32::MAX);
    let mut digest = crc_fast::Digest::new_with_init_state(Crc32Iscsi, register);
    digest.update(data);
    digest.finalize() as u32
}

/// TensorFlow's CRC mask, which keeps a CRC of data holding CRCs from being trivial.
pub fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The protobuf bytes of an `Example` before and after an image of `image_len` bytes, with
/// feature `size` holding `size`.
fn example(image_len: u64, size: u64) -> (Vec<u8>, Vec<u8>) {
    // Innermost first: each message is (tag, length, body); lengths are varints.
    let bytes_list = 1 + varint_len(image_len) + image_len;
    let image_feature = 1 + varint_len(bytes_list) + bytes_list;
    let image_entry = 7 + 1 + varint_len(image_feature) + image_feature;
    let int64_list = 2 + varint_len(size);
    let size_feature = 1 + varint_len(int64_list) + int64_list;
    let size_entry = 6 + 1 + varint_len(size_feature) + size_feature;
    let features = field_len(image_entry) + field_len(size_entry);

    let mut prefix = Vec::new();
    for (tag, len) in [(0x0a, features), (0x0a, image_entry)] {
        prefix.push(tag); // Example.features, Features.feature (a map entry)
        put_varint(&mut prefix, len);
    }
    prefix.extend_from_slice(b"\x0a\x05image\x12"); // entry key, then entry value tag
    for (len, tag) in [(image_feature, 0x0a), (bytes_list, 0x0a)] {
        put_varint(&mut prefix, len);
        prefix.push(tag); // Feature.bytes_list, BytesList.value
    }
    put_varint(&mut prefix, image_len);

    let mut suffix = vec![0x0a];
    put_varint(&mut suffix, size_entry);
    suffix.extend_from_slice(b"\x0a\x04size\x12");
    put_varint(&mut suffix, size_feature);
    suffix.push(0x1a); // Feature.int64_list
    put_varint(&mut suffix, int64_list);
    suffix.push(0x0a); // Int64List.value, packed
    put_varint(&mut suffix, varint_len(size));
    put_varint(&mut suffix, size);
    (prefix, suffix)
}

/// Bytes of a length-delimited field with a one-byte tag and a body of `len` bytes.
fn field_len(len: u64) -> u64 {
    1 + varint_len(len) + len
}

fn varint_len(v: u64) -> u64 {
    u64::from((64 - (v | 1).leading_zeros()).div_ceil(7))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fixture, read_all};
    use super::super::{FileLayout, Format};
    use super::*;

    /// Bit-at-a-time CRC-32C, the definition.
    fn crc32c_reference(data: &[u8]) -> u32 {
        let mut crc = u32::MAX;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82f6_3b78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn crc32c_matches_the_definition_whole_and_appended() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        let data: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let want = crc32c_reference(&data);
        assert_eq!(crc32c(&data), want);
        for split in [0, 1, 63, 4096, 99_999] {
            let (a, b) = data.split_at(split);
            assert_eq!(crc32c_append(crc32c(a), b), want, "split {split}");
        }
    }

    #[test]
    fn varints_are_protobuf_varints() {
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        assert_eq!((varint_len(0), varint_len(127), varint_len(128)), (1, 1, 2));
        assert_eq!(varint_len(u64::MAX), 10);
    }

    #[test]
    fn example_of_a_tiny_image_matches_tensorflow() {
        // tf.train.Example(features=tf.train.Features(feature={'image': bytes_list [b'ab'],
        // 'size': int64_list [3]})).SerializeToString(), with the image first.
        let (prefix, suffix) = example(2, 3);
        let mut data = prefix;
        data.extend_from_slice(b"ab");
        data.extend_from_slice(&suffix);
        let want = b"\x0a\x20\x0a\x0f\x0a\x05image\x12\x06\x0a\x04\x0a\x02ab\
                     \x0a\x0d\x0a\x04size\x12\x05\x1a\x03\x0a\x01\x03";
        assert_eq!(data, want);
    }

    /// Checks every record's framing and CRCs the way a TFRecord reader does.
    fn check_records(bytes: &[u8], count: usize) {
        let mut pos = 0;
        for _ in 0..count {
            let len_bytes = &bytes[pos..pos + 8];
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            let len_crc = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
            assert_eq!(len_crc, mask(crc32c(len_bytes)));
            let data = &bytes[pos + 12..pos + 12 + len];
            let foot = &bytes[pos + 12 + len..pos + 16 + len];
            assert_eq!(
                u32::from_le_bytes(foot.try_into().unwrap()),
                mask(crc32c(data))
            );
            pos += 16 + len;
        }
        assert_eq!(pos, bytes.len());
    }

    #[test]
    fn crcs_hold_for_in_order_and_jumping_readers() {
        let shape = Shape {
            dim1: 300,
            dim2: 1000,
            samples: 4,
        };
        let layout = FileLayout::new(Format::TfRecord, shape);
        // Every read starts from an empty checksum cache.
        let read_fresh = |step: usize| {
            let (generator, cache) = fixture();
            let src = Source {
                generator: &generator,
                stream_offset: 0,
                file_key: 1,
                cache: &cache,
            };
            read_all(&layout, &src, step)
        };
        for step in [1 << 20, 100_000, 4096] {
            check_records(&read_fresh(step), 4);
        }
        let whole = read_fresh(1 << 20);
        let (generator, cache) = fixture();
        let cold = Source {
            generator: &generator,
            stream_offset: 0,
            file_key: 1,
            cache: &cache,
        };
        let mut foot = [0; 4];
        layout.read(&cold, layout.len() - 4, &mut foot);
        assert_eq!(&foot, &whole[whole.len() - 4..]);
    }
}
