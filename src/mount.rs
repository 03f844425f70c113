//! Mounting a tree in-process: [`mount`] returns once the kernel serves it.
//!
//! This is the API that `mountctl` and the Python module share. It checks the mount point
//! and `/dev/fuse` first, so the usual mistakes become one clear [`MountError`] rather
//! than a kernel message; it starts a multi-threaded fuser session with a cloned
//! `/dev/fuse` fd per thread, and unmounts when the [`MountHandle`] is dropped. It does
//! not daemonize or keep a registry of mounts; `mountctl` does that.

use std::collections::VecDeque;
use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fuser::{BackgroundSession, Config, MountOption, SessionACL};

use crate::cache::{Binder, BlockCache, CacheConfig, CacheError, CacheStats, NumaMode};
use crate::content::Generator;
use crate::fs::fuse::FuseAdapter;
use crate::fs::uring::{self, InitSignal, RingServer};
pub use crate::fs::uring::{UringMode, UringSched};
use crate::fs::FsCore;
use crate::spec::{ContentSpec, SpecError};
use crate::tree::{Tree, TreeSpec};

mod watch;
use watch::UnmountWatch;

/// The source name of every dgenfs mount in `/proc/self/mountinfo`.
pub const FS_NAME: &str = "dgenfs";

/// How far back [`MountStats::recent_bytes_per_sec`] looks.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Everything that defines one mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// An existing, empty directory to mount on.
    pub mountpoint: PathBuf,
    /// What the files hold.
    pub content: ContentSpec,
    /// How many files of which sizes, in how many directories.
    pub tree: TreeSpec,
    /// Threads reading `/dev/fuse`; `None` means one per core, at least 2. With io_uring
    /// queues (see [`uring`](Self::uring)) each CPU also has its queue thread.
    pub threads: Option<usize>,
    /// Serve reads through the page cache (`KEEP_CACHE`) instead of direct I/O (default off).
    pub kernel_cache: bool,
    /// Let users other than the mounting one read the tree (default off).
    pub allow_other: bool,
    /// Unmount when this process dies, even by SIGKILL (default off): through `fusermount3`
    /// and a watcher process that retries (see [`watch`]).
    pub auto_unmount: bool,
    /// Block cache and read-ahead; a capacity of 0 turns both off (default off).
    ///
    /// Off by default because on the machines measured (docs/BENCHMARKS.md, "Cache") filling
    /// each read on the session thread was faster than serving it from the cache, with or
    /// without dedup: the generator runs at about the speed of the copy to the reader.
    pub cache: CacheConfig,
    /// How the cache spreads over NUMA nodes (default `auto`).
    pub numa: NumaMode,
    /// Whether requests come through per-CPU io_uring queues (default `auto`: when the
    /// kernel offers it).
    pub uring: UringMode,
    /// Scheduling class of the io_uring queue threads (default `idle`).
    pub uring_sched: UringSched,
}

impl MountOptions {
    /// Options for `mountpoint` with default tree and settings and the given content.
    pub fn new(mountpoint: impl Into<PathBuf>, content: ContentSpec) -> MountOptions {
        MountOptions {
            mountpoint: mountpoint.into(),
            content,
            tree: TreeSpec::default(),
            threads: None,
            kernel_cache: false,
            allow_other: false,
            auto_unmount: false,
            cache: CacheConfig {
                capacity: 0,
                ..CacheConfig::default()
            },
            numa: NumaMode::Auto,
            uring: UringMode::Auto,
            uring_sched: UringSched::Idle,
        }
    }

    /// The session threads these options ask for.
    pub fn thread_count(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        self.threads.unwrap_or(cores.max(2))
    }
}

/// Why a mount or unmount failed; each message is one line naming the path or field.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A spec value is out of range.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The mount point does not exist.
    #[error("mount point {0} does not exist")]
    MountpointMissing(PathBuf),
    /// The mount point is not a directory.
    #[error("mount point {0} is not a directory")]
    NotADirectory(PathBuf),
    /// Something is already mounted there.
    #[error("{0} is already a mount point; run `mountctl umount {0}` first")]
    AlreadyMounted(PathBuf),
    /// A mount whose daemon died is still there.
    #[error(
        "{0} holds a stale mount (transport endpoint is not connected); run `mountctl umount {0}`"
    )]
    StaleMount(PathBuf),
    /// The FUSE device cannot be used.
    #[error("cannot use /dev/fuse: {0}")]
    FuseUnavailable(String),
    /// The cache could not be set up.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// `--io-uring on` on a kernel that does not offer it.
    #[error(
        "invalid io-uring 'on': the kernel does not offer FUSE over io_uring (Linux 6.14 or \
         later with `echo Y > {}`)",
        crate::fs::uring::ENABLE_PARAM
    )]
    UringUnavailable,
    /// The threads option is 0.
    #[error("invalid threads '0': expected at least 1")]
    NoThreads,
    /// Any other system call failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done, as a verb phrase.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
}

/// Counters of a live mount.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MountStats {
    /// Bytes returned by reads since the mount.
    pub bytes_read: u64,
    /// Read requests served since the mount.
    pub reads: u64,
    /// Files opened since the mount.
    pub opens: u64,
    /// Time since the mount went live.
    pub uptime: Duration,
    /// Read throughput over the last few seconds (since the previous call at most 5 s ago).
    pub recent_bytes_per_sec: f64,
}

/// A live mount; dropping it unmounts.
#[derive(Debug)]
pub struct MountHandle {
    path: PathBuf,
    session: Option<BackgroundSession>,
    ring: Option<RingServer>,
    core: Arc<FsCore>,
    stats: StatsReader,
    auto_unmount: bool,
    /// With auto-unmount: unmounts a stale mount after this process died (see [`watch`]).
    watch: Option<UnmountWatch>,
}

/// Reads the counters of a mount from any thread; cloning it is cheap.
#[derive(Debug, Clone)]
pub struct StatsReader {
    core: Arc<FsCore>,
    started: Instant,
    samples: Arc<Mutex<VecDeque<(Instant, u64)>>>,
}

/// Mounts the tree of `opts` and returns once the kernel serves it.
pub fn mount(opts: &MountOptions) -> Result<MountHandle, MountError> {
    let tree = Tree::new(&opts.tree)?;
    let generator = Generator::new(&opts.content)?;
    if opts.threads == Some(0) {
        return Err(MountError::NoThreads);
    }
    let path = check_mountpoint(&opts.mountpoint)?;
    check_dev_fuse()?;

    // SAFETY: geteuid and getegid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let core = Arc::new(with_cache(FsCore::new(tree, generator, uid, gid), opts)?);
    let uring = match opts.uring {
        UringMode::Off => false,
        UringMode::Auto => uring::kernel_offers(),
        UringMode::On if uring::kernel_offers() => true,
        UringMode::On => return Err(MountError::UringUnavailable),
    };
    let init = Arc::new(InitSignal::default());
    let adapter = FuseAdapter::new(Arc::clone(&core), opts.kernel_cache)
        .with_uring(uring.then(|| Arc::clone(&init)));
    let io_err = |action, source| MountError::Io {
        action,
        path: path.clone(),
        source,
    };
    let session = fuser::Session::new(adapter, &path, &session_config(opts))
        .map_err(|source| io_err("mount on", source))?;
    let ring = match uring {
        false => None,
        true => {
            let dev = session
                .as_fd()
                .try_clone_to_owned()
                .map_err(|source| io_err("serve io_uring queues of", source))?;
            let server = RingServer::start(
                dev,
                Arc::clone(&core),
                !opts.kernel_cache,
                opts.uring_sched,
                init,
            )
            .map_err(|source| io_err("serve io_uring queues of", source))?;
            Some(server)
        }
    };
    let session = session
        .spawn()
        .map_err(|source| io_err("start the session of", source))?;
    tracing::info!(
        path = %path.display(),
        threads = opts.thread_count(),
        io_uring = uring,
        "mounted"
    );

    let watch = match opts.auto_unmount {
        true => Some(UnmountWatch::start(&path).map_err(|source| io_err("watch", source))?),
        false => None,
    };
    let stats = StatsReader::new(Arc::clone(&core));
    let auto_unmount = opts.auto_unmount;
    Ok(MountHandle {
        path,
        session: Some(session),
        ring,
        core,
        stats,
        auto_unmount,
        watch,
    })
}

/// Puts a block cache behind `core` unless the options turn it off.
fn with_cache(core: FsCore, opts: &MountOptions) -> Result<FsCore, MountError> {
    // A node number is checked against the machine even with the cache off, so that a
    // wrong `--numa` is an error rather than silently ignored.
    let binder = match (opts.cache.capacity, opts.numa) {
        (0, NumaMode::Auto | NumaMode::Uma) => return Ok(core),
        _ => Binder::detect(opts.numa).map_err(CacheError::from)?,
    };
    if opts.cache.capacity == 0 {
        return Ok(core);
    }
    let cache = BlockCache::new(core.generator().clone(), opts.cache, binder)?;
    tracing::info!(
        capacity = opts.cache.capacity,
        nodes = cache.plan().nodes().len(),
        "block cache on"
    );
    Ok(core.with_cache(cache))
}

fn session_config(opts: &MountOptions) -> Config {
    let mut config = Config::default();
    config.n_threads = Some(opts.thread_count());
    config.clone_fd = true;
    config.mount_options = vec![
        MountOption::FSName(FS_NAME.to_owned()),
        MountOption::RO,
        MountOption::NoAtime,
        MountOption::DefaultPermissions,
    ];
    if opts.auto_unmount {
        config.mount_options.push(MountOption::AutoUnmount);
    }
    config.acl = match (opts.allow_other, opts.auto_unmount) {
        (true, _) => SessionACL::All,
        // fusermount3 needs allow_other for auto_unmount; fuser still admits only root
        // and the owner, which is what the user asked for.
        (false, true) => SessionACL::RootAndOwner,
        (false, false) => SessionACL::Owner,
    };
    config
}

/// The canonical mount point, or why nothing can be mounted there.
fn check_mountpoint(path: &Path) -> Result<PathBuf, MountError> {
    let meta = std::fs::metadata(path).map_err(|err| match err.raw_os_error() {
        Some(libc::ENOENT) => MountError::MountpointMissing(path.to_owned()),
        Some(libc::ENOTCONN) => MountError::StaleMount(path.to_owned()),
        _ => MountError::Io {
            action: "inspect",
            path: path.to_owned(),
            source: err,
        },
    })?;
    if !meta.is_dir() {
        return Err(MountError::NotADirectory(path.to_owned()));
    }
    let canonical = path.canonicalize().map_err(|source| MountError::Io {
        action: "resolve",
        path: path.to_owned(),
        source,
    })?;
    if is_mount_point(&canonical) {
        return Err(MountError::AlreadyMounted(canonical));
    }
    Ok(canonical)
}

/// Opens `/dev/fuse` once so that a missing device or a permission problem is named.
fn check_dev_fuse() -> Result<(), MountError> {
    match OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Err(MountError::FuseUnavailable(
            "device missing (load the fuse module, or pass --device /dev/fuse to the container)"
                .to_owned(),
        )),
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => Err(
            MountError::FuseUnavailable("permission denied (mount as root)".to_owned()),
        ),
        Err(err) => Err(MountError::FuseUnavailable(err.to_string())),
    }
}

/// Whether `path` (canonical) is the mount point of some mount in this namespace.
pub fn is_mount_point(path: &Path) -> bool {
    mount_points().iter().any(|(point, _)| point == path)
}

/// Mount points in `/proc/self/mountinfo` with their source name, in mount order.
pub fn mount_points() -> Vec<(PathBuf, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines().filter_map(parse_mountinfo_line).collect()
}

/// Mount point and source of one mountinfo line.
fn parse_mountinfo_line(line: &str) -> Option<(PathBuf, String)> {
    let fields: Vec<&str> = line.split(' ').collect();
    let point = unescape_octal(fields.get(4)?);
    let dash = fields.iter().position(|f| *f == "-")?;
    let source = unescape_octal(fields.get(dash + 2)?);
    Some((PathBuf::from(point), source))
}

/// Undoes the `\040`-style escapes of mountinfo.
fn unescape_octal(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok());
        match code.and_then(|d| u8::from_str_radix(d, 8).ok()) {
            Some(byte) if bytes[i] == b'\\' => (out.push(byte), i += 4),
            _ => (out.push(bytes[i]), i += 1),
        };
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts `path` with umount2, detaching lazily when it is busy.
///
/// This also removes stale mounts whose daemon died. It does not stop any daemon.
pub fn force_unmount(path: &Path) -> Result<(), MountError> {
    let io_err = |source| MountError::Io {
        action: "unmount",
        path: path.to_owned(),
        source,
    };
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io_err(io::Error::from(io::ErrorKind::InvalidInput)))?;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::umount2(c_path.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EBUSY) {
        return Err(io_err(err));
    }
    // SAFETY: as above.
    match unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) } {
        0 => Ok(()),
        _ => Err(io_err(io::Error::last_os_error())),
    }
}

impl MountHandle {
    /// The canonical mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tree being served.
    pub fn tree(&self) -> &Tree {
        self.core.tree()
    }

    /// The content spec being served.
    pub fn content(&self) -> &ContentSpec {
        self.core.generator().spec()
    }

    /// Whether the session still runs; false once someone unmounted it from outside.
    pub fn is_mounted(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| !s.guard.is_finished())
    }

    /// Counters and recent throughput.
    pub fn stats(&self) -> MountStats {
        self.stats.stats()
    }

    /// Whether requests come through per-CPU io_uring queues.
    pub fn io_uring(&self) -> bool {
        self.ring.as_ref().is_some_and(RingServer::accepted)
    }

    /// A reader of this mount's counters that other threads can keep.
    pub fn stats_reader(&self) -> StatsReader {
        self.stats.clone()
    }

    /// Unmounts and waits for the session threads to end.
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<(), MountError> {
        let result = self.end_session();
        // The ring threads end when the kernel drops the connection, which unmounting did.
        if let Some(ring) = self.ring.take() {
            ring.join(Duration::from_secs(5));
        }
        // A mount that failed to unmount stays watched: once this process exits, the
        // watcher clears it.
        if result.is_ok() {
            if let Some(watch) = self.watch.as_mut() {
                watch.disarm();
            }
        }
        result
    }

    fn end_session(&mut self) -> Result<(), MountError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let io_err = |source| MountError::Io {
            action: "unmount",
            path: self.path.clone(),
            source,
        };
        if session.guard.is_finished() {
            return session.join().map_err(io_err);
        }
        if self.auto_unmount {
            // With auto_unmount, fuser's own unmount goes through fusermount3 and was seen
            // to hang; unmounting directly first lets the session end by itself.
            force_unmount(&self.path)?;
            return session.join().map_err(io_err);
        }
        match session.umount_and_join() {
            Ok(()) => Ok(()),
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) => force_unmount(&self.path),
            Err(err) => Err(io_err(err)),
        }
    }
}

impl StatsReader {
    /// Starts counting time and throughput from now.
    fn new(core: Arc<FsCore>) -> StatsReader {
        let started = Instant::now();
        let samples = Arc::new(Mutex::new(VecDeque::from([(started, 0)])));
        StatsReader {
            core,
            started,
            samples,
        }
    }

    /// Counters of the block cache per node; `None` when the cache is off.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.core.cache().map(|c| c.stats())
    }

    /// Counters and recent throughput.
    pub fn stats(&self) -> MountStats {
        let counters = self.core.counters();
        let (now, bytes) = (Instant::now(), counters.bytes());
        MountStats {
            bytes_read: bytes,
            reads: counters.reads(),
            opens: counters.opens(),
            uptime: now - self.started,
            recent_bytes_per_sec: self.sample_rate(now, bytes),
        }
    }

    /// Records `(now, bytes)` and returns the rate since the oldest sample in the window.
    fn sample_rate(&self, now: Instant, bytes: u64) -> f64 {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        while samples.len() > 1 && now - samples[1].0 >= RATE_WINDOW {
            samples.pop_front();
        }
        let &(then, before) = samples.front().unwrap_or(&(now, bytes));
        if samples
            .back()
            .is_none_or(|&(last, _)| now - last >= Duration::from_millis(500))
        {
            samples.push_back((now, bytes));
        }
        let secs = (now - then).as_secs_f64();
        if secs > 0.0 {
            bytes.saturating_sub(before) as f64 / secs
        } else {
            0.0
        }
    }
}

impl Drop for MountHandle {
    fn drop(&mut self) {
        if let Err(err) = self.shut_down() {
            tracing::warn!(%err, "unmount on drop failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_parse_with_escapes() {
        let line = "36 35 0:30 / /mnt/a\\040b rw,nosuid - fuse dgenfs rw,user_id=0";
        let (point, source) = parse_mountinfo_line(line).unwrap();
        assert_eq!(point, PathBuf::from("/mnt/a b"));
        assert_eq!(source, "dgenfs");
    }

    #[test]
    fn missing_mountpoint_is_named() {
        let opts = MountOptions::new("/nonexistent/dgenfs", ContentSpec::with_seed(1));
        let err = mount(&opts).unwrap_err();
        assert!(matches!(err, MountError::MountpointMissing(_)), "{err}");
    }
}
