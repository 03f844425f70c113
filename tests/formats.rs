//! DLIO datasets of every format: the kernel-free core, and real mounts read by numpy, h5py
//! and a TFRecord reader.
//!
//! The mount tests run `tests/formats/check_dataset.py` with a venv's Python that has numpy
//! and h5py: `$DGENFS_VENV`, or `.venv` in the repository, created and filled with
//! `pip install numpy h5py` when missing. They skip with a printed reason only when
//! `/dev/fuse` is absent.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::mount::{fuse_available, TestMount};
use dgenfs::dlio::{DlioSpec, Preset};
use dgenfs::format::Format;
use dgenfs::fs::{FsCore, Kind};
use dgenfs::spec::ContentSpec;
use dgenfs::tree::{Ino, Tree, TreeSpec, ROOT_INO};
use dgenfs::Generator;

/// A small dataset of `format` whose sizes vary.
fn dataset(format: Format, samples: u64, subfolders: u64) -> DlioSpec {
    DlioSpec {
        format,
        files_train: 7,
        files_valid: 2,
        samples_per_file: samples,
        record_length: 40_000,
        record_length_stdev: 8_000,
        subfolders,
        seed: 3,
    }
}

fn tree_spec(dlio: DlioSpec) -> TreeSpec {
    TreeSpec {
        dlio: Some(dlio),
        ..TreeSpec::default()
    }
}

fn core(dlio: DlioSpec) -> FsCore {
    let tree = Tree::new(&tree_spec(dlio)).unwrap();
    let generator = Generator::new(&ContentSpec::with_seed(dlio.seed)).unwrap();
    FsCore::new(tree, generator, 0, 0)
}

/// (path, inode) of every file, by readdir and lookup from the root.
fn files(fs: &FsCore) -> Vec<(String, Ino)> {
    let mut out = Vec::new();
    let mut stack = vec![(ROOT_INO, String::new())];
    while let Some((dir, path)) = stack.pop() {
        let mut entries = Vec::new();
        fs.readdir(dir, 2, |e| {
            entries.push(e);
            true
        })
        .unwrap();
        for e in entries {
            assert_eq!(fs.lookup(dir, OsStr::new(&e.name)).unwrap().ino, e.ino);
            let child = format!("{path}/{}", e.name);
            match e.kind {
                Kind::Directory => stack.push((e.ino, child)),
                Kind::File => out.push((child, e.ino)),
            }
        }
    }
    out.sort();
    out
}

#[test]
fn core_serves_exact_sizes_for_every_format() {
    for format in Format::ALL {
        let fs = core(dataset(format, 2, 3));
        let files = files(&fs);
        assert_eq!(files.len(), 9, "{format}");
        for (path, ino) in files {
            let size = fs.getattr(ino).unwrap().size;
            let mut buf = vec![0; size as usize + 4096];
            let mut got = 0;
            while got < buf.len() {
                let end = (got + 65_536).min(buf.len());
                match fs.read(ino, got as u64, &mut buf[got..end]).unwrap() {
                    0 => break,
                    n => got += n,
                }
            }
            assert_eq!(got as u64, size, "{path}");
        }
    }
}

#[test]
fn valid_exists_when_empty_and_presets_mount_instantly() {
    let fs = core(DlioSpec {
        files_valid: 0,
        ..dataset(Format::Npz, 1, 0)
    });
    let valid = fs.lookup(ROOT_INO, OsStr::new("valid")).unwrap();
    assert_eq!(valid.kind, Kind::Directory);
    let start = std::time::Instant::now();
    let fs = core(Preset::Cosmoflow.spec(1));
    let train = fs.lookup(ROOT_INO, OsStr::new("train")).unwrap().ino;
    let last = fs.lookup(train, OsStr::new("img_524287_of_524288.tfrecord"));
    assert!(last.unwrap().size > 2_000_000);
    // Building the offset table takes about 40 ms on two idle cores; the bound leaves room
    // for tests running alongside and stays well under the second the issue asks for.
    let elapsed = start.elapsed();
    assert!(elapsed.as_millis() < 500, "{elapsed:?}");
}

/// Distinct dedup units over all units in the payloads of every file of a DLIO tree of
/// `format` (`header` bytes before the payload) whose content has dedup ratio `dedup`.
fn tree_dedup_ratio(format: Format, header: usize, dedup: f64) -> f64 {
    let dlio = DlioSpec {
        files_train: 30,
        files_valid: 10,
        record_length: 100_000,
        record_length_stdev: 60_000,
        ..dataset(format, 1, 0)
    };
    let content = ContentSpec {
        dedup,
        ..ContentSpec::with_seed(dlio.seed)
    };
    let tree = Tree::new(&tree_spec(dlio)).unwrap();
    let fs = FsCore::new(tree, Generator::new(&content).unwrap(), 0, 0);
    let mut payload = Vec::new();
    for (_, ino) in files(&fs) {
        let mut bytes = vec![0; fs.getattr(ino).unwrap().size as usize];
        assert_eq!(fs.read(ino, 0, &mut bytes).unwrap(), bytes.len());
        payload.extend_from_slice(&bytes[header..]);
    }
    let units: Vec<&[u8]> = payload.chunks_exact(content.dedup_unit as usize).collect();
    let distinct: std::collections::HashSet<&[u8]> = units.iter().copied().collect();
    units.len() as f64 / distinct.len() as f64
}

#[test]
fn dlio_payloads_have_the_dedup_ratio_of_the_stream() {
    for dedup in [2.0, 4.0] {
        for (format, header) in [(Format::Raw, 0), (Format::Npy, 128)] {
            let ratio = tree_dedup_ratio(format, header, dedup);
            let error = (ratio / dedup - 1.0).abs();
            assert!(error < 0.02, "{format} dedup {dedup}: measured {ratio:.3}");
        }
    }
}

#[test]
fn npz_crc_in_the_header_is_the_crc_of_the_member() {
    let fs = core(dataset(Format::Npz, 2, 0));
    let valid = fs.lookup(ROOT_INO, OsStr::new("valid")).unwrap().ino;
    let last = fs.lookup(valid, OsStr::new("img_1_of_2.npz")).unwrap();
    let mut head = [0; 18];
    fs.read(last.ino, 0, &mut head).unwrap();
    let crc = u32::from_le_bytes(head[14..18].try_into().unwrap());
    assert_eq!(fs.checksums().member_crc(8), Some(crc));

    let mut bytes = vec![0; last.size as usize];
    fs.read(last.ino, 0, &mut bytes).unwrap();
    let x_len = u64::from_le_bytes(bytes[47..55].try_into().unwrap()) as usize;
    assert_eq!(crc32fast::hash(&bytes[55..55 + x_len]), crc);
}

/// The Python of a venv with numpy and h5py, set up once per test run.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = std::env::var_os("DGENFS_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
        let python = venv.join("bin/python");
        if !python.exists() {
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        }
        // A fresh venv has neither; the probe's traceback would only be noise.
        let probe = Command::new(&python)
            .args(["-c", "import numpy, h5py"])
            .stderr(std::process::Stdio::null())
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            run(Command::new(&python).args(["-m", "pip", "install", "-q", "numpy", "h5py"]));
        }
        python
    })
}

fn run(cmd: &mut Command) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed: {status}");
}

fn mount_dataset(dlio: DlioSpec) -> TestMount {
    TestMount::new(ContentSpec::with_seed(dlio.seed), |opts| {
        opts.tree = tree_spec(dlio)
    })
}

/// Mounts `dlio` and runs the Python checks against it.
fn check_with_python(dlio: DlioSpec) {
    let m = mount_dataset(dlio);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/formats/check_dataset.py");
    let args = [
        dlio.files_train,
        dlio.files_valid,
        dlio.samples_per_file,
        dlio.subfolders,
    ];
    run(Command::new(python())
        .arg(script)
        .arg(m.handle.path())
        .arg(dlio.format.name())
        .args(args.map(|a| a.to_string())));
}

#[test]
fn numpy_loads_every_npy_and_npz_file_and_catches_a_flipped_byte() {
    if !fuse_available() {
        return;
    }
    check_with_python(dataset(Format::Npy, 2, 0));
    check_with_python(dataset(Format::Npz, 3, 0));
    check_with_python(dataset(Format::Npz, 1, 3));
}

#[test]
fn h5py_reads_records_and_labels() {
    if !fuse_available() {
        return;
    }
    check_with_python(dataset(Format::Hdf5, 3, 0));
}

#[test]
fn tfrecord_crcs_and_examples_hold() {
    if !fuse_available() {
        return;
    }
    check_with_python(dataset(Format::TfRecord, 4, 0));
    check_with_python(dataset(Format::TfRecord, 1, 4));
}

/// GB/s of reading every file of `fs` whole in 1 MiB reads on this thread.
fn read_all_rate(fs: &FsCore) -> f64 {
    let mut buf = vec![0; 1 << 20];
    let start = std::time::Instant::now();
    let mut total = 0;
    for (_, ino) in files(fs) {
        let mut pos = 0;
        while let Ok(n @ 1..) = fs.read(ino, pos, &mut buf) {
            pos += n as u64;
        }
        total += pos;
    }
    total as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// Core read speed of each format next to raw, without FUSE: the first read of every file,
/// then the median of five rounds that read every format in turn.
/// Run with `cargo test --release --test formats -- --ignored --nocapture`.
#[test]
#[ignore]
fn core_read_speed_by_format() {
    let cores: Vec<(Format, FsCore)> = Format::ALL
        .into_iter()
        .map(|format| {
            let samples = if format == Format::TfRecord { 1024 } else { 1 };
            let dlio = DlioSpec {
                format,
                files_train: 4,
                files_valid: 0,
                samples_per_file: samples,
                record_length: (128 << 20) / samples,
                record_length_stdev: 0,
                subfolders: 0,
                seed: 1,
            };
            (format, core(dlio))
        })
        .collect();
    let first: Vec<f64> = cores.iter().map(|(_, fs)| read_all_rate(fs)).collect();
    let mut later = vec![Vec::new(); cores.len()];
    for _ in 0..5 {
        for (k, (_, fs)) in cores.iter().enumerate() {
            later[k].push(read_all_rate(fs));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let raw_later = median(&mut later[0].clone());
    for (k, (format, _)) in cores.iter().enumerate() {
        let m = median(&mut later[k]);
        println!(
            "| {format} | {:.2} | {:.2} | {m:.2} | {:.2} |",
            first[k],
            first[k] / first[0],
            m / raw_later
        );
    }
}
