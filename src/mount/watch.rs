//! A watcher process that unmounts a mount whose serving process died without unmounting.
//!
//! `fusermount3`'s auto-unmount looks once, right after the serving process is gone, and
//! unmounts only if opening the mount point then fails with `ENOTCONN`. With FUSE over
//! io_uring the kernel drops the connection a moment later (the rings are torn down by a
//! worker after the process exits), so that one look finds the mount still connected and
//! a SIGKILLed process left a stale mount behind. The watcher looks again every
//! [`POLL`] for up to [`PATIENCE`], and detaches the mount once it reports `ENOTCONN`.
//!
//! The watcher is a `fork` of the mounting process that runs only async-signal-safe system
//! calls (no allocation, no locks), so forking a multi-threaded process (Python) is sound.
//! It closes every inherited descriptor but its pipe, so it never keeps the `/dev/fuse`
//! connection alive itself. It does not replace `fusermount3`; both may run.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// How often the watcher looks at the mount point once the mounting process is gone.
pub const POLL: Duration = Duration::from_millis(20);

/// How long the watcher keeps looking before it leaves the mount alone.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// `f_type` of a FUSE filesystem in `statfs`.
const FUSE_SUPER_MAGIC: libc::c_long = 0x6573_5546;

/// The byte that tells the watcher the mount was unmounted cleanly.
const DISARM: u8 = b'u';

/// The mounting side of a watcher: dropping it without [`disarm`](Self::disarm) leaves the
/// watcher waiting for this process to exit.
#[derive(Debug)]
pub struct UnmountWatch {
    pid: libc::pid_t,
    pipe: Option<OwnedFd>,
}

impl UnmountWatch {
    /// Forks a watcher for `mountpoint`.
    pub fn start(mountpoint: &Path) -> io::Result<UnmountWatch> {
        let path = CString::new(mountpoint.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let devnull = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        let (read_end, write_end) = pipe()?;

        // SAFETY: the child runs only `watch`, which makes async-signal-safe system calls
        // on memory prepared before the fork, and ends with `_exit`.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => watch(&path, devnull.as_raw_fd(), read_end.as_raw_fd()),
            pid => Ok(UnmountWatch {
                pid,
                pipe: Some(write_end),
            }),
        }
    }

    /// Tells the watcher the mount is gone and reaps it.
    pub fn disarm(&mut self) {
        let Some(pipe) = self.pipe.take() else {
            return;
        };
        // SAFETY: writes one byte from a live local to a descriptor this struct owns.
        unsafe { libc::write(pipe.as_raw_fd(), [DISARM].as_ptr().cast(), 1) };
        drop(pipe);
        // SAFETY: `pid` is this process's child, not yet reaped (the pipe was still open).
        unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), 0) };
    }
}

/// A pipe whose ends close on exec.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just made these descriptors and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The watcher's whole life: wait for the parent to go, then unmount a stale mount.
fn watch(path: &CString, devnull: libc::c_int, pipe: libc::c_int) -> ! {
    // SAFETY: every call below is async-signal-safe and takes only memory that was made
    // before the fork and is not freed in this process.
    unsafe {
        libc::dup2(devnull, 0);
        libc::dup2(devnull, 1);
        libc::dup2(devnull, 2);
        libc::dup2(pipe, 3);
        libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);

        // The write end is now only in the parent: read returns 0 when it exits.
        let mut byte = 0u8;
        let n = loop {
            let n = libc::read(3, (&raw mut byte).cast(), 1);
            if n >= 0 || *libc::__errno_location() != libc::EINTR {
                break n;
            }
        };
        if n == 1 && byte == DISARM {
            libc::_exit(0);
        }

        let rounds = PATIENCE.as_millis() / POLL.as_millis();
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: POLL.as_nanos() as libc::c_long,
        };
        for _ in 0..rounds {
            let mut fs: libc::statfs = std::mem::zeroed();
            if libc::statfs(path.as_ptr(), &mut fs) == 0 {
                if fs.f_type != FUSE_SUPER_MAGIC {
                    libc::_exit(0);
                }
            } else {
                let err = *libc::__errno_location();
                if err == libc::ENOTCONN || err == libc::ECONNABORTED {
                    libc::umount2(path.as_ptr(), libc::MNT_DETACH);
                    libc::_exit(0);
                }
                if err == libc::ENOENT {
                    libc::_exit(0);
                }
            }
            libc::nanosleep(&pause, std::ptr::null_mut());
        }
        libc::_exit(1)
    }
}
