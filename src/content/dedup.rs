//! The dedup map: which content each unit of the stream carries.
//!
//! Unit `u` is an *original* when the count of originals in `[0, u]` exceeds the count in
//! `[0, u)`, where `originals(n) = ceil(n / d)` is computed in 32-bit fixed point. So every
//! prefix of the stream holds exactly `ceil(n / d)` distinct units, whatever its length: the
//! map never looks at the total size. Original number `k` carries content id `k`.
//!
//! Every other unit is a duplicate of an original chosen by a hash of (seed, unit) among the
//! originals of the last [`WINDOW_BYTES`] of the stream. Duplicates therefore land far apart
//! (tens of MiB on average), across file boundaries, never on the unit just before when
//! another choice exists, and within reach of a cache of that size.

use super::lanes::mix64;

/// How far back, in bytes of stream, a duplicate may point.
pub const WINDOW_BYTES: u64 = 64 << 20;

const ONE: u128 = 1 << 32;

/// Position of a unit in the stream: byte offset divided by the dedup unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitIndex(pub u64);

/// Identity of a unit's bytes: two units with the same id hold the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentId(pub u64);

/// Maps unit indexes to content ids for one (seed, dedup ratio, dedup unit).
#[derive(Debug, Clone)]
pub struct DedupMap {
    /// `2^32 / d`, rounded: the fixed-point share of units that are originals.
    share: u64,
    /// How many originals back a duplicate may reach.
    window: u64,
    key: u64,
}

impl DedupMap {
    /// Builds the map for dedup ratio `dedup` (>= 1) and unit size `unit` in bytes.
    pub fn new(seed: u64, dedup: f64, unit: u64) -> Self {
        let share = ((ONE as f64 / dedup).round() as u64).clamp(1, ONE as u64);
        let window_units = (WINDOW_BYTES / unit).max(1);
        let window = ((window_units as u128 * share as u128) >> 32).max(1) as u64;
        DedupMap {
            share,
            window,
            key: mix64(seed ^ 0x6a09_e667_f3bc_c909),
        }
    }

    /// True when every unit is an original (dedup ratio 1).
    pub fn is_identity(&self) -> bool {
        self.share == ONE as u64
    }

    /// Number of originals among units `[0, n)`.
    #[inline]
    pub fn originals_before(&self, n: u64) -> u64 {
        ((n as u128 * self.share as u128 + ONE - 1) >> 32) as u64
    }

    /// The content carried by unit `u`.
    #[inline]
    pub fn content_id(&self, u: UnitIndex) -> ContentId {
        if self.is_identity() {
            return ContentId(u.0);
        }
        let before = self.originals_before(u.0);
        if self.originals_before(u.0 + 1) > before {
            return ContentId(before);
        }

        // A duplicate: unit 0 is always an original, so `before >= 1` here.
        let previous_is_original =
            u.0 > 0 && self.originals_before(u.0) > self.originals_before(u.0 - 1);
        let mut choices = self.window.min(before);
        let mut newest = before - 1;
        if previous_is_original && choices > 1 {
            newest -= 1;
            choices -= 1;
        }
        let pick = mix64(self.key ^ u.0) % choices;
        ContentId(newest - pick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn distinct(map: &DedupMap, n: u64) -> usize {
        (0..n)
            .map(|u| map.content_id(UnitIndex(u)))
            .collect::<HashSet<_>>()
            .len()
    }

    #[test]
    fn identity_when_ratio_is_one() {
        let map = DedupMap::new(3, 1.0, 4096);
        assert!(map.is_identity());
        assert_eq!(map.content_id(UnitIndex(12345)), ContentId(12345));
    }

    #[test]
    fn every_prefix_has_the_exact_ratio() {
        for d in [1.5, 2.0, 3.0, 7.3, 10.0, 1000.0] {
            let map = DedupMap::new(11, d, 4096);
            for n in [1u64, 2, 10, 999, 5000, 65_536] {
                let want = (n as f64 / d).ceil() as usize;
                let got = distinct(&map, n);
                assert!(got.abs_diff(want) <= 1, "d {d} n {n}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn duplicates_point_back_far_and_not_to_the_previous_unit() {
        let map = DedupMap::new(5, 2.0, 4096);
        let mut first_seen = std::collections::HashMap::new();
        let mut distances = Vec::new();
        for u in 0..200_000u64 {
            let id = map.content_id(UnitIndex(u));
            match first_seen.get(&id) {
                Some(&at) => distances.push(u - at),
                None => {
                    first_seen.insert(id, u);
                }
            }
        }
        let adjacent = distances.iter().filter(|&&d| d == 1).count();
        assert!(
            adjacent <= 1,
            "{adjacent} duplicates of the unit just before"
        );
        distances.sort_unstable();
        let median = distances[distances.len() / 2];
        assert!(median > 1000, "median distance {median} units");
        let window_units = WINDOW_BYTES / 4096;
        assert!(*distances.last().unwrap() <= window_units + 2);
    }
}
