//! Eight interleaved xoshiro256++ generators, laid out so the compiler vectorises them.
//!
//! Lane `l` is exactly `rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(lane_seed(key, l))`;
//! the output stream is the lanes' words interleaved (word `i` comes from lane `i % 8`),
//! written little-endian. The tests check this byte for byte against rand_xoshiro.
//!
//! The state is kept as four arrays of eight words (structure of arrays) so one step is a
//! handful of 512-bit or 256-bit vector operations. [`fill`] picks the widest instruction
//! set the CPU offers at run time; every variant runs the same code and yields the same bytes.

/// Number of interleaved generators.
pub const LANES: usize = 8;

/// Bytes produced by one step of all lanes.
pub const STEP_BYTES: usize = LANES * 8;

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The SplitMix64 output function: a bijective 64-bit mixer.
#[inline(always)]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of lane `lane` for a generator keyed by `key`.
///
/// Lane seeds pass through [`mix64`] so that the SplitMix64 sequences that expand them
/// into states do not overlap, as they would for seeds `key`, `key + GOLDEN`, ...
#[inline(always)]
pub fn lane_seed(key: u64, lane: usize) -> u64 {
    mix64(key ^ (lane as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03))
}

/// Eight xoshiro256++ states, one per lane, as structure of arrays.
#[derive(Clone, Debug)]
pub struct Lanes {
    s: [[u64; LANES]; 4],
}

impl Lanes {
    /// Seeds all lanes from `key`, each as `seed_from_u64(lane_seed(key, lane))` would.
    #[inline(always)]
    pub fn new(key: u64) -> Self {
        let mut s = [[0u64; LANES]; 4];
        for lane in 0..LANES {
            // SplitMix64 expansion of a u64 seed into four state words.
            let mut state = lane_seed(key, lane);
            for word in s.iter_mut() {
                state = state.wrapping_add(GOLDEN);
                word[lane] = mix64(state);
            }
        }
        Lanes { s }
    }

    /// Advances every lane once and returns the eight outputs.
    #[inline(always)]
    pub fn step(&mut self) -> [u64; LANES] {
        let [s0, s1, s2, s3] = &mut self.s;
        let mut out = [0u64; LANES];
        for l in 0..LANES {
            out[l] = s0[l]
                .wrapping_add(s3[l])
                .rotate_left(23)
                .wrapping_add(s0[l]);
            let t = s1[l] << 17;
            s2[l] ^= s0[l];
            s3[l] ^= s1[l];
            s1[l] ^= s2[l];
            s0[l] ^= s3[l];
            s2[l] ^= t;
            s3[l] = s3[l].rotate_left(45);
        }
        out
    }
}

/// Fills `out` with the first `out.len()` bytes of the stream keyed by `key`.
#[inline]
pub fn fill(key: u64, out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { fill_avx512(key, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { fill_avx2(key, out) };
        }
    }
    fill_portable(key, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn fill_avx512(key: u64, out: &mut [u8]) {
    fill_portable(key, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_avx2(key: u64, out: &mut [u8]) {
    fill_portable(key, out)
}

/// The single implementation all instruction-set variants compile.
#[inline(always)]
fn fill_portable(key: u64, out: &mut [u8]) {
    let mut lanes = Lanes::new(key);
    let mut blocks = out.chunks_exact_mut(STEP_BYTES);
    for block in &mut blocks {
        let words = lanes.step();
        for (dst, word) in block.chunks_exact_mut(8).zip(words) {
            dst.copy_from_slice(&word.to_le_bytes());
        }
    }
    let tail = blocks.into_remainder();
    if !tail.is_empty() {
        let words = lanes.step();
        let mut bytes = [0u8; STEP_BYTES];
        for (dst, word) in bytes.chunks_exact_mut(8).zip(words) {
            dst.copy_from_slice(&word.to_le_bytes());
        }
        tail.copy_from_slice(&bytes[..tail.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_xoshiro::rand_core::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// The reference: eight rand_xoshiro generators, outputs interleaved.
    fn reference(key: u64, len: usize) -> Vec<u8> {
        let mut rngs: Vec<_> = (0..LANES)
            .map(|l| Xoshiro256PlusPlus::seed_from_u64(lane_seed(key, l)))
            .collect();
        let mut out = Vec::with_capacity(len + STEP_BYTES);
        while out.len() < len {
            for rng in rngs.iter_mut() {
                out.extend_from_slice(&rng.next_u64().to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    #[test]
    fn matches_rand_xoshiro_byte_for_byte() {
        for key in [0, 1, 42, u64::MAX, 0x0123_4567_89ab_cdef] {
            for len in [0, 1, 7, 8, 63, 64, 65, 512, 4096, 10_000] {
                let mut got = vec![0u8; len];
                fill(key, &mut got);
                assert_eq!(got, reference(key, len), "key {key} len {len}");
                let mut portable = vec![0u8; len];
                fill_portable(key, &mut portable);
                assert_eq!(portable, got);
            }
        }
    }

    #[test]
    fn prefixes_agree() {
        let mut long = vec![0u8; 4096];
        fill(9, &mut long);
        for len in [1, 100, 1000, 4095] {
            let mut short = vec![0u8; len];
            fill(9, &mut short);
            assert_eq!(short[..], long[..len]);
        }
    }

    #[test]
    fn lane_seeds_are_distinct() {
        let seeds: std::collections::HashSet<_> = (0..1000u64)
            .flat_map(|k| (0..LANES).map(move |l| lane_seed(k, l)))
            .collect();
        assert_eq!(seeds.len(), 8000);
    }
}
