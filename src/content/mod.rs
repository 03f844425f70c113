//! The content function: every byte of a stream from (spec, offset), in time linear in the
//! bytes asked for.
//!
//! A stream is cut into dedup units ([`ContentSpec::dedup_unit`], 4 KiB by default). The
//! [`DedupMap`] gives each unit a [`ContentId`]; a unit's bytes depend only on (seed, content
//! id, content version, compress ratio), so duplicates are byte-identical wherever they land.
//!
//! Inside a unit, each 4 KiB chunk (or the whole unit when smaller) has its own generator key,
//! so a read anywhere costs at most one chunk beyond its own length. Every 512-byte sector
//! mixes `r` random bytes with `512 - r` bytes of filler: a run of one non-zero byte.
//! Even sectors put the random bytes first, odd sectors last, so the filler of two
//! neighbouring sectors sits side by side and a compressor pays for one match per pair of
//! sectors. The number `r` comes from the compress ratio through a table measured with
//! zstd, lz4 and deflate (see [`layout`]). When `r` is small (high ratios) the first six
//! random bytes of a sector are a bijective tag of (content id, sector), so no two sectors of
//! distinct units can be equal.
//!
//! This module does not know about files; the tree maps (file, offset) to a stream offset.

pub mod dedup;
pub mod lanes;
pub mod layout;
pub mod team;
pub mod threads;

use std::sync::Mutex;

use rayon::prelude::*;

pub use dedup::{ContentId, DedupMap, UnitIndex};
use lanes::{Lanes, Run, SectorPlan, Splat, STEP_BYTES};
use layout::{Layout, SECTOR};

use crate::spec::{ContentSpec, SpecError};

/// Version of the content algorithm. Changing any byte the generator emits bumps it.
pub const CONTENT_VERSION: u32 = 1;

/// Largest chunk with its own generator key, in bytes.
pub const CHUNK: usize = 4096;

/// Bytes one task of [`Generator::fill_par`] fills.
pub const PAR_PIECE: usize = 1 << 20;

/// [`Generator::fill_par`] splits buffers at least this long; shorter ones are filled on the
/// calling thread, because waking a pool thread costs about as much as filling 1 MiB.
pub const PAR_FROM: usize = 4 * PAR_PIECE;

/// Fills longer than this prefetch destination lines for writing, on CPUs where that helps
/// (see [`lanes::prefetch_ahead`]). Shorter buffers are likely in L2 already (2 MiB per core
/// on the project's Xeon and EPYC VMs), where the prefetches cost about 8% and gain nothing.
pub const PREFETCH_FROM: usize = 2 << 20;

/// One pool thread's part of a parallel fill: its stream offset and bytes, taken once.
type Share<'a> = Mutex<Option<(u64, &'a mut [u8])>>;

/// A validated spec with everything precomputed for filling buffers.
#[derive(Debug, Clone)]
pub struct Generator {
    spec: ContentSpec,
    dedup: DedupMap,
    layout: Layout,
    unit: u64,
    chunk: usize,
    key: u64,
}

impl Generator {
    /// Validates `spec` and prepares a generator for it.
    pub fn new(spec: &ContentSpec) -> Result<Self, SpecError> {
        spec.validate()?;
        let unit = spec.dedup_unit;
        Ok(Generator {
            spec: *spec,
            dedup: DedupMap::new(spec.seed, spec.dedup, unit),
            layout: Layout::new(spec.compress),
            unit,
            chunk: (unit as usize).min(CHUNK),
            key: lanes::mix64(spec.seed ^ lanes::mix64(CONTENT_VERSION as u64)),
        })
    }

    /// The spec this generator was built from.
    pub fn spec(&self) -> &ContentSpec {
        &self.spec
    }

    /// The dedup map of this stream.
    pub fn dedup_map(&self) -> &DedupMap {
        &self.dedup
    }

    /// The content carried by the unit at `unit`.
    pub fn content_id(&self, unit: UnitIndex) -> ContentId {
        self.dedup.content_id(unit)
    }

    /// Fills `buf` with the stream's bytes from `offset` on, on the calling thread.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        self.fill_range(offset, buf, buf.len() > PREFETCH_FROM)
    }

    /// Fills `buf` like [`fill`](Self::fill), prefetching destination lines if `prefetch`.
    fn fill_range(&self, offset: u64, buf: &mut [u8], prefetch: bool) {
        let unit = self.unit;
        let end = offset + buf.len() as u64;
        let mut pos = offset;
        let units = std::iter::from_fn(move || {
            (pos < end).then(|| {
                let (index, within) = (UnitIndex(pos / unit), pos % unit);
                let take = (unit - within).min(end - pos);
                pos += take;
                (index, within, take as usize)
            })
        });
        let pieces = units.flat_map(|(index, within, take)| {
            self.unit_pieces(self.dedup.content_id(index), within, take)
        });
        self.fill_pieces(pieces, buf, prefetch);
    }

    /// The chunk pieces of bytes `[from, from + len)` of the unit holding content `id`.
    #[inline(always)]
    fn unit_pieces(&self, id: ContentId, from: u64, len: usize) -> impl Iterator<Item = Piece> {
        let chunk = self.chunk;
        let mut pos = from as usize;
        let end = pos + len;
        std::iter::from_fn(move || {
            (pos < end).then(|| {
                let (index, within) = (pos / chunk, pos % chunk);
                let len = (chunk - within).min(end - pos);
                pos += len;
                Piece {
                    id,
                    chunk: index as u64,
                    within,
                    len,
                }
            })
        })
    }

    /// Fills `out` with `pieces`, which cover it in order, prefetching destination lines if
    /// `prefetch`.
    ///
    /// Each chunk's generator is seeded before the previous chunk is written: seeding is a
    /// chain of multiplies (about 70 cycles) that the writing does not depend on, so the CPU
    /// overlaps the two instead of waiting on the chain every 4 KiB. The two generators live
    /// in one array and trade places by index, not by copying.
    #[inline(always)]
    fn fill_pieces(&self, mut pieces: impl Iterator<Item = Piece>, out: &mut [u8], prefetch: bool) {
        let Some(mut piece) = pieces.next() else {
            return;
        };
        let mut key = self.chunk_key(piece.id, piece.chunk);
        let first = Lanes::new(key);
        let mut lanes = [first.clone(), first];
        let mut rest = out;
        for turn in 0.. {
            let next = pieces.next();
            let next_key = next.map(|p| self.chunk_key(p.id, p.chunk));
            if let Some(next_key) = next_key {
                lanes[(turn + 1) % 2] = Lanes::new(next_key);
            }
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(piece.len);
            let ahead = if prefetch { tail.len() } else { 0 };
            self.fill_chunk(piece, key, &mut lanes[turn % 2], head, ahead);
            rest = tail;
            match (next, next_key) {
                (Some(p), Some(k)) => (piece, key) = (p, k),
                _ => break,
            }
        }
    }

    /// Fills `buf` like [`fill`](Self::fill), split across the current rayon pool.
    ///
    /// Pieces start at multiples of [`PAR_PIECE`] in the stream, and each piece is filled by
    /// the same pure function, so the bytes do not depend on the number of threads.
    pub fn fill_par(&self, offset: u64, buf: &mut [u8]) {
        if buf.len() < PAR_FROM {
            return self.fill(offset, buf);
        }
        let prefetch = buf.len() > PREFETCH_FROM;
        let lead = (PAR_PIECE - (offset % PAR_PIECE as u64) as usize) % PAR_PIECE;
        let (head, body) = buf.split_at_mut(lead);
        let body_offset = offset + lead as u64;
        // One contiguous share of whole pieces per thread: one hand-off per thread per fill,
        // not one per piece.
        let threads = rayon::current_num_threads().max(1);
        let share = body.len().div_ceil(PAR_PIECE).div_ceil(threads) * PAR_PIECE;
        rayon::join(
            || self.fill_range(offset, head, prefetch),
            || {
                body.par_chunks_mut(share.max(PAR_PIECE))
                    .enumerate()
                    .for_each(|(i, part)| {
                        self.fill_range(body_offset + (i * share) as u64, part, prefetch)
                    })
            },
        );
    }

    /// Fills `buf` like [`fill_par`](Self::fill_par) on `pool`, one contiguous share per
    /// pool thread; buffers shorter than [`PAR_FROM`] are filled on the calling thread
    /// without waking the pool.
    ///
    /// Every pool thread is handed its share at once (a broadcast), rather than one thread
    /// taking the fill and the others stealing from it: on a VM a sleeping thread takes
    /// tens of microseconds to wake, and a chain of wake-ups (caller, first thread, thief)
    /// cost as much as a share of a 8 MiB fill.
    pub fn fill_in(&self, pool: &rayon::ThreadPool, offset: u64, buf: &mut [u8]) {
        if buf.len() < PAR_FROM {
            return self.fill(offset, buf);
        }
        let fill_share = self.shares(offset, buf, pool.current_num_threads());
        pool.broadcast(|ctx| fill_share(ctx.index()));
    }

    /// Fills `buf` like [`fill_in`](Self::fill_in) on a [`team::FillTeam`]: the calling
    /// thread fills the first share and the team's helpers the others. Buffers shorter than
    /// [`PAR_FROM`] are filled on the calling thread alone.
    pub fn fill_team(&self, team: &team::FillTeam, offset: u64, buf: &mut [u8]) {
        if buf.len() < PAR_FROM || team.threads() == 1 {
            return self.fill(offset, buf);
        }
        team.run(&self.shares(offset, buf, team.threads()));
    }

    /// Cuts `buf` into `threads` contiguous shares of whole chunks and returns the function
    /// that fills share `i`; each share is filled at most once, whoever asks.
    fn shares<'a>(
        &'a self,
        offset: u64,
        buf: &'a mut [u8],
        threads: usize,
    ) -> impl Fn(usize) + Sync + 'a {
        let prefetch = buf.len() > PREFETCH_FROM;
        let share = buf
            .len()
            .div_ceil(threads.max(1))
            .next_multiple_of(self.chunk);
        let shares: Vec<Share<'a>> = buf
            .chunks_mut(share)
            .enumerate()
            .map(|(i, part)| Mutex::new(Some((offset + (i * share) as u64, part))))
            .collect();
        move |i| {
            let taken = shares.get(i).and_then(|s| s.lock().ok()?.take());
            if let Some((at, part)) = taken {
                self.fill_range(at, part, prefetch);
            }
        }
    }

    /// Fills `out` with bytes `[from, from + out.len())` of the unit holding content `id`.
    pub fn fill_unit(&self, id: ContentId, from: u64, out: &mut [u8]) {
        let pieces = self.unit_pieces(id, from, out.len());
        self.fill_pieces(pieces, out, false)
    }

    #[inline(always)]
    fn chunk_key(&self, id: ContentId, chunk: u64) -> u64 {
        lanes::mix64(lanes::mix64(self.key ^ id.0) ^ chunk)
    }

    /// Fills `out` with the bytes of `piece`, from the chunk's key and its freshly seeded
    /// generator `lanes`.
    ///
    /// The chunk's generator gives each sector, in order, `ceil(r / 64)` steps of output, of
    /// which the sector keeps `r` bytes as its random part (see [`SectorFill::run`]).
    /// `ahead` is how many bytes after `out` the caller writes next (a prefetch hint; zero
    /// turns prefetching off).
    #[inline]
    fn fill_chunk(&self, piece: Piece, key: u64, lanes: &mut Lanes, out: &mut [u8], ahead: usize) {
        let Piece {
            id, chunk, within, ..
        } = piece;
        let whole = within == 0 && out.len() == self.chunk;
        if whole && self.layout.is_all_random() {
            return lanes.fill_ahead(out, ahead);
        }

        let first_sector = chunk * (self.chunk / SECTOR) as u64;
        let filler = lanes::mix64(key ^ 0x3c6e_f372_fe94_f82b).to_le_bytes();
        let sector_fill = |j: usize| {
            let sector = first_sector + j as u64;
            SectorFill {
                random: self.layout.random_in(sector),
                tag: self
                    .layout
                    .tag(self.key, id.0 * (self.unit / SECTOR as u64) + sector),
                filler: filler[j % 8] | 1,
                random_first: sector.is_multiple_of(2),
            }
        };
        if whole {
            return fill_whole_chunk(lanes, out, ahead, sector_fill);
        }

        let touched = (within / SECTOR)..(within + out.len()).div_ceil(SECTOR);
        for j in 0..touched.start {
            lanes.skip(sector_fill(j).run(0).steps);
        }
        for j in touched {
            let lo = (j * SECTOR).max(within);
            let hi = ((j + 1) * SECTOR).min(within + out.len());
            let part = &mut out[lo - within..hi - within];
            sector_fill(j).write_part(lanes, lo - j * SECTOR, part);
        }
    }
}

/// Bytes `[within, within + len)` of chunk `chunk` of the unit holding content `id`.
#[derive(Debug, Clone, Copy)]
struct Piece {
    id: ContentId,
    chunk: u64,
    within: usize,
    len: usize,
}

/// Fills a whole chunk: one generator call writes every sector, composing each line once
/// where the CPU allows (else runs of steps, then splats of filler); then the tags.
#[inline(always)]
fn fill_whole_chunk(
    lanes: &mut Lanes,
    out: &mut [u8],
    ahead: usize,
    sector_fill: impl Fn(usize) -> SectorFill,
) {
    const MAX_SECTORS: usize = CHUNK / SECTOR;
    let sectors = out.len() / SECTOR;
    if !lanes.compose_sectors(out, |j| sector_fill(j).plan(), ahead) {
        let mut runs = [Run::default(); MAX_SECTORS];
        let mut splats = [Splat::default(); MAX_SECTORS];
        for j in 0..sectors {
            let fill = sector_fill(j);
            runs[j] = fill.run(j * SECTOR);
            splats[j] = fill.splat(j * SECTOR);
        }
        lanes.fill_runs(out, &runs[..sectors], &splats[..sectors], ahead);
    }
    for j in 0..sectors {
        let fill = sector_fill(j);
        if let Some(tag) = fill.tag {
            let at = fill.random_at(j * SECTOR);
            out[at..at + tag.len()].copy_from_slice(&tag);
        }
    }
}

/// The makings of one sector: how many bytes are random, its optional tag and filler byte.
struct SectorFill {
    random: usize,
    tag: Option<[u8; layout::TAG_BYTES]>,
    filler: u8,
    random_first: bool,
}

impl SectorFill {
    /// What [`Lanes::compose_sectors`] needs to know of the sector.
    #[inline(always)]
    fn plan(&self) -> SectorPlan {
        SectorPlan {
            random: self.random,
            random_first: self.random_first,
            filler: self.filler,
        }
    }

    /// Where the sector's generator steps go, for a sector starting at byte `base`.
    ///
    /// The steps are written whole, from the sector's start (random first) or ending at its
    /// end (random last); the [`splat`](Self::splat) of filler then covers the step bytes
    /// beyond the `r` random ones. So even sectors keep the first `r` bytes of their steps,
    /// odd sectors the last `r`, and no write leaves the sector.
    #[inline(always)]
    fn run(&self, base: usize) -> Run {
        let steps = self.random.div_ceil(STEP_BYTES);
        let at = if self.random_first {
            base
        } else {
            base + SECTOR - steps * STEP_BYTES
        };
        Run { at, steps }
    }

    /// Where the sector's filler goes, for a sector starting at byte `base`; it also covers
    /// the step bytes beyond the random ones.
    #[inline(always)]
    fn splat(&self, base: usize) -> Splat {
        let at = if self.random_first {
            base + self.random
        } else {
            base
        };
        Splat {
            at,
            len: SECTOR - self.random,
            byte: self.filler,
        }
    }

    /// Offset of the sector's random bytes, for a sector starting at byte `base`.
    #[inline(always)]
    fn random_at(&self, base: usize) -> usize {
        if self.random_first {
            base
        } else {
            base + SECTOR - self.random
        }
    }

    /// Writes bytes `[from, from + out.len())` of the sector into `out`.
    fn write_part(&self, lanes: &mut Lanes, from: usize, out: &mut [u8]) {
        let mut sector = [0u8; SECTOR];
        lanes.fill_runs(&mut sector, &[self.run(0)], &[self.splat(0)], 0);
        if let Some(tag) = self.tag {
            let at = self.random_at(0);
            sector[at..at + tag.len()].copy_from_slice(&tag);
        }
        out.copy_from_slice(&sector[from..from + out.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(compress: f64, dedup: f64, unit: u64) -> Generator {
        let spec = ContentSpec {
            seed: 77,
            compress,
            dedup,
            dedup_unit: unit,
        };
        Generator::new(&spec).unwrap()
    }

    fn stream(g: &Generator, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        g.fill(offset, &mut buf);
        buf
    }

    #[test]
    fn reads_at_any_split_agree() {
        for (c, d, unit) in [
            (1.0, 1.0, 4096),
            (2.0, 1.0, 4096),
            (3.3, 2.5, 512),
            (40.0, 3.0, 65536),
        ] {
            let g = generator(c, d, unit);
            let whole = stream(&g, 1000, 300_000);
            for (start, len) in [
                (0, 1),
                (511, 2),
                (4095, 4097),
                (12_345, 100_000),
                (299_000, 1000),
            ] {
                assert_eq!(
                    stream(&g, 1000 + start as u64, len),
                    whole[start..start + len]
                );
            }
        }
    }

    #[test]
    fn parallel_fill_matches_sequential() {
        let g = generator(2.0, 2.0, 4096);
        let mut par = vec![0u8; PAR_FROM + 3 * PAR_PIECE + 12_345];
        g.fill_par(777, &mut par);
        assert_eq!(par, stream(&g, 777, par.len()));
    }

    #[test]
    fn duplicate_units_are_identical() {
        let g = generator(2.0, 4.0, 4096);
        let data = stream(&g, 0, 4096 * 2000);
        for u in 0..2000u64 {
            let id = g.content_id(UnitIndex(u));
            let mut unit = vec![0u8; 4096];
            g.fill_unit(id, 0, &mut unit);
            assert_eq!(unit[..], data[u as usize * 4096..][..4096]);
        }
    }

    #[test]
    fn every_sector_mixes_random_and_filler() {
        let g = generator(4.0, 1.0, 4096);
        let data = stream(&g, 0, 1 << 20);
        for sector in data.chunks(SECTOR) {
            let mut counts = [0usize; 256];
            sector.iter().for_each(|&b| counts[b as usize] += 1);
            let top = *counts.iter().max().unwrap();
            assert!((300..500).contains(&top), "filler run of {top} bytes");
            assert!(sector.iter().any(|&b| b != 0));
        }
    }

    #[test]
    fn seeds_give_unrelated_streams() {
        let a = stream(&generator(1.0, 1.0, 4096), 0, 1 << 16);
        let spec = ContentSpec {
            seed: 78,
            ..*generator(1.0, 1.0, 4096).spec()
        };
        let b = stream(&Generator::new(&spec).unwrap(), 0, 1 << 16);
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert!(same < 1 << 10, "{same} equal bytes");
    }
}
