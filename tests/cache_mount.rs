//! Real FUSE mounts with the block cache on and off: bytes, read-ahead, dedup hits, bounds.
//!
//! Each test mounts on its own temp dir; the [`TestMount`] guard unmounts on drop, panics
//! included. Tests skip with a printed reason only when `/dev/fuse` is absent.

mod common;

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::mount::{fuse_available, TestMount};
use dgenfs::cache::{CacheConfig, CacheStats, NumaMode};
use dgenfs::spec::ContentSpec;
use dgenfs::tree::{FileIndex, FileSizing, Tree, TreeSpec};
use dgenfs::Generator;

fn cache_stats(m: &TestMount) -> Option<CacheStats> {
    m.handle.stats_reader().cache_stats()
}

fn content(dedup: f64) -> ContentSpec {
    ContentSpec {
        compress: 2.0,
        dedup,
        ..ContentSpec::with_seed(41)
    }
}

fn tree(size: u64, file_size: u64) -> TreeSpec {
    TreeSpec {
        size,
        sizing: FileSizing::FileSize(file_size),
        files_per_dir: 1000,
        dlio: None,
    }
}

fn mount_with(content: ContentSpec, tree: TreeSpec, capacity: u64) -> TestMount {
    TestMount::new(content, |opts| {
        opts.tree = tree;
        opts.cache = CacheConfig {
            capacity,
            ..CacheConfig::default()
        };
        opts.numa = NumaMode::Auto;
    })
}

/// The path of file `i` in a one-directory tree.
fn file_path(m: &TestMount, i: u64) -> PathBuf {
    m.path().join(format!("file_{i}"))
}

/// What file `i` holds, from the generator.
fn expected(spec: &ContentSpec, tree: &TreeSpec, i: u64, offset: u64, len: usize) -> Vec<u8> {
    let t = Tree::new(tree).unwrap();
    let file = FileIndex(i);
    let n = t.file_len(file).saturating_sub(offset).min(len as u64) as usize;
    let mut buf = vec![0; n];
    Generator::new(spec)
        .unwrap()
        .fill(t.file_stream_offset(file) + offset, &mut buf);
    buf
}

/// Reads a whole file with reads of `chunk` bytes.
fn read_all(path: &Path, chunk: usize) -> Vec<u8> {
    let mut file = File::open(path).expect("open");
    let mut out = Vec::new();
    let mut buf = vec![0; chunk];
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn sequential_reads_are_exact_and_read_ahead() {
    if !fuse_available() {
        return;
    }
    let (spec, tree) = (content(1.0), tree(40 << 20, 20 << 20));
    let m = mount_with(spec, tree, 64 << 20);
    for chunk in [1 << 20, 100_000] {
        let got = read_all(&file_path(&m, 1), chunk);
        assert!(
            got == expected(&spec, &tree, 1, 0, 20 << 20),
            "chunk {chunk}"
        );
    }
    let stats = cache_stats(&m).expect("cache on").total();
    assert!(stats.ahead_used > 0, "{stats:?}");
    assert!(stats.resident_bytes <= 64 << 20);
}

#[test]
fn random_reads_are_exact_and_do_not_read_ahead() {
    if !fuse_available() {
        return;
    }
    let (spec, tree) = (content(3.0), tree(64 << 20, 64 << 20));
    let m = mount_with(spec, tree, 32 << 20);
    let file = File::open(file_path(&m, 0)).expect("open");
    let mut x = 99u64;
    for _ in 0..300 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        let (offset, len) = ((x >> 16) % (64 << 20), (x >> 48) as usize % 300_000 + 1);
        let mut buf = vec![0; len];
        let n = file.read_at(&mut buf, offset).expect("read_at");
        assert!(
            buf[..n] == expected(&spec, &tree, 0, offset, len)[..],
            "{offset} {len}"
        );
    }
    let stats = cache_stats(&m).expect("cache on").total();
    assert_eq!(stats.ahead_generated, 0, "{stats:?}");
}

#[test]
fn a_dedup_10_tree_read_end_to_end_hits_85_percent() {
    if !fuse_available() {
        return;
    }
    let m = mount_with(content(10.0), tree(256 << 20, 16 << 20), 256 << 20);
    let mut files: Vec<PathBuf> = fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        name.trim_start_matches("file_").parse::<u64>().unwrap()
    });
    for path in &files {
        read_all(path, 1 << 20);
    }
    let stats = cache_stats(&m).expect("cache on").total();
    assert!(stats.unit_hit_rate() >= 0.85, "{stats:?}");
}

#[test]
fn the_cache_is_off_by_default() {
    if !fuse_available() {
        return;
    }
    for (dedup, on) in [(1.0, false), (2.0, false)] {
        let content = ContentSpec {
            dedup,
            ..ContentSpec::with_seed(4)
        };
        let m = TestMount::new(content, |opts| opts.tree = tree(4 << 20, 1 << 20));
        assert_eq!(cache_stats(&m).is_some(), on, "dedup {dedup}");
    }
}

#[test]
fn cache_zero_serves_the_same_bytes_without_a_cache() {
    if !fuse_available() {
        return;
    }
    let (spec, tree) = (content(2.0), tree(8 << 20, 3_000_000));
    let m = mount_with(spec, tree, 0);
    assert!(cache_stats(&m).is_none());
    let got = read_all(&file_path(&m, 2), 1 << 20);
    assert!(got == expected(&spec, &tree, 2, 0, 3_000_000));
}
