//! `mountctl umount`: stop a mount's daemon, or remove a mount whose daemon is gone.
//!
//! A live daemon gets SIGTERM and unmounts by itself; when it does not within a few
//! seconds, or when there is no daemon (killed, or an in-process mount of another
//! program), the mount point is unmounted with umount2, lazily if busy. This also clears
//! stale mounts that answer "Transport endpoint is not connected".

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use dgenfs::mount::{force_unmount, is_mount_point};

use crate::registry;

/// How long a daemon has to unmount after SIGTERM before umount2 steps in.
const DAEMON_GRACE: Duration = Duration::from_secs(5);

/// Flags of `mountctl umount`.
#[derive(Debug, Args)]
pub struct UmountArgs {
    /// The mount point to unmount
    pub mountpoint: PathBuf,
}

/// Runs `mountctl umount`.
pub fn run(args: &UmountArgs) -> Result<()> {
    let path = registry::canonical(&args.mountpoint);
    let socket = registry::socket_path(&path);
    let daemon = registry::query(&socket)
        .ok()
        .and_then(|s| s.get("pid").parse::<i32>().ok());
    if let Some(pid) = daemon {
        stop_daemon(pid, &path);
    }
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(registry::log_path(&path));
    if is_mount_point(&path) {
        force_unmount(&path)?;
    } else if daemon.is_none() {
        bail!("{} is not mounted", path.display());
    }
    println!("unmounted {}", path.display());
    Ok(())
}

/// Sends SIGTERM and waits until the daemon has exited or the grace time is over.
fn stop_daemon(pid: i32, path: &Path) {
    // SAFETY: kill has no memory preconditions; a wrong pid yields ESRCH, nothing else.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return;
    }
    let start = Instant::now();
    while start.elapsed() < DAEMON_GRACE {
        // SAFETY: signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::warn!(pid, path = %path.display(), "daemon did not exit after SIGTERM");
}
