//! NumPy `.npy` files: a version 1.0 header as `numpy.save` writes it, then the raw array.
//!
//! The header is the magic `\x93NUMPY`, version `1.0`, a little-endian `u16` header length
//! and a Python dict literal naming `descr`, `fortran_order` and `shape`, padded with spaces
//! and a newline so that the data starts at a multiple of 64 bytes (128 for DLIO's shapes).
//! Like numpy 2, the padding leaves room for the first axis to grow to 21 digits. This module
//! also builds the headers of the members of an npz file ([`super::npz`]).

use std::borrow::Cow;

use super::{Framing, Located, Piece, Shape, Source};

/// The magic string and version 1.0 that start every header.
const MAGIC: &[u8; 8] = b"\x93NUMPY\x01\x00";

/// Data starts at a multiple of this many bytes.
const ARRAY_ALIGN: usize = 64;

/// Digits numpy reserves for the first axis so that a header can be rewritten in place.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// The header of an array of dtype `descr` (such as `|u1` or `<i8`) and shape `dims`.
pub fn header(descr: &str, dims: &[u64]) -> Vec<u8> {
    let shape = match dims {
        [one] => format!("({one},)"),
        _ => {
            let parts: Vec<String> = dims.iter().map(u64::to_string).collect();
            format!("({})", parts.join(", "))
        }
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let first_axis = dims.first().map_or(0, |d| d.to_string().len());
    dict.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(first_axis)));

    // numpy pads (dict + newline) so that magic + length + dict ends on the alignment.
    let hlen = dict.len() + 1;
    let pad = ARRAY_ALIGN - (MAGIC.len() + 2 + hlen) % ARRAY_ALIGN;
    dict.push_str(&" ".repeat(pad));
    dict.push('\n');
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// A `.npy` file of `uint8`, shape `(dim1, dim2, samples)`, as DLIO's npy generator writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Npy {
    header: Vec<u8>,
    payload: u64,
}

impl Npy {
    /// The file for `shape`.
    pub fn new(shape: Shape) -> Npy {
        Npy {
            header: header("|u1", &[shape.dim1, shape.dim2, shape.samples]),
            payload: shape.payload_len(),
        }
    }
}

impl Framing for Npy {
    fn len(&self) -> u64 {
        self.header.len() as u64 + self.payload
    }

    fn piece(&self, _src: &Source<'_>, pos: u64) -> Located<'_> {
        let h = self.header.len() as u64;
        if pos < h {
            let piece = Piece::Bytes(Cow::Borrowed(&self.header));
            return Located {
                start: 0,
                len: h,
                piece,
            };
        }
        Located {
            start: h,
            len: self.payload,
            piece: Piece::Payload(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_numpy_byte_for_byte() {
        // Written by numpy 2.4: np.save(f, np.zeros((3, 5, 2), np.uint8)).
        let h = header("|u1", &[3, 5, 2]);
        assert_eq!(h.len(), 128);
        let text = String::from_utf8_lossy(&h[10..]);
        assert!(text.starts_with("{'descr': '|u1', 'fortran_order': False, 'shape': (3, 5, 2), }"));
        assert!(text.ends_with(" \n"));
        assert_eq!(&h[8..10], &118u16.to_le_bytes());
    }

    #[test]
    fn headers_of_dlio_shapes_are_aligned() {
        for dims in [[12107u64, 20000, 1], [1, 1, 1], [338, 338, 1251]] {
            assert_eq!(header("|u1", &dims).len() % ARRAY_ALIGN, 0);
        }
        assert_eq!(header("<i8", &[2]).len(), 128);
    }
}
