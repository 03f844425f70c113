//! How many bytes of each 512-byte sector are random, for a given compress ratio.
//!
//! A sector of `r` random bytes and `512 - r` filler bytes compresses to about `r` bytes
//! plus the compressor's cost for the filler match and its framing. That cost differs by
//! compressor (zstd codes a repeated match in about two bytes, lz4 spends a token, an offset
//! and length bytes, deflate on small blocks pays fixed Huffman codes), so `r` is
//! `512 / c - k(c)` with `k` read from a table measured with zstd -1/-3, lz4 and deflate -6
//! on whole streams and on 4 KiB and 128 KiB blocks, and chosen to centre them on `c`.
//!
//! The share is kept in 16.16 fixed point and dithered across sectors, so fractional
//! ratios are exact on average and every host computes the same integers.

/// Bytes in a sector: the granularity at which random and filler bytes are mixed.
pub const SECTOR: usize = 512;

/// Bytes of the per-sector tag used when few bytes of a sector are random.
pub const TAG_BYTES: usize = 6;

/// Fewest random bytes a sector carries, tag included.
pub const MIN_RANDOM: f64 = 6.0;

/// Below this many random bytes per sector, sectors carry a tag that makes them unique.
pub const TAG_BELOW: f64 = 16.0;

const FIXED_ONE: u64 = 1 << 16;

/// (compress ratio, bytes per sector withheld from the random share), measured.
const CALIBRATION: [(f64, f64); 11] = [
    (1.0, 0.0),
    (1.5, 6.2),
    (2.0, 6.0),
    (3.0, 6.75),
    (4.0, 6.9),
    (6.0, 5.85),
    (8.0, 5.3),
    (12.0, 3.0),
    (16.0, 2.7),
    (32.0, 2.9),
    (64.0, 2.0),
];

/// The per-sector split of random and filler bytes for one compress ratio.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Random bytes per sector, 16.16 fixed point.
    random_fixed: u64,
    tagged: bool,
}

impl Layout {
    /// The layout for compress ratio `compress` (1 to 64).
    pub fn new(compress: f64) -> Self {
        let random = random_share(compress);
        Layout {
            random_fixed: (random * FIXED_ONE as f64).round() as u64,
            tagged: random < TAG_BELOW,
        }
    }

    /// True when every byte is random (compress ratio 1).
    pub fn is_all_random(&self) -> bool {
        self.random_fixed == SECTOR as u64 * FIXED_ONE
    }

    /// Random bytes in sectors `[0, sector)` of a unit.
    #[inline]
    pub fn random_before(&self, sector: u64) -> usize {
        ((sector * self.random_fixed) >> 16) as usize
    }

    /// Random bytes in sector `sector` of a unit.
    #[inline(always)]
    pub fn random_in(&self, sector: u64) -> usize {
        self.random_before(sector + 1) - self.random_before(sector)
    }

    /// The tag of a sector, if this layout uses tags.
    ///
    /// `number` identifies (content id, sector); the tag is a keyed bijection of its low 48
    /// bits, so distinct sectors of one stream get distinct tags up to 2^48 sectors.
    #[inline]
    pub fn tag(&self, key: u64, number: u64) -> Option<[u8; TAG_BYTES]> {
        if !self.tagged {
            return None;
        }
        const MASK: u64 = (1 << 48) - 1;
        let mut x = (number ^ key) & MASK;
        x = (x ^ (x >> 23)).wrapping_mul(0x9e37_79b9_7f4b) & MASK;
        x = (x ^ (x >> 21)).wrapping_mul(0xbf58_476d_1ce5) & MASK;
        x ^= x >> 24;
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&x.to_le_bytes()[..TAG_BYTES]);
        Some(tag)
    }
}

/// Random bytes per sector for compress ratio `compress`, before fixed-point rounding.
///
/// Only `+ - * /` on f64 are used, which IEEE 754 rounds the same way on every host.
pub fn random_share(compress: f64) -> f64 {
    if compress <= 1.0 {
        return SECTOR as f64;
    }
    let withheld = interpolate(compress);
    (SECTOR as f64 / compress - withheld).clamp(MIN_RANDOM, SECTOR as f64)
}

fn interpolate(compress: f64) -> f64 {
    let last = CALIBRATION[CALIBRATION.len() - 1];
    if compress >= last.0 {
        return last.1;
    }
    let upper = CALIBRATION
        .iter()
        .position(|&(c, _)| c > compress)
        .unwrap_or(1)
        .max(1);
    let (c0, k0) = CALIBRATION[upper - 1];
    let (c1, k1) = CALIBRATION[upper];
    k0 + (k1 - k0) * (compress - c0) / (c1 - c0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_one_is_all_random() {
        assert!(Layout::new(1.0).is_all_random());
        assert!(!Layout::new(1.01).is_all_random());
    }

    #[test]
    fn random_share_falls_as_ratio_rises() {
        let mut last = f64::INFINITY;
        for step in 0..=630 {
            let c = 1.0 + step as f64 / 10.0;
            let share = random_share(c);
            assert!(share <= last, "share rises at {c}");
            assert!(share >= MIN_RANDOM);
            last = share;
        }
    }

    #[test]
    fn dithering_keeps_the_average() {
        let layout = Layout::new(3.0);
        let total = layout.random_before(8192);
        let want = random_share(3.0) * 8192.0;
        assert!((total as f64 - want).abs() < 1.0);
        for s in 0..8192 {
            let r = layout.random_before(s + 1) - layout.random_before(s);
            assert!((163..=166).contains(&r), "sector {s}: {r}");
        }
    }

    #[test]
    fn tags_are_distinct() {
        let layout = Layout::new(64.0);
        let tags: std::collections::HashSet<_> = (0..100_000u64)
            .map(|n| layout.tag(99, n).unwrap())
            .collect();
        assert_eq!(tags.len(), 100_000);
        assert!(Layout::new(2.0).tag(99, 1).is_none());
    }
}
