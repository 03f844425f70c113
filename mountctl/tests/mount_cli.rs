//! `mountctl mount`, `status` and `umount` as a user runs them: daemon, signals, stale mounts.
//!
//! Each test mounts on its own temp dir; the [`CliMount`] guard runs `mountctl umount` and
//! then a lazy umount2 on drop. Tests skip with a printed reason only when `/dev/fuse` is
//! absent.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const MOUNTCTL: &str = env!("CARGO_BIN_EXE_mountctl");

fn fuse_available() -> bool {
    let present = Path::new("/dev/fuse").exists();
    if !present {
        eprintln!("skipping: /dev/fuse is absent on this machine");
    }
    present
}

fn mountctl(args: &[&str]) -> Output {
    Command::new(MOUNTCTL)
        .args(args)
        .output()
        .expect("mountctl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A daemon mount on a temp dir, unmounted on drop whatever state it is in.
struct CliMount {
    path: PathBuf,
    _dir: TempDir,
}

impl CliMount {
    fn new(extra: &[&str]) -> (CliMount, Output) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().canonicalize().unwrap();
        let mut args = vec!["mount", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = mountctl(&args);
        (CliMount { path, _dir: dir }, out)
    }

    fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// The daemon's pid as `mountctl status` reports it.
    fn pid(&self) -> i32 {
        let out = mountctl(&["status", self.arg()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let pid = stdout
            .split("pid ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next());
        pid.and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {stdout}"))
    }
}

impl Drop for CliMount {
    fn drop(&mut self) {
        let _ = mountctl(&["umount", self.arg()]);
        if is_mounted(&self.path) {
            let c = std::ffi::CString::new(self.arg()).unwrap();
            // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let needle = format!(" {} ", path.display());
    info.lines().any(|l| l.contains(&needle))
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn mount_prints_seed_and_summary_and_serves_generate_bytes() {
    if !fuse_available() {
        return;
    }
    let (m, out) = CliMount::new(&["--size", "10M", "--file-size", "3M", "--seed", "77"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("seed: 77\nmounted "), "{stdout}");
    assert!(stdout.contains("4 files of 3 MiB"), "{stdout}");

    let file = std::fs::read(m.path.join("file_1")).unwrap();
    let generated = mountctl(&["generate", "--size", "3M", "--offset", "3M", "--seed", "77"]);
    assert!(
        file == generated.stdout,
        "file_1 differs from mountctl generate"
    );
    assert_eq!(
        std::fs::metadata(m.path.join("file_3")).unwrap().len(),
        1 << 20
    );

    let status = text(&mountctl(&["status"]).stdout);
    assert!(
        status.contains(m.arg()) && status.contains("seed 77"),
        "{status}"
    );
    assert!(status.contains("served: 3 MiB"), "{status}");
}

#[test]
fn sigterm_unmounts_cleanly() {
    if !fuse_available() {
        return;
    }
    let (m, out) = CliMount::new(&["--size", "1M", "--files", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pid = m.pid();
    // SAFETY: kill with a pid of our own daemon has no memory preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    wait_until("the daemon to exit", || !alive(pid));
    assert!(!is_mounted(&m.path), "still mounted after SIGTERM");
}

#[test]
fn kill_9_then_umount_leaves_no_stale_mount() {
    if !fuse_available() {
        return;
    }
    let (m, out) = CliMount::new(&["--size", "1M", "--files", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pid = m.pid();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_until("the daemon to die", || !alive(pid));
    let err = std::fs::metadata(m.path.join("file_0")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "{err}");
    let status = text(&mountctl(&["status", m.arg()]).stdout);
    assert!(status.contains("no mountctl daemon"), "{status}");

    let out = mountctl(&["umount", m.arg()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!is_mounted(&m.path), "stale mount left behind");
    assert!(std::fs::read_dir(&m.path).is_ok());
    let status = mountctl(&["status", m.arg()]);
    assert!(!status.status.success());
}

#[test]
fn errors_are_one_line() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let cases = [
        (vec!["mount", missing.to_str().unwrap()], "does not exist"),
        (vec!["mount", file.to_str().unwrap()], "is not a directory"),
        (
            vec!["mount", dir.path().to_str().unwrap(), "--compress", "100"],
            "invalid compress",
        ),
        (
            vec!["mount", dir.path().to_str().unwrap(), "--size", "10X"],
            "invalid size",
        ),
        (
            vec![
                "mount",
                dir.path().to_str().unwrap(),
                "--files-per-dir",
                "1",
            ],
            "files-per-dir",
        ),
        (
            vec!["mount", dir.path().to_str().unwrap(), "--io-uring", "yes"],
            "invalid io-uring 'yes'",
        ),
        (
            vec!["umount", dir.path().to_str().unwrap()],
            "is not mounted",
        ),
    ];
    for (args, expected) in cases {
        let out = mountctl(&args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("mountctl: ") && stderr.contains(expected),
            "{stderr}"
        );
    }
}

#[test]
fn second_mount_on_the_same_point_is_refused() {
    if !fuse_available() {
        return;
    }
    let (m, out) = CliMount::new(&["--size", "1M"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = mountctl(&["mount", m.arg(), "--size", "1M"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already a mount point"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        m.path.join("file_0").exists(),
        "the first mount must survive"
    );
}

#[test]
fn foreground_mount_stops_on_sigint() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    let mut child = Command::new(MOUNTCTL)
        .args([
            "mount",
            path.to_str().unwrap(),
            "--foreground",
            "--size",
            "1M",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the foreground mount", || path.join("file_0").exists());
    // SAFETY: the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!is_mounted(&path));
}
