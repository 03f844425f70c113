//! `mountctl generate --path`: one file of a DLIO tree, byte for byte as the mount serves it.

use std::ffi::OsStr;
use std::process::{Command, Output};

use dgenfs::dlio::DlioSpec;
use dgenfs::format::Format;
use dgenfs::fs::FsCore;
use dgenfs::tree::{Tree, TreeSpec, ROOT_INO};
use dgenfs::{ContentSpec, Generator};

fn mountctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mountctl"))
        .args(args)
        .output()
        .expect("mountctl runs")
}

/// The bytes of `train/<name>` as the filesystem core serves them.
fn served(spec: DlioSpec, name: &str) -> Vec<u8> {
    let tree = TreeSpec {
        dlio: Some(spec),
        ..TreeSpec::default()
    };
    let generator = Generator::new(&ContentSpec::with_seed(spec.seed)).unwrap();
    let fs = FsCore::new(Tree::new(&tree).unwrap(), generator, 0, 0);
    let train = fs.lookup(ROOT_INO, OsStr::new("train")).unwrap().ino;
    let attr = fs.lookup(train, OsStr::new(name)).unwrap();
    let mut buf = vec![0; attr.size as usize];
    assert_eq!(fs.read(attr.ino, 0, &mut buf).unwrap(), buf.len());
    buf
}

#[test]
fn path_emits_the_file_the_mount_serves() {
    let args = [
        "generate",
        "--seed",
        "9",
        "--format",
        "tfrecord",
        "--files-train",
        "3",
        "--samples-per-file",
        "4",
        "--record-length",
        "5000",
        "--record-length-stdev",
        "900",
        "--path",
        "train/img_2_of_3.tfrecord",
    ];
    let out = mountctl(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec = DlioSpec {
        format: Format::TfRecord,
        files_train: 3,
        files_valid: 0,
        samples_per_file: 4,
        record_length: 5000,
        record_length_stdev: 900,
        subfolders: 0,
        seed: 9,
    };
    assert_eq!(out.stdout, served(spec, "img_2_of_3.tfrecord"));
}

#[test]
fn path_errors_are_one_line() {
    let out = mountctl(&["generate", "--seed", "1", "--path", "train/img_0_of_8.raw"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--path needs a DLIO tree"), "{err}");
    let out = mountctl(&[
        "generate",
        "--seed",
        "1",
        "--preset",
        "unet3d",
        "--path",
        "train/img_999_of_168.npz",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no file train/img_999_of_168.npz"), "{err}");
    let out = mountctl(&[
        "generate", "--format", "npz", "--layout", "plain", "--size", "1",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid layout 'plain'"));
}
