//! Unit and property tests of the cache against the generator as the reference model.

use std::sync::atomic::AtomicBool;
use std::thread;

use proptest::prelude::*;

use super::*;
use crate::spec::ContentSpec;

fn generator(dedup: f64, unit: u64) -> Generator {
    let spec = ContentSpec {
        seed: 5,
        compress: 2.0,
        dedup,
        dedup_unit: unit,
    };
    Generator::new(&spec).unwrap()
}

fn cache(generator: Generator, capacity: u64, block_size: usize) -> BlockCache {
    let config = CacheConfig {
        capacity,
        block_size,
        max_window: DEFAULT_MAX_WINDOW,
    };
    BlockCache::new(generator, config, Binder::unbound(Plan::single(0..2))).unwrap()
}

/// File `i` of a tree of equal files of `size` bytes laid end to end in the stream.
fn file(i: u64, size: u64) -> FileExtent {
    FileExtent {
        file: FileIndex(i),
        stream_offset: i * size,
        len: size,
    }
}

fn read(
    cache: &BlockCache,
    h: Option<HandleId>,
    f: FileExtent,
    offset: u64,
    len: usize,
) -> Vec<u8> {
    let n = f.len.saturating_sub(offset).min(len as u64) as usize;
    let mut buf = vec![0u8; n];
    match cache.read(h, f, offset, &mut buf) {
        Served::Block(slice) => slice.as_slice().to_vec(),
        Served::Buffer(n) => buf[..n].to_vec(),
    }
}

fn reference(g: &Generator, f: FileExtent, offset: u64, len: usize) -> Vec<u8> {
    let n = f.len.saturating_sub(offset).min(len as u64) as usize;
    let mut buf = vec![0u8; n];
    g.fill(f.stream_offset + offset, &mut buf);
    buf
}

#[test]
fn unit_pieces_cover_the_buffer() {
    let pieces = unit_pieces(1000, 10_000, 4096);
    let lens: Vec<usize> = pieces.iter().map(|p| p.range.len()).collect();
    assert_eq!(lens, [3096, 4096, 2808]);
    assert_eq!(pieces.iter().filter(|p| p.whole).count(), 1);
    assert_eq!(pieces[0].within, 1000);
}

#[test]
fn block_size_is_checked() {
    let config = CacheConfig {
        block_size: 3000,
        ..CacheConfig::default()
    };
    let err = BlockCache::new(
        generator(1.0, 4096),
        config,
        Binder::unbound(Plan::single([0])),
    );
    assert!(matches!(err, Err(CacheError::BlockSize(3000))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Bytes read through the cache equal the generator's, from several threads at once,
    /// for reads of any offset and size, across block and file boundaries.
    #[test]
    fn bytes_through_the_cache_are_the_generators(
        dedup in prop::sample::select(vec![1.0, 3.0, 10.0]),
        unit in prop::sample::select(vec![512u64, 4096, 65_536]),
        file_size in 1u64..600_000,
        capacity in prop::sample::select(vec![64u64 << 10, 1 << 20, 8 << 20]),
        reads in prop::collection::vec((0u64..40, 0u64..700_000, 1usize..300_000), 1..40),
    ) {
        let g = generator(dedup, unit);
        let c = cache(g.clone(), capacity, 64 << 10);
        thread::scope(|s| {
            for part in reads.chunks(reads.len().div_ceil(3)) {
                let (g, c) = (&g, &c);
                s.spawn(move || {
                    let h = c.open();
                    for &(i, offset, len) in part {
                        let f = file(i, file_size);
                        let got = read(c, Some(h), f, offset % (file_size + 10), len);
                        let want = reference(g, f, offset % (file_size + 10), len);
                        assert!(got == want, "file {i} offset {offset} len {len}");
                    }
                });
            }
        });
    }
}

#[test]
fn sequential_reads_through_read_ahead_are_exact() {
    let g = generator(3.0, 4096);
    let c = cache(g.clone(), 4 << 20, 64 << 10);
    let f = file(3, 5_000_000);
    let h = c.open();
    for offset in (0..f.len).step_by(100_000) {
        assert_eq!(
            read(&c, Some(h), f, offset, 100_000),
            reference(&g, f, offset, 100_000)
        );
    }
    let stats = c.stats().total();
    assert!(stats.ahead_used > 0, "{stats:?}");
}

#[test]
fn the_budget_holds_under_concurrent_readers() {
    let capacity = 1 << 20;
    let c = cache(generator(4.0, 4096), capacity, 64 << 10);
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let resident = c.stats().total().resident_bytes;
                assert!(resident <= capacity, "{resident} bytes resident");
            }
        });
        let readers: Vec<_> = (0..4u64)
            .map(|t| {
                let c = &c;
                s.spawn(move || {
                    let h = c.open();
                    for k in 0..400u64 {
                        let offset = if t % 2 == 0 {
                            k * 65_536
                        } else {
                            ((k * 7919 + t) % 40) << 16
                        };
                        read(c, Some(h), file(t, 64 << 20), offset, 65_536);
                    }
                })
            })
            .collect();
        readers.into_iter().for_each(|r| r.join().unwrap());
        done.store(true, Ordering::Relaxed);
    });
    assert!(c.stats().total().resident_bytes <= capacity);
}

#[test]
fn random_readers_cause_no_read_ahead() {
    let c = cache(generator(1.0, 4096), 16 << 20, 64 << 10);
    let f = file(0, 1 << 30);
    let h = c.open();
    let mut x = 12345u64;
    for _ in 0..500 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        read(&c, Some(h), f, (x >> 20) % (1 << 30), 4096);
    }
    assert_eq!(c.stats().total().ahead_generated, 0);
}

#[test]
fn a_dedup_tree_read_end_to_end_hits_on_duplicates() {
    let g = generator(10.0, 4096);
    let c = cache(g, DEFAULT_CAPACITY, DEFAULT_BLOCK_SIZE);
    let size = 16 << 20;
    for i in 0..24 {
        let f = file(i, size);
        let h = c.open();
        for offset in (0..size).step_by(1 << 20) {
            read(&c, Some(h), f, offset, 1 << 20);
        }
        c.release(h);
    }
    let stats = c.stats().total();
    assert!(stats.unit_hit_rate() >= 0.85, "{stats:?}");
    assert!(stats.resident_bytes <= DEFAULT_CAPACITY);
}

#[test]
fn random_reads_use_cached_blocks_but_never_make_one() {
    let c = cache(generator(1.0, 4096), 8 << 20, 1 << 20);
    let g = generator(1.0, 4096);
    let f = file(3, 4 << 20);
    for offset in [5 << 18, 3 << 20, 12_345, (2 << 20) + 7] {
        assert_eq!(
            read(&c, None, f, offset, 4096),
            reference(&g, f, offset, 4096)
        );
    }
    let stats = c.stats().total();
    assert_eq!((stats.hits, stats.misses, stats.resident_bytes), (0, 4, 0));

    // A sequential reader that stops half way through block 0 leaves it cached (with
    // block 1 generated ahead); random reads inside those blocks are hits.
    let h = c.open();
    assert_eq!(
        read(&c, Some(h), f, 0, 1 << 19),
        reference(&g, f, 0, 1 << 19)
    );
    for offset in [4096, (1 << 20) + 8192] {
        assert_eq!(
            read(&c, None, f, offset, 4096),
            reference(&g, f, offset, 4096)
        );
    }
    let stats = c.stats().total();
    assert_eq!((stats.hits, stats.misses), (2, 5), "{stats:?}");
}

#[test]
fn blocks_read_to_the_end_by_a_stream_leave_the_cache() {
    let c = cache(generator(1.0, 4096), 64 << 20, 1 << 20);
    let f = file(0, 32 << 20);
    let h = c.open();
    for offset in (0..32 << 20).step_by(1 << 19) {
        read(&c, Some(h), f, offset, 1 << 19);
    }
    let stats = c.stats().total();
    assert_eq!(stats.resident_bytes, 0, "{stats:?}");
    assert_eq!(stats.ahead_used, stats.ahead_generated, "{stats:?}");
}

#[cfg(feature = "numa")]
fn synthetic(nodes: usize) -> Binder {
    let text = format!("node:{nodes} core:2 pu:1");
    let topology = hwlocality::Topology::builder()
        .from_synthetic(&text)
        .unwrap()
        .build()
        .unwrap();
    Binder::from_topology(topology, NumaMode::Auto).unwrap()
}

#[cfg(feature = "numa")]
#[test]
fn synthetic_nodes_get_shards_pools_and_threads() {
    for nodes in [1usize, 2, 4] {
        let config = CacheConfig {
            capacity: 8 << 20,
            block_size: 64 << 10,
            max_window: 4,
        };
        let c = BlockCache::new(generator(2.0, 4096), config, synthetic(nodes)).unwrap();
        assert_eq!(c.pools.len(), nodes);
        assert!(c.pools.iter().all(|p| p.threads() == 2));

        thread::scope(|s| {
            for t in 0..2 * nodes as u64 {
                let c = &c;
                s.spawn(move || read(c, None, file(t, 1 << 20), 0, 4096));
            }
        });
        let stats = c.stats();
        assert_eq!(stats.nodes.len(), nodes);
        assert!(
            stats.nodes.iter().all(|n| n.misses == 2),
            "{nodes} nodes: {stats:?}"
        );
        assert!(stats
            .nodes
            .iter()
            .all(|n| n.resident_bytes <= (8 << 20) / nodes as u64));
    }
}
