//! Where live mounts are found: one control socket per mount point in the runtime dir.
//!
//! A daemon listens on `<runtime>/dgenfs/<key>.sock` (key: a hash of the canonical mount
//! point) and answers every connection with its status as `key=value` lines, then closes.
//! Nothing is added to the data tree. `/run` is used as root, `$XDG_RUNTIME_DIR` otherwise.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The directory holding control sockets and daemon logs.
pub fn runtime_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/dgenfs");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => PathBuf::from(dir).join("dgenfs"),
        None => std::env::temp_dir().join(format!("dgenfs-{uid}")),
    }
}

/// The absolute mount point, resolved even when a stale mount makes `stat` fail.
pub fn canonical(path: &Path) -> PathBuf {
    if let Ok(path) = path.canonicalize() {
        return path;
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (parent.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
    }
}

/// The file name stem for `mountpoint` (canonical): 16 hex digits of an FNV-1a hash.
fn key(mountpoint: &Path) -> String {
    let hash = mountpoint
        .as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    format!("{hash:016x}")
}

/// The control socket of the mount at `mountpoint` (canonical).
pub fn socket_path(mountpoint: &Path) -> PathBuf {
    runtime_dir().join(format!("{}.sock", key(mountpoint)))
}

/// The daemon log of the mount at `mountpoint` (canonical).
pub fn log_path(mountpoint: &Path) -> PathBuf {
    runtime_dir().join(format!("{}.log", key(mountpoint)))
}

/// A daemon's status as it reported it.
#[derive(Debug, Clone, Default)]
pub struct Status(pub BTreeMap<String, String>);

impl Status {
    /// Parses `key=value` lines.
    pub fn parse(text: &str) -> Status {
        let pairs = text.lines().filter_map(|l| l.split_once('='));
        Status(pairs.map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
    }

    /// The value of `key`, or `?` when the daemon did not report it.
    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("?", String::as_str)
    }

    /// The value of `key` as a number, 0 when absent.
    pub fn num(&self, key: &str) -> f64 {
        self.get(key).parse().unwrap_or(0.0)
    }

    /// Renders the status as `key=value` lines.
    pub fn render(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }
}

/// Asks the daemon behind `socket` for its status; `Err` when nobody listens.
pub fn query(socket: &Path) -> io::Result<Status> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(Status::parse(&text))
}

/// All control sockets in the runtime dir.
pub fn sockets() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(runtime_dir()) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips() {
        let text = "a=1\nmountpoint=/mnt/x y\n";
        let status = Status::parse(text);
        assert_eq!(status.get("mountpoint"), "/mnt/x y");
        assert_eq!(status.num("a"), 1.0);
        assert_eq!(status.get("b"), "?");
        assert_eq!(status.render(), text);
    }

    #[test]
    fn keys_differ_by_path() {
        assert_ne!(key(Path::new("/mnt/a")), key(Path::new("/mnt/b")));
        assert_eq!(key(Path::new("/mnt/a")).len(), 16);
    }
}
