//! The content contract (DESIGN.md section 2), measured with real compressors and hashes.

mod common;

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use common::ratios::{self, Compressor};
use dgenfs::{ContentSpec, Generator, UnitIndex, CONTENT_VERSION};
use proptest::prelude::*;
use rayon::prelude::*;

fn generator(seed: u64, compress: f64, dedup: f64, unit: u64) -> Generator {
    let spec = ContentSpec {
        seed,
        compress,
        dedup,
        dedup_unit: unit,
    };
    Generator::new(&spec).expect("valid spec")
}

fn stream(g: &Generator, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    g.fill_par(offset, &mut buf);
    buf
}

fn hash128(bytes: &[u8]) -> (u64, u64) {
    let mut a = DefaultHasher::new();
    bytes.hash(&mut a);
    let mut b = DefaultHasher::new();
    0xfeed_u32.hash(&mut b);
    bytes.hash(&mut b);
    (a.finish(), b.finish())
}

#[test]
fn compress_ratio_within_five_percent_for_every_compressor_and_block_size() {
    let cases: Vec<(f64, Compressor, Option<usize>)> = [1.0, 1.5, 2.0, 3.0, 4.0, 8.0]
        .into_iter()
        .flat_map(|c| ratios::ALL.into_iter().map(move |comp| (c, comp)))
        .flat_map(|(c, comp)| ratios::BLOCKS.into_iter().map(move |b| (c, comp, b)))
        .collect();
    let streams: HashMap<u64, Vec<u8>> = [1.0, 1.5, 2.0, 3.0, 4.0, 8.0]
        .into_iter()
        .map(|c: f64| {
            (
                c.to_bits(),
                stream(&generator(3, c, 1.0, 4096), 0, 16 << 20),
            )
        })
        .collect();
    let failures: Vec<String> = cases
        .par_iter()
        .filter_map(|&(c, comp, block)| {
            let got = comp.ratio(&streams[&c.to_bits()], block);
            let ok = (got / c - 1.0).abs() <= 0.05;
            (!ok).then(|| format!("c {c} {} block {block:?}: {got:.3}", comp.name()))
        })
        .collect();
    assert!(failures.is_empty(), "outside 5%: {failures:#?}");
}

#[test]
fn high_compress_ratios_are_monotone_and_within_fifteen_percent_for_zstd() {
    let targets = [8.0, 10.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0];
    let achieved: Vec<f64> = targets
        .par_iter()
        .map(|&c| Compressor::Zstd1.ratio(&stream(&generator(4, c, 1.0, 4096), 0, 8 << 20), None))
        .collect();
    for (c, got) in targets.iter().zip(&achieved) {
        assert!(
            (got / c - 1.0).abs() <= 0.15,
            "c {c}: zstd -1 gives {got:.2}"
        );
    }
    for pair in achieved.windows(2) {
        assert!(pair[1] > pair[0], "not monotone: {achieved:?}");
    }
}

/// (units in the stream) / (distinct units), hashing every unit of `len` bytes.
fn measured_dedup(g: &Generator, unit: usize, len: usize) -> f64 {
    let data = stream(g, 0, len);
    let distinct: HashSet<(u64, u64)> = data.par_chunks(unit).map(hash128).collect();
    (len / unit) as f64 / distinct.len() as f64
}

#[test]
fn dedup_ratio_within_two_percent() {
    let cases = [
        (1.0, 4096),
        (1.5, 4096),
        (2.0, 4096),
        (3.0, 4096),
        (10.0, 4096),
        (2.0, 512),
        (4.0, 64 << 10),
        (3.0, 1 << 20),
    ];
    for (d, unit) in cases {
        for c in [1.0, 3.0] {
            let got = measured_dedup(&generator(5, c, d, unit), unit as usize, 256 << 20);
            assert!(
                (got / d - 1.0).abs() <= 0.02,
                "d {d} unit {unit} c {c}: {got:.4}"
            );
        }
    }
}

#[test]
fn no_two_sectors_equal_and_none_zero_without_dedup() {
    for c in [1.0, 1.5, 2.0, 3.0, 4.0, 8.0, 16.0, 64.0] {
        let g = generator(6, c, 1.0, 4096);
        let mut seen: HashMap<(u64, u64), u64> = HashMap::with_capacity(1 << 21);
        let piece = 64usize << 20;
        for start in (0..1u64 << 30).step_by(piece) {
            let data = stream(&g, start, piece);
            let hashes: Vec<(u64, u64)> = data.par_chunks(512).map(hash128).collect();
            for (i, (h, sector)) in hashes.into_iter().zip(data.chunks(512)).enumerate() {
                assert!(sector.iter().any(|&b| b != 0), "c {c}: zero sector");
                let offset = start + i as u64 * 512;
                if let Some(&other) = seen.get(&h) {
                    let earlier = stream(&g, other, 512);
                    assert_ne!(
                        earlier, sector,
                        "c {c}: sectors at {other} and {offset} equal"
                    );
                }
                seen.insert(h, offset);
            }
        }
    }
}

#[test]
fn different_seeds_share_no_sector() {
    let mut owner: HashMap<(u64, u64), u64> = HashMap::new();
    for seed in [0u64, 1, 2, 3, u64::MAX] {
        for c in [1.0, 4.0] {
            let data = stream(&generator(seed, c, 2.0, 4096), 0, 16 << 20);
            let mine: HashSet<(u64, u64)> = data.par_chunks(512).map(hash128).collect();
            for h in mine {
                let prior = owner.insert(h, seed);
                assert!(
                    prior.is_none_or(|p| p == seed),
                    "seeds {prior:?} and {seed} share"
                );
            }
        }
    }
}

#[test]
fn duplicates_spread_far_apart() {
    let g = generator(8, 2.0, 3.0, 4096);
    let units = 1u64 << 16;
    let mut first: HashMap<u64, u64> = HashMap::new();
    let mut distances = Vec::new();
    for u in 0..units {
        let id = g.content_id(UnitIndex(u)).0;
        if let Some(&at) = first.get(&id) {
            distances.push(u - at);
        } else {
            first.insert(id, u);
        }
    }
    distances.sort_unstable();
    let median_bytes = distances[distances.len() / 2] * 4096;
    assert!(
        median_bytes > 8 << 20,
        "median distance {median_bytes} bytes"
    );
    assert!(distances.iter().filter(|&&d| d == 1).count() <= 1);
}

#[test]
fn reads_far_into_the_stream_cost_their_own_length() {
    // Would take hours if a read at offset X cost O(X).
    let g = generator(9, 2.0, 5.0, 4096);
    let far = stream(&g, 1 << 52, 1 << 20);
    assert_eq!(far[4096..8192], stream(&g, (1 << 52) + 4096, 4096)[..]);
}

/// FNV-1a over a 4 MiB read at offset 1 GiB + 17: pins the bytes of content version 1.
fn golden_checksum(g: &Generator) -> u64 {
    stream(g, (1 << 30) + 17, 4 << 20)
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        })
}

#[test]
fn golden_checksums_pin_content_version_1() {
    assert_eq!(
        CONTENT_VERSION, 1,
        "a new content version needs a new golden table"
    );
    let table: [(u64, f64, f64, u64, u64); 5] = [
        (0, 1.0, 1.0, 4096, GOLDEN[0]),
        (42, 2.0, 1.0, 4096, GOLDEN[1]),
        (7, 3.5, 2.5, 4096, GOLDEN[2]),
        (u64::MAX, 8.0, 10.0, 512, GOLDEN[3]),
        (123, 64.0, 1.5, 1 << 20, GOLDEN[4]),
    ];
    let got: Vec<u64> = table
        .iter()
        .map(|&(seed, c, d, unit, _)| golden_checksum(&generator(seed, c, d, unit)))
        .collect();
    let want: Vec<u64> = table.iter().map(|row| row.4).collect();
    assert_eq!(
        got, want,
        "content changed: bump CONTENT_VERSION and the table"
    );
}

const GOLDEN: [u64; 5] = [
    1287798191932335773,
    14589199921655039398,
    2024430907022860822,
    10425045334390034644,
    8254912151867027748,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_split_and_thread_count_gives_the_same_bytes(
        offset in 0u64..(1 << 40),
        len in 0usize..(1 << 20),
        cuts in proptest::collection::vec(0usize..(1 << 20), 0..6),
        threads in 1usize..5,
        compress in 1.0f64..10.0,
        dedup in 1.0f64..5.0,
        unit_shift in 9u32..21,
    ) {
        let g = generator(offset ^ 0x55, compress, dedup, 1 << unit_shift);
        let mut whole = vec![0u8; len];
        g.fill(offset, &mut whole);

        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(len)).collect();
        cuts.extend([0, len]);
        cuts.sort_unstable();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut pieces = vec![0u8; len];
        for w in cuts.windows(2) {
            let piece = &mut pieces[w[0]..w[1]];
            pool.install(|| g.fill_par(offset + w[0] as u64, piece));
        }
        prop_assert!(pieces == whole);
    }

    #[test]
    fn parallel_fills_of_large_buffers_give_the_same_bytes(
        offset in 0u64..(1 << 40),
        len in (4usize << 20)..(12 << 20),
        threads in 2usize..5,
        compress in 1.0f64..4.0,
        dedup in 1.0f64..3.0,
    ) {
        // Long enough that fill_par, fill_in and fill_team split the buffer over threads.
        let g = generator(offset ^ 0xaa, compress, dedup, 4096);
        let mut whole = vec![0u8; len];
        g.fill(offset, &mut whole);

        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut split = vec![0u8; len];
        g.fill_in(&pool, offset, &mut split);
        prop_assert!(split == whole, "fill_in on {} threads", threads);
        split.fill(0);
        pool.install(|| g.fill_par(offset, &mut split));
        prop_assert!(split == whole, "fill_par on {} threads", threads);
        split.fill(0);
        let team = dgenfs::content::team::FillTeam::new(threads, "test").unwrap();
        g.fill_team(&team, offset, &mut split);
        prop_assert!(split == whole, "fill_team on {} threads", threads);
    }
}
