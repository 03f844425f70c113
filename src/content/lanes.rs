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

/// How far ahead of each 64-byte store the AVX-512 paths ask for the destination line, in
/// bytes, on CPUs where that helps (see [`prefetch_ahead`]). A buffer larger than L2 lives in
/// L3, where every store first reads its line for ownership; on Intel, prefetching the line
/// for writing this far ahead overlaps those reads with generation (a 32 MiB fill on the
/// project's Xeon VM: 23 GB/s without, 28 with). In L2 the prefetches only cost issue slots
/// (about 8%), so callers turn them off for buffers that fit there, by passing an `ahead` of
/// zero.
pub const PREFETCH_AHEAD: usize = 1024;

/// The prefetch distance this CPU gets: [`PREFETCH_AHEAD`] on Intel, none elsewhere. On the
/// project's AMD EPYC (Zen 4) VM the same prefetches slowed one-thread 32 MiB fills from
/// 23-26 GB/s to 17-22 (compress 2: 25-26 to 15-21) in rounds alternating distances of 0 to
/// 4096 bytes, 0 best in every round (docs/BENCHMARKS.md).
pub fn prefetch_ahead() -> usize {
    static AHEAD: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *AHEAD.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let id = std::arch::x86_64::__cpuid(0);
            let vendor = [id.ebx, id.edx, id.ecx].map(u32::to_le_bytes).concat();
            if vendor == b"GenuineIntel" {
                return PREFETCH_AHEAD;
            }
        }
        0
    })
}

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
        self.fill_ahead(out, 0)
    }

    /// Like [`fill`](Self::fill); `ahead` is how many bytes after `out` the caller writes
    /// next, which the generator may prefetch for writing (see [`PREFETCH_AHEAD`]); zero
    /// turns prefetching off.
    #[inline]
    pub fn fill_ahead(&mut self, out: &mut [u8], ahead: usize) {
        let whole = out.len() / STEP_BYTES;
        let (head, tail) = out.split_at_mut(whole * STEP_BYTES);
        let run = Run {
            at: 0,
            steps: whole,
        };
        self.fill_runs(head, &[run], &[], tail.len() + ahead);
        if !tail.is_empty() {
            let mut bytes = [0u8; STEP_BYTES];
            self.fill_runs(&mut bytes, &[Run { at: 0, steps: 1 }], &[], 0);
            tail.copy_from_slice(&bytes[..tail.len()]);
        }
    }

    /// Writes the next steps' output into `out`, run after run: `run.steps` whole steps at
    /// `out[run.at..]`; then sets the bytes of each [`Splat`]. One call serves a whole
    /// chunk, so the state stays in registers and the stores are as wide as the CPU allows.
    /// `ahead` is how many bytes after `out` the caller writes next (a prefetch hint; zero
    /// turns prefetching off).
    ///
    /// Panics if a run or a splat reaches past the end of `out`.
    #[inline]
    pub fn fill_runs(&mut self, out: &mut [u8], runs: &[Run], splats: &[Splat], ahead: usize) {
        match isa() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: isa() reports Avx512 only when the CPU has every feature it enables.
            Isa::Avx512 => unsafe { runs_avx512(self, out, runs, splats, ahead) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: isa() reports Avx2 only when the CPU has AVX2.
            Isa::Avx2 => unsafe { runs_avx2(self, out, runs, splats) },
            Isa::Portable => {
                let _ = ahead;
                self.runs_inline(out, runs, splats)
            }
        }
    }

    /// The portable implementation; the state is copied into a local so that it can live in
    /// registers for the whole loop.
    #[inline(always)]
    fn runs_inline(&mut self, out: &mut [u8], runs: &[Run], splats: &[Splat]) {
        let mut lanes = self.clone();
        for run in runs {
            for block in run_bytes(out, run) {
                let words = lanes.step();
                for (dst, word) in block.chunks_exact_mut(8).zip(words) {
                    dst.copy_from_slice(&word.to_le_bytes());
                }
            }
        }
        *self = lanes;
        apply_splats(out, splats);
    }
}

/// `len` bytes at byte `at` of a buffer, all set to `byte`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Splat {
    /// Byte offset of the first byte.
    pub at: usize,
    /// Number of bytes.
    pub len: usize,
    /// The value written.
    pub byte: u8,
}

/// One 512-byte sector to compose: `random` bytes of generator output at its start
/// (`random_first`) or end, every other byte `filler`.
///
/// The sector takes the next `ceil(random / 64)` steps, laid from its start or ending at its
/// end, and keeps the `random` bytes at that side: the same bytes as a [`Run`] of those
/// steps followed by a [`Splat`] of the filler over the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SectorPlan {
    /// Random bytes in the sector, 1 to 511.
    pub random: usize,
    /// Whether the random bytes come first.
    pub random_first: bool,
    /// The filler byte.
    pub filler: u8,
}

impl Lanes {
    /// Writes the whole sectors of `out` (`out.len() / 512` of them; `plan(j)` describes
    /// sector `j`), each 64-byte line composed in a register and stored once, in address
    /// order. The plans are computed as the sectors are written, not kept in memory: once
    /// the buffer is larger than L2 every store counts, scalar ones included. `ahead` is how
    /// many bytes after `out` the caller writes next (a prefetch hint; zero turns
    /// prefetching off). Returns false, writing nothing, when this CPU has no such path; the
    /// caller then uses runs and splats.
    #[inline]
    pub fn compose_sectors(
        &mut self,
        out: &mut [u8],
        plan: impl Fn(usize) -> SectorPlan,
        ahead: usize,
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        if isa() == Isa::Avx512 {
            // SAFETY: isa() reports Avx512 only when the CPU has every feature it enables.
            unsafe { compose_avx512(self, out, plan, ahead) };
            return true;
        }
        let _ = (out, plan, ahead);
        false
    }
}

/// The bits of a 64-bit lane mask for bytes `[from, to)` of a line, both clamped to 64.
#[inline(always)]
fn byte_mask(from: usize, to: usize) -> u64 {
    let below = |n: usize| if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
    below(to) & !below(from)
}

/// Writes every splat with whole 64-byte stores, the last one of each overlapping.
#[inline(always)]
fn apply_splats(out: &mut [u8], splats: &[Splat]) {
    for splat in splats {
        let span = &mut out[splat.at..splat.at + splat.len];
        let wide = [splat.byte; STEP_BYTES];
        if span.len() < STEP_BYTES {
            span.fill(splat.byte);
            continue;
        }
        let len = span.len();
        for block in span.chunks_exact_mut(STEP_BYTES) {
            block.copy_from_slice(&wide);
        }
        span[len - STEP_BYTES..].copy_from_slice(&wide);
    }
}

/// `steps` whole generator steps written at byte `at` of a buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Run {
    /// Byte offset of the first step.
    pub at: usize,
    /// Number of 64-byte steps.
    pub steps: usize,
}

/// The bytes a run covers, a whole number of 64-byte blocks.
#[inline(always)]
fn run_bytes<'a>(out: &'a mut [u8], run: &Run) -> std::slice::ChunksExactMut<'a, u8> {
    out[run.at..run.at + run.steps * STEP_BYTES].chunks_exact_mut(STEP_BYTES)
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
            if has!("avx512f") && has!("avx512vl") && has!("avx512dq") && has!("avx512bw") {
                return Isa::Avx512;
            }
            if has!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    })
}

/// Explicit AVX-512 seeding, one lane per 64-bit element: the lane seeds and then each
/// state word are one vector [`mix64`] each. Chunks are 4 KiB, so this runs every 4 KiB;
/// left to the compiler, the lane seeds were scalar.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw")]
unsafe fn new_avx512(key: u64) -> Lanes {
    use std::arch::x86_64::*;
    #[inline(always)]
    fn mix(z: __m512i) -> __m512i {
        // SAFETY: only called from the AVX-512 function below, where its features are on.
        unsafe {
            let z = _mm512_xor_si512(z, _mm512_srli_epi64::<30>(z));
            let z = _mm512_mullo_epi64(z, _mm512_set1_epi64(0xbf58_476d_1ce4_e5b9_u64 as i64));
            let z = _mm512_xor_si512(z, _mm512_srli_epi64::<27>(z));
            let z = _mm512_mullo_epi64(z, _mm512_set1_epi64(0x94d0_49bb_1331_11eb_u64 as i64));
            _mm512_xor_si512(z, _mm512_srli_epi64::<31>(z))
        }
    }
    let lane_keys: [u64; LANES] =
        std::array::from_fn(|l| (l as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03));
    // SAFETY: `lane_keys` is eight u64, exactly one 64-byte vector.
    let lane_keys = unsafe { _mm512_loadu_si512(lane_keys.as_ptr() as *const __m512i) };
    let seeds = mix(_mm512_xor_si512(_mm512_set1_epi64(key as i64), lane_keys));
    let mut lanes = Lanes { s: [[0; LANES]; 4] };
    for (w, words) in lanes.s.iter_mut().enumerate() {
        let step = _mm512_set1_epi64(GOLDEN.wrapping_mul(w as u64 + 1) as i64);
        let word = mix(_mm512_add_epi64(seeds, step));
        // SAFETY: `words` is eight u64, exactly one 64-byte vector.
        unsafe { _mm512_storeu_si512(words.as_mut_ptr() as *mut __m512i, word) };
    }
    lanes
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn new_avx2(key: u64) -> Lanes {
    Lanes::new_inline(key)
}

/// Explicit AVX-512 steps: the compiler does not reliably vectorise the portable loop when
/// the state comes from memory, so the hot loop is written with intrinsics.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw")]
unsafe fn runs_avx512(
    lanes: &mut Lanes,
    out: &mut [u8],
    runs: &[Run],
    splats: &[Splat],
    ahead: usize,
) {
    use std::arch::x86_64::*;
    let mut state = Avx512State::load(lanes);
    let prefetch = Prefetch::new(out, ahead);
    for run in runs {
        for block in run_bytes(out, run) {
            prefetch.line_after(block.as_ptr());
            let word = state.step();
            // SAFETY: `block` is exactly 64 writable bytes; the store is unaligned.
            unsafe { _mm512_storeu_si512(block.as_mut_ptr() as *mut __m512i, word) };
        }
    }
    state.store(lanes);
    apply_splats(out, splats);
}

/// Prefetches destination lines for writing, [`prefetch_ahead`] bytes past each store but
/// never past the bytes the caller is about to write; off when there are none after `out`
/// or the CPU gets no prefetches.
#[cfg(target_arch = "x86_64")]
struct Prefetch {
    last: Option<*const u8>,
    distance: usize,
}

#[cfg(target_arch = "x86_64")]
impl Prefetch {
    /// For stores into `out`, followed by `ahead` more bytes the caller writes next.
    #[inline(always)]
    fn new(out: &[u8], ahead: usize) -> Prefetch {
        let distance = prefetch_ahead();
        let last = out.as_ptr().wrapping_add(out.len() + ahead).wrapping_sub(1);
        Prefetch {
            last: (ahead > 0 && distance > 0).then_some(last),
            distance,
        }
    }

    /// Asks for the line `distance` bytes after `at`, or the last one allowed.
    #[inline(always)]
    fn line_after(&self, at: *const u8) {
        use std::arch::x86_64::*;
        let Some(last) = self.last else { return };
        let line = at.wrapping_add(self.distance).min(last);
        // SAFETY: a prefetch is a hint that never faults and does not access memory as far
        // as the program can observe; `line` is within or one step past the destination.
        unsafe { _mm_prefetch::<_MM_HINT_ET0>(line as *const i8) };
    }
}

/// The eight lanes' state in four AVX-512 registers.
#[cfg(target_arch = "x86_64")]
struct Avx512State([std::arch::x86_64::__m512i; 4]);

#[cfg(target_arch = "x86_64")]
impl Avx512State {
    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw")]
    #[inline]
    fn load(lanes: &Lanes) -> Avx512State {
        use std::arch::x86_64::*;
        let ptr = lanes.s.as_ptr() as *const __m512i;
        // SAFETY: `lanes.s` is four arrays of eight u64, exactly four 64-byte vectors.
        Avx512State(std::array::from_fn(|w| unsafe {
            _mm512_loadu_si512(ptr.add(w))
        }))
    }

    /// One xoshiro256++ step of all eight lanes.
    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw")]
    #[inline]
    fn step(&mut self) -> std::arch::x86_64::__m512i {
        use std::arch::x86_64::*;
        let [s0, s1, s2, s3] = &mut self.0;
        let word = _mm512_add_epi64(_mm512_rol_epi64::<23>(_mm512_add_epi64(*s0, *s3)), *s0);
        let t = _mm512_slli_epi64::<17>(*s1);
        *s2 = _mm512_xor_si512(*s2, *s0);
        *s3 = _mm512_xor_si512(*s3, *s1);
        *s1 = _mm512_xor_si512(*s1, *s2);
        *s0 = _mm512_xor_si512(*s0, *s3);
        *s2 = _mm512_xor_si512(*s2, t);
        *s3 = _mm512_rol_epi64::<45>(*s3);
        word
    }

    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw")]
    #[inline]
    fn store(self, lanes: &mut Lanes) {
        use std::arch::x86_64::*;
        let ptr = lanes.s.as_mut_ptr() as *mut __m512i;
        for (w, v) in self.0.into_iter().enumerate() {
            // SAFETY: as for the loads in `load`.
            unsafe { _mm512_storeu_si512(ptr.add(w), v) };
        }
    }
}

/// Composes sectors line by line: each line is a step's output, the filler, or the two
/// blended by a byte mask, and is stored once. Mixed sectors written as runs plus splats
/// store most lines twice and out of order, which halves the speed once the buffer is
/// larger than L2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw")]
unsafe fn compose_avx512(
    lanes: &mut Lanes,
    out: &mut [u8],
    plan: impl Fn(usize) -> SectorPlan,
    ahead: usize,
) {
    use std::arch::x86_64::*;
    const LINES: usize = 512 / STEP_BYTES;
    let mut state = Avx512State::load(lanes);
    let prefetch = Prefetch::new(out, ahead);
    for (j, sector) in out.chunks_exact_mut(512).enumerate() {
        let plan = plan(j);
        let filler = _mm512_set1_epi8(plan.filler as i8);
        // 1 to 8 steps; the random bytes fill every step but one at the edge of the random
        // part, which is blended with the filler.
        let steps = plan.random.div_ceil(STEP_BYTES);
        let base = sector.as_mut_ptr() as *mut __m512i;
        let put = |k: usize, value: __m512i| {
            // SAFETY: `k` < LINES, so line `k` is 64 writable bytes of `sector`; the store
            // is unaligned.
            unsafe {
                let line = base.add(k);
                prefetch.line_after(line as *const u8);
                _mm512_storeu_si512(line, value)
            }
        };
        if plan.random_first {
            // Lines 0..edge random, line `edge` keeps its first bytes, the rest filler.
            let edge = steps - 1;
            for k in 0..edge {
                put(k, state.step());
            }
            let keep = byte_mask(0, plan.random - edge * STEP_BYTES);
            put(edge, _mm512_mask_blend_epi8(keep, filler, state.step()));
            for k in steps..LINES {
                put(k, filler);
            }
        } else {
            // Filler, then line `edge` keeps its last bytes, the lines after it random.
            let edge = LINES - steps;
            for k in 0..edge {
                put(k, filler);
            }
            let keep = byte_mask(steps * STEP_BYTES - plan.random, STEP_BYTES);
            put(edge, _mm512_mask_blend_epi8(keep, filler, state.step()));
            for k in edge + 1..LINES {
                put(k, state.step());
            }
        }
    }
    state.store(lanes);
}

/// Explicit AVX2 steps: each state word is two 256-bit vectors (lanes 0-3 and 4-7).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn runs_avx2(lanes: &mut Lanes, out: &mut [u8], runs: &[Run], splats: &[Splat]) {
    use std::arch::x86_64::*;
    #[inline(always)]
    fn rotl<const L: i32, const R: i32>(x: __m256i) -> __m256i {
        // SAFETY: only called from the AVX2 function below, where AVX2 is enabled.
        unsafe { _mm256_or_si256(_mm256_slli_epi64::<L>(x), _mm256_srli_epi64::<R>(x)) }
    }
    // halves[h] holds the state words of lanes 4h..4h+4: [s0, s1, s2, s3].
    let ptr = lanes.s.as_mut_ptr() as *mut __m256i;
    let mut halves = [[_mm256_setzero_si256(); 4]; 2];
    for (h, half) in halves.iter_mut().enumerate() {
        for (w, v) in half.iter_mut().enumerate() {
            // SAFETY: `lanes.s` holds eight 32-byte halves; index w*2+h is in bounds.
            *v = unsafe { _mm256_loadu_si256(ptr.add(w * 2 + h)) };
        }
    }
    for run in runs {
        for block in run_bytes(out, run) {
            for (h, half) in halves.iter_mut().enumerate() {
                let [s0, s1, s2, s3] = *half;
                let word = _mm256_add_epi64(rotl::<23, 41>(_mm256_add_epi64(s0, s3)), s0);
                let t = _mm256_slli_epi64::<17>(s1);
                let s2 = _mm256_xor_si256(s2, s0);
                let s3 = _mm256_xor_si256(s3, s1);
                let s1 = _mm256_xor_si256(s1, s2);
                let s0 = _mm256_xor_si256(s0, s3);
                let s2 = _mm256_xor_si256(s2, t);
                *half = [s0, s1, s2, rotl::<45, 19>(s3)];
                // SAFETY: `block` is exactly 64 writable bytes; half h is bytes 32h..32h+32.
                unsafe {
                    _mm256_storeu_si256(block.as_mut_ptr().add(32 * h) as *mut __m256i, word)
                };
            }
        }
    }
    for (h, half) in halves.iter().enumerate() {
        for (w, v) in half.iter().enumerate() {
            // SAFETY: as for the loads above.
            unsafe { _mm256_storeu_si256(ptr.add(w * 2 + h), *v) };
        }
    }
    apply_splats(out, splats);
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
                let whole = len / STEP_BYTES * STEP_BYTES;
                let runs = [Run {
                    at: 0,
                    steps: len / STEP_BYTES,
                }];
                let mut portable = vec![0u8; whole];
                Lanes::new_inline(key).runs_inline(&mut portable, &runs, &[]);
                assert_eq!(portable, got[..whole]);
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    let mut avx2 = vec![0u8; whole];
                    // SAFETY: AVX2 support checked just above.
                    unsafe { runs_avx2(&mut Lanes::new_inline(key), &mut avx2, &runs, &[]) };
                    assert_eq!(avx2, got[..whole]);
                }
            }
        }
    }

    #[test]
    fn seeding_agrees_with_the_portable_code() {
        for key in (0..1000u64).flat_map(|i| [i, !i, mix64(i)]) {
            assert_eq!(Lanes::new(key).s, Lanes::new_inline(key).s, "key {key}");
        }
    }

    #[test]
    fn runs_continue_one_stream() {
        let mut whole = vec![0u8; 640];
        fill(5, &mut whole);
        let mut gapped = vec![0u8; 1000];
        let runs = [
            Run { at: 10, steps: 3 },
            Run { at: 300, steps: 0 },
            Run { at: 400, steps: 7 },
        ];
        let splats = [
            Splat {
                at: 202,
                len: 98,
                byte: 7,
            },
            Splat {
                at: 848,
                len: 152,
                byte: 9,
            },
        ];
        Lanes::new(5).fill_runs(&mut gapped, &runs, &splats, 0);
        assert_eq!(gapped[10..202], whole[..192]);
        assert_eq!(gapped[400..848], whole[192..]);
        assert!(gapped[..10]
            .iter()
            .chain(&gapped[300..400])
            .all(|&b| b == 0));
        assert!(gapped[202..300].iter().all(|&b| b == 7));
        assert!(gapped[848..].iter().all(|&b| b == 9));
    }

    #[test]
    fn composed_sectors_equal_runs_and_splats() {
        let mut plans = Vec::new();
        for (i, random) in [1usize, 6, 63, 64, 65, 250, 300, 448, 449, 511]
            .iter()
            .enumerate()
        {
            for random_first in [true, false] {
                let filler = (i * 37 + 1) as u8;
                plans.push(SectorPlan {
                    random: *random,
                    random_first,
                    filler,
                });
            }
        }
        let mut runs = Vec::new();
        let mut splats = Vec::new();
        for (j, p) in plans.iter().enumerate() {
            let (base, steps) = (j * 512, p.random.div_ceil(STEP_BYTES));
            let (at, fill_at) = if p.random_first {
                (base, base + p.random)
            } else {
                (base + 512 - steps * STEP_BYTES, base)
            };
            runs.push(Run { at, steps });
            splats.push(Splat {
                at: fill_at,
                len: 512 - p.random,
                byte: p.filler,
            });
        }
        let mut want = vec![0u8; plans.len() * 512];
        Lanes::new(11).fill_runs(&mut want, &runs, &splats, 0);
        let mut got = vec![0u8; want.len()];
        let mut lanes = Lanes::new(11);
        if lanes.compose_sectors(&mut got, |j| plans[j], 0) {
            assert_eq!(got, want);
            let (mut a, mut b) = (lanes, Lanes::new(11));
            b.fill_runs(&mut want, &runs, &splats, 0);
            assert_eq!(
                a.step(),
                b.step(),
                "both leave the generator at the same step"
            );
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
