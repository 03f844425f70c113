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
    #[inline]
    pub fn new(key: u64) -> Self {
        match isa() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: isa() reports Avx512 only when the CPU has every feature it enables.
            Isa::Avx512 => unsafe { new_avx512(key) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: isa() reports Avx2 only when the CPU has AVX2.
            Isa::Avx2 => unsafe { new_avx2(key) },
            Isa::Portable => Self::new_inline(key),
        }
    }

    #[inline(always)]
    fn new_inline(key: u64) -> Self {
        let mut seeds = [0u64; LANES];
        for (lane, seed) in seeds.iter_mut().enumerate() {
            *seed = lane_seed(key, lane);
        }
        // SplitMix64 expansion of each lane seed into four state words; word w is
        // mix64(seed + (w + 1) * GOLDEN), so the four words are independent and vectorise.
        let mut s = [[0u64; LANES]; 4];
        for (w, words) in s.iter_mut().enumerate() {
            let step = GOLDEN.wrapping_mul(w as u64 + 1);
            for (word, seed) in words.iter_mut().zip(seeds) {
                *word = mix64(seed.wrapping_add(step));
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

    /// Advances every lane `steps` times, discarding the output.
    #[inline(always)]
    pub fn skip(&mut self, steps: usize) {
        for _ in 0..steps {
            std::hint::black_box(self.step());
        }
    }

    /// Writes the output of the next `ceil(out.len() / 64)` steps; the unused bytes of the
    /// last step are dropped.
    #[inline]
    pub fn fill(&mut self, out: &mut [u8]) {
        match isa() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: isa() reports Avx512 only when the CPU has every feature it enables.
            Isa::Avx512 => unsafe { fill_avx512(self, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: isa() reports Avx2 only when the CPU has AVX2.
            Isa::Avx2 => unsafe { fill_avx2(self, out) },
            Isa::Portable => self.fill_inline(out),
        }
    }

    /// The single implementation every instruction-set variant compiles. The state is copied
    /// into a local so that it lives in vector registers for the whole loop.
    #[inline(always)]
    fn fill_inline(&mut self, out: &mut [u8]) {
        let mut lanes = self.clone();
        lanes.fill_local(out);
        *self = lanes;
    }

    #[inline(always)]
    fn fill_local(&mut self, out: &mut [u8]) {
        let mut blocks = out.chunks_exact_mut(STEP_BYTES);
        for block in &mut blocks {
            let words = self.step();
            for (dst, word) in block.chunks_exact_mut(8).zip(words) {
                dst.copy_from_slice(&word.to_le_bytes());
            }
        }
        let tail = blocks.into_remainder();
        if !tail.is_empty() {
            let words = self.step();
            let mut bytes = [0u8; STEP_BYTES];
            for (dst, word) in bytes.chunks_exact_mut(8).zip(words) {
                dst.copy_from_slice(&word.to_le_bytes());
            }
            tail.copy_from_slice(&bytes[..tail.len()]);
        }
    }
}

/// Fills `out` with the first `out.len()` bytes of the stream keyed by `key`.
pub fn fill(key: u64, out: &mut [u8]) {
    Lanes::new(key).fill(out)
}

/// The vector instruction sets the generator is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

/// The widest instruction set this CPU supports, detected once.
#[inline(always)]
fn isa() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512vl") && has!("avx512dq") {
                return Isa::Avx512;
            }
            if has!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq")]
unsafe fn new_avx512(key: u64) -> Lanes {
    Lanes::new_inline(key)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn new_avx2(key: u64) -> Lanes {
    Lanes::new_inline(key)
}

/// Explicit AVX-512 step: the compiler does not reliably vectorise the portable loop when
/// the state comes from memory, so the hot loop is written with intrinsics.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq")]
unsafe fn fill_avx512(lanes: &mut Lanes, out: &mut [u8]) {
    use std::arch::x86_64::*;
    let ptr = lanes.s.as_mut_ptr() as *mut __m512i;
    // SAFETY: `lanes.s` is four arrays of eight u64, exactly four 64-byte vectors.
    let (mut s0, mut s1, mut s2, mut s3) = unsafe {
        (
            _mm512_loadu_si512(ptr),
            _mm512_loadu_si512(ptr.add(1)),
            _mm512_loadu_si512(ptr.add(2)),
            _mm512_loadu_si512(ptr.add(3)),
        )
    };
    let mut step = || {
        let out = _mm512_add_epi64(_mm512_rol_epi64::<23>(_mm512_add_epi64(s0, s3)), s0);
        let t = _mm512_slli_epi64::<17>(s1);
        s2 = _mm512_xor_si512(s2, s0);
        s3 = _mm512_xor_si512(s3, s1);
        s1 = _mm512_xor_si512(s1, s2);
        s0 = _mm512_xor_si512(s0, s3);
        s2 = _mm512_xor_si512(s2, t);
        s3 = _mm512_rol_epi64::<45>(s3);
        out
    };
    let mut blocks = out.chunks_exact_mut(STEP_BYTES);
    for block in &mut blocks {
        // SAFETY: `block` is exactly 64 writable bytes; the store is unaligned.
        unsafe { _mm512_storeu_si512(block.as_mut_ptr() as *mut __m512i, step()) };
    }
    let tail = blocks.into_remainder();
    if !tail.is_empty() {
        let mut bytes = [0u8; STEP_BYTES];
        // SAFETY: `bytes` is exactly 64 writable bytes.
        unsafe { _mm512_storeu_si512(bytes.as_mut_ptr() as *mut __m512i, step()) };
        tail.copy_from_slice(&bytes[..tail.len()]);
    }
    // SAFETY: as for the loads above.
    unsafe {
        _mm512_storeu_si512(ptr, s0);
        _mm512_storeu_si512(ptr.add(1), s1);
        _mm512_storeu_si512(ptr.add(2), s2);
        _mm512_storeu_si512(ptr.add(3), s3);
    }
}

/// Explicit AVX2 step: each state word is two 256-bit vectors (lanes 0-3 and 4-7).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_avx2(lanes: &mut Lanes, out: &mut [u8]) {
    use std::arch::x86_64::*;
    #[inline(always)]
    fn rotl<const L: i32, const R: i32>(x: __m256i) -> __m256i {
        // SAFETY: only called from the AVX2 function below, where AVX2 is enabled.
        unsafe { _mm256_or_si256(_mm256_slli_epi64::<L>(x), _mm256_srli_epi64::<R>(x)) }
    }
    let ptr = lanes.s.as_mut_ptr() as *mut __m256i;
    let mut s = [[_mm256_setzero_si256(); 2]; 4];
    for (w, pair) in s.iter_mut().enumerate() {
        for (h, v) in pair.iter_mut().enumerate() {
            // SAFETY: `lanes.s` holds eight 32-byte halves; index w*2+h is in bounds.
            *v = unsafe { _mm256_loadu_si256(ptr.add(w * 2 + h)) };
        }
    }
    let mut step = || {
        let mut out = [_mm256_setzero_si256(); 2];
        for h in 0..2 {
            let [s0, s1, s2, s3] = [s[0][h], s[1][h], s[2][h], s[3][h]];
            out[h] = _mm256_add_epi64(rotl::<23, 41>(_mm256_add_epi64(s0, s3)), s0);
            let t = _mm256_slli_epi64::<17>(s1);
            let s2 = _mm256_xor_si256(s2, s0);
            let s3 = _mm256_xor_si256(s3, s1);
            let s1 = _mm256_xor_si256(s1, s2);
            let s0 = _mm256_xor_si256(s0, s3);
            let s2 = _mm256_xor_si256(s2, t);
            let s3 = rotl::<45, 19>(s3);
            [s[0][h], s[1][h], s[2][h], s[3][h]] = [s0, s1, s2, s3];
        }
        out
    };
    let mut write = |dst: &mut [u8]| {
        let [lo, hi] = step();
        // SAFETY: `dst` is exactly 64 writable bytes; the stores are unaligned.
        unsafe {
            _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, lo);
            _mm256_storeu_si256(dst.as_mut_ptr().add(32) as *mut __m256i, hi);
        }
    };
    let mut blocks = out.chunks_exact_mut(STEP_BYTES);
    for block in &mut blocks {
        write(block);
    }
    let tail = blocks.into_remainder();
    if !tail.is_empty() {
        let mut bytes = [0u8; STEP_BYTES];
        write(&mut bytes);
        tail.copy_from_slice(&bytes[..tail.len()]);
    }
    for (w, pair) in s.iter().enumerate() {
        for (h, v) in pair.iter().enumerate() {
            // SAFETY: as for the loads above.
            unsafe { _mm256_storeu_si256(ptr.add(w * 2 + h), *v) };
        }
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
                Lanes::new_inline(key).fill_inline(&mut portable);
                assert_eq!(portable, got);
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    let mut avx2 = vec![0u8; len];
                    // SAFETY: AVX2 support checked just above.
                    unsafe { fill_avx2(&mut Lanes::new_inline(key), &mut avx2) };
                    assert_eq!(avx2, got);
                }
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
