//! `mountctl generate` as a user runs it: bytes, seeds and errors.

use std::process::{Command, Output};

use dgenfs::{ContentSpec, Generator};

fn mountctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mountctl"))
        .args(args)
        .output()
        .expect("mountctl runs")
}

fn in_process(spec: ContentSpec, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    Generator::new(&spec).unwrap().fill(offset, &mut buf);
    buf
}

#[test]
fn output_equals_in_process_generation() {
    let out = mountctl(&[
        "generate",
        "--size",
        "3MiB",
        "--offset",
        "1000",
        "--compress",
        "2.5",
        "--dedup",
        "3",
        "--dedup-unit",
        "8K",
        "--seed",
        "7",
        "--threads",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec = ContentSpec {
        seed: 7,
        compress: 2.5,
        dedup: 3.0,
        dedup_unit: 8192,
    };
    assert!(out.stdout == in_process(spec, 1000, 3 << 20));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "seed: 7");
}

#[test]
fn same_seed_same_bytes_and_a_missing_seed_is_reported() {
    let a = mountctl(&["generate", "--size", "1M", "--seed", "7"]);
    let b = mountctl(&["generate", "--size", "1M", "--seed", "7", "--threads", "1"]);
    assert!(a.stdout == b.stdout && a.stdout.len() == 1 << 20);

    let random = mountctl(&["generate", "--size", "64K"]);
    let stderr = String::from_utf8_lossy(&random.stderr);
    let seed: u64 = stderr
        .trim()
        .strip_prefix("seed: ")
        .unwrap()
        .parse()
        .unwrap();
    let again = mountctl(&["generate", "--size", "64K", "--seed", &seed.to_string()]);
    assert!(again.stdout == random.stdout);
}

#[test]
fn writes_a_file_with_output_flag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    let out = mountctl(&[
        "generate",
        "--size",
        "100000",
        "--seed",
        "3",
        "-o",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(std::fs::read(&path).unwrap() == in_process(ContentSpec::with_seed(3), 0, 100_000));
}

#[test]
fn bad_values_give_one_line_naming_the_flag() {
    let cases: [(&[&str], &str); 6] = [
        (&["--size", "10X"], "--size"),
        (&["--size", "1G", "--compress", "0.5"], "--compress"),
        (&["--size", "1G", "--compress", "65"], "--compress"),
        (&["--size", "1G", "--dedup", "-1"], "--dedup"),
        (&["--size", "1G", "--dedup-unit", "3000"], "--dedup-unit"),
        (&["--size", "1G", "--seed", "x"], "--seed"),
    ];
    for (args, flag) in cases {
        let mut full = vec!["generate"];
        full.extend_from_slice(args);
        let out = mountctl(&full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag) && !stderr.contains("panicked"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
}
