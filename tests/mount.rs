//! Real FUSE mounts through the library API: content, tree walks, read-only and EOF rules.
//!
//! Each test mounts on its own temp dir; the [`TestMount`] guard unmounts on drop, panics
//! included. Tests skip with a printed reason only when `/dev/fuse` is absent.

mod common;

use std::fs::{self, File};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::mount::{fuse_available, TestMount};
use dgenfs::fs::uring;
use dgenfs::mount::{mount, MountOptions, UringMode};
use dgenfs::spec::ContentSpec;
use dgenfs::tree::{FileIndex, FileSizing, Tree, TreeSpec};
use dgenfs::Generator;

fn mount_tree(content: ContentSpec, tree: TreeSpec) -> TestMount {
    TestMount::new(content, |opts| opts.tree = tree)
}

/// A mount that takes requests through `transport`, checked to be the one in use.
fn mount_via(transport: UringMode, content: ContentSpec, tree: TreeSpec) -> TestMount {
    let m = TestMount::new(content, |opts| {
        opts.tree = tree;
        opts.uring = transport;
    });
    assert_eq!(m.handle.io_uring(), transport == UringMode::On);
    m
}

/// The request transports to test: `/dev/fuse` always, per-CPU io_uring queues when the
/// kernel offers them (scripts/setup.sh turns them on).
fn transports() -> Vec<UringMode> {
    if uring::kernel_offers() {
        return vec![UringMode::Off, UringMode::On];
    }
    eprintln!(
        "io_uring half skipped: the kernel does not offer FUSE over io_uring ({})",
        uring::ENABLE_PARAM
    );
    vec![UringMode::Off]
}

fn spec(seed: u64, compress: f64, dedup: f64) -> ContentSpec {
    ContentSpec {
        compress,
        dedup,
        ..ContentSpec::with_seed(seed)
    }
}

fn tree_spec(size: u64, sizing: FileSizing, files_per_dir: u64) -> TreeSpec {
    TreeSpec {
        size,
        sizing,
        files_per_dir,
        dlio: None,
    }
}

/// Every file path of `tree` under `root`, found by walking the mount.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The global index in a `file_NNN` name.
fn index_of(path: &Path) -> FileIndex {
    let name = path.file_name().unwrap().to_str().unwrap();
    FileIndex(
        name.trim_start_matches("file_")
            .parse()
            .expect("file index"),
    )
}

/// A small deterministic xorshift, so failures repeat.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn random_reads_from_many_threads_match_the_generator() {
    if !fuse_available() {
        return;
    }
    let cases = [spec(11, 1.0, 1.0), spec(12, 3.0, 2.0)];
    for (content, transport) in cases.into_iter().zip(transports().into_iter().cycle()) {
        let tree = tree_spec(40 << 20, FileSizing::FileSize(3 << 20 | 12345), 4);
        let m = mount_via(transport, content, tree);
        let (files, generator) = (walk(m.path()), Generator::new(&content).unwrap());
        let tree = Tree::new(&tree).unwrap();
        assert_eq!(files.len() as u64, tree.files());
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (files, generator, tree) = (&files, &generator, &tree);
                s.spawn(move || check_random_reads(files, generator, tree, t + 1));
            }
        });
    }
}

fn check_random_reads(files: &[PathBuf], generator: &Generator, tree: &Tree, seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for _ in 0..200 {
        let path = &files[(next(&mut state) % files.len() as u64) as usize];
        let index = index_of(path);
        let len = tree.file_len(index);
        let offset = next(&mut state) % (len + 100);
        let size = (next(&mut state) % (3 << 20)) as usize + 1;
        let mut got = vec![0; size];
        let n = File::open(path).unwrap().read_at(&mut got, offset).unwrap();
        let expected = len.saturating_sub(offset).min(size as u64) as usize;
        assert_eq!(n, expected, "{} at {offset} len {size}", path.display());
        let mut want = vec![0; n];
        generator.fill(tree.file_stream_offset(index) + offset, &mut want);
        assert!(
            got[..n] == want[..],
            "{} differs at {offset} len {size}",
            path.display()
        );
    }
}

#[test]
fn cp_r_copies_a_nested_tree_byte_for_byte() {
    if !fuse_available() {
        return;
    }
    for transport in transports() {
        cp_r_byte_for_byte(transport);
    }
}

fn cp_r_byte_for_byte(transport: UringMode) {
    let content = spec(21, 2.0, 1.0);
    let tree = tree_spec(3 << 20, FileSizing::FileSize(100_000), 5);
    let m = mount_via(transport, content, tree);
    let statfs = Command::new("stat")
        .args(["-f", "-c", "%b %S"])
        .arg(m.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&statfs.stdout).trim(), "3 1048576");
    let dest = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(m.path())
        .arg(dest.path().join("copy"))
        .status();
    assert!(status.expect("cp runs").success());

    let (generator, tree) = (Generator::new(&content).unwrap(), Tree::new(&tree).unwrap());
    let copied = walk(&dest.path().join("copy"));
    assert_eq!(copied.len() as u64, tree.files());
    assert!(tree.depth() >= 2, "the test tree should nest");
    for path in copied {
        let index = index_of(&path);
        let bytes = fs::read(&path).unwrap();
        let mut want = vec![0; tree.file_len(index) as usize];
        generator.fill(tree.file_stream_offset(index), &mut want);
        assert!(bytes == want, "{} differs", path.display());
    }
}

#[test]
fn find_and_stat_over_100k_files() {
    if !fuse_available() {
        return;
    }
    let tree = tree_spec(100_000 * 1000 + 7, FileSizing::Files(100_000), 1000);
    let m = mount_tree(spec(31, 1.0, 1.0), tree);
    let out = Command::new("find")
        .arg(m.path())
        .args(["-type", "f", "-printf", "%s %b\n"])
        .output()
        .expect("find runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (mut count, mut total) = (0u64, 0u64);
    for line in text.lines() {
        let (size, blocks) = line.split_once(' ').unwrap();
        let (size, blocks): (u64, u64) = (size.parse().unwrap(), blocks.parse().unwrap());
        assert_eq!(blocks, size.div_ceil(512));
        (count, total) = (count + 1, total + size);
    }
    assert_eq!((count, total), (100_000, 100_000 * 1000 + 7));
    let stat = Command::new("stat")
        .arg("-f")
        .arg("-c")
        .arg("%b %S")
        .arg(m.path())
        .output();
    let text = String::from_utf8(stat.unwrap().stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("{} {}", (100_000_007u64).div_ceil(1 << 20), 1 << 20)
    );
}

#[test]
fn writes_get_erofs() {
    if !fuse_available() {
        return;
    }
    for transport in transports() {
        writes_get_erofs_via(transport);
    }
}

fn writes_get_erofs_via(transport: UringMode) {
    let m = mount_via(
        transport,
        spec(41, 1.0, 1.0),
        tree_spec(1 << 20, FileSizing::Files(2), 1000),
    );
    let file = m.path().join("file_0");
    let attempts: Vec<(&str, std::io::Result<()>)> = vec![
        (
            "open for write",
            File::options().write(true).open(&file).map(drop),
        ),
        ("create", File::create(m.path().join("new")).map(drop)),
        ("mkdir", fs::create_dir(m.path().join("dir"))),
        ("unlink", fs::remove_file(&file)),
        ("rename", fs::rename(&file, m.path().join("file_9"))),
        (
            "chmod",
            fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o777)),
        ),
    ];
    for (what, result) in attempts {
        let err = result.expect_err(what);
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{what}: {err}");
    }
}

#[test]
fn reads_stop_at_eof() {
    if !fuse_available() {
        return;
    }
    for transport in transports() {
        reads_stop_at_eof_via(transport);
    }
}

fn reads_stop_at_eof_via(transport: UringMode) {
    let m = mount_via(
        transport,
        spec(51, 1.0, 1.0),
        tree_spec(10_000, FileSizing::FileSize(3_000), 1000),
    );
    let last = m.path().join("file_3");
    assert_eq!(fs::metadata(&last).unwrap().len(), 1_000);
    let file = File::open(&last).unwrap();
    let mut buf = vec![0; 4096];
    assert_eq!(file.read_at(&mut buf, 900).unwrap(), 100);
    assert_eq!(file.read_at(&mut buf, 1_000).unwrap(), 0);
    assert_eq!(file.read_at(&mut buf, 1 << 40).unwrap(), 0);
    let mut all = Vec::new();
    File::open(&last).unwrap().read_to_end(&mut all).unwrap();
    assert_eq!(all.len(), 1_000);
    let missing = File::open(m.path().join("file_4")).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
}

#[test]
fn stats_count_reads() {
    if !fuse_available() {
        return;
    }
    for transport in transports() {
        let m = mount_via(
            transport,
            spec(61, 1.0, 1.0),
            tree_spec(4 << 20, FileSizing::Files(1), 1000),
        );
        let bytes = fs::read(m.path().join("file_0")).unwrap();
        let stats = m.handle.stats();
        assert_eq!(stats.bytes_read, bytes.len() as u64);
        assert!(stats.reads >= 4 && stats.opens >= 1, "{stats:?}");
    }
}

#[test]
fn fio_reads_the_tree_readonly() {
    if !fuse_available() {
        return;
    }
    let m = mount_tree(
        spec(71, 2.0, 1.0),
        tree_spec(64 << 20, FileSizing::Files(8), 1000),
    );
    let out = Command::new("fio")
        .args([
            "--name=synth",
            "--readonly",
            "--rw=randread",
            "--bs=64k",
            "--numjobs=2",
        ])
        .args([
            "--ioengine=psync",
            "--time_based",
            "--runtime=1",
            "--group_reporting",
        ])
        .arg(format!("--opendir={}", m.path().display()))
        .output()
        .expect("fio is installed (apt-get install fio)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fio failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("READ:"), "{stdout}");
}

#[test]
fn mount_errors_are_specific() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    fs::write(&file, b"x").unwrap();
    let err = mount(&MountOptions::new(&file, spec(1, 1.0, 1.0))).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("mount point {} is not a directory", file.display())
    );

    let m = mount_tree(
        spec(1, 1.0, 1.0),
        tree_spec(1 << 20, FileSizing::Files(1), 1000),
    );
    let err = mount(&MountOptions::new(m.path(), spec(1, 1.0, 1.0))).unwrap_err();
    assert!(err.to_string().contains("already a mount point"), "{err}");

    let bad = MountOptions::new(dir.path(), spec(1, 100.0, 1.0));
    let err = mount(&bad).unwrap_err();
    assert!(
        err.to_string().starts_with("invalid compress '100'"),
        "{err}"
    );
}
