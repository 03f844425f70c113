//! `mountctl mount`: serve a tree in the foreground, or start a detached daemon that does.
//!
//! Without `--foreground` the command re-executes itself with a hidden `--daemon-child`
//! flag in a new session, reads the child's stdout until it reports `ready` or an error,
//! and exits; the child's stderr goes to a log in the runtime dir. The daemon unmounts and
//! exits 0 on SIGINT, SIGTERM or SIGHUP, and exits by itself when unmounted from outside.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use clap::Args;
use dgenfs::cache::{CacheConfig, CacheStats, NumaMode};
use dgenfs::mount::{mount, MountHandle, MountOptions, StatsReader, UringMode, UringSched};
use dgenfs::tree::{FileSizing, TreeSpec};

use crate::args::{parse_size, ContentArgs};
use crate::dataset::DatasetArgs;
use crate::registry::{self, Status};

/// Shown after `mountctl mount --help`.
pub const EXAMPLES: &str = "Examples:
  mountctl mount /mnt/synth --size 10T --compress 2 --dedup 1.5
  dd if=/mnt/synth/dir_00/file_00000 of=/dev/null bs=1M
  mountctl status /mnt/synth
  mountctl umount /mnt/synth";

/// Flags of `mountctl mount`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// Directory to mount on; it must exist
    pub mountpoint: PathBuf,

    #[command(flatten)]
    pub tree: TreeArgs,

    #[command(flatten)]
    pub content: ContentArgs,

    #[command(flatten)]
    pub dataset: DatasetArgs,

    /// Stay attached and log to stderr (filter with MOUNTCTL_LOG or RUST_LOG)
    #[arg(long)]
    pub foreground: bool,

    /// Threads reading /dev/fuse (default: one per core, at least 2); with io_uring queues
    /// they take only what the kernel does not send through the queues (forgets, interrupts)
    #[arg(long)]
    pub threads: Option<usize>,

    /// Let users other than the mounting one read the tree
    #[arg(long)]
    pub allow_other: bool,

    /// Serve reads through the page cache (KEEP_CACHE) instead of direct I/O, for re-reads
    #[arg(long)]
    pub kernel_cache: bool,

    /// Have fusermount3 (package fuse3) unmount the tree if the daemon dies
    #[arg(long)]
    pub auto_unmount: bool,

    /// Memory for the block cache and read-ahead, e.g. 256M, 1G; 0 (the default) turns both
    /// off, which measured faster on small machines
    #[arg(long, default_value = "0", value_parser = parse_size)]
    pub cache: u64,

    /// NUMA placement: auto (a cache shard and pool per node), uma (one), or a node number
    #[arg(long, default_value = "auto")]
    pub numa: NumaMode,

    /// Serve requests through per-CPU io_uring queues: auto (when the kernel offers it:
    /// Linux 6.14+ with /sys/module/fuse/parameters/enable_uring on), on, or off
    #[arg(long = "io-uring", default_value = "auto")]
    pub io_uring: UringMode,

    /// Scheduling class of the io_uring queue threads: idle (a reader's CPU counts as idle
    /// while its queue thread answers, so the reader is woken where it ran) or normal
    #[arg(long = "uring-sched", default_value = "idle")]
    pub uring_sched: UringSched,

    /// Run as the detached daemon and report readiness on stdout
    #[arg(long, hide = true)]
    pub daemon_child: bool,
}

/// Flags that shape the tree.
#[derive(Debug, Clone, Args)]
pub struct TreeArgs {
    /// Total size of all files, e.g. 10T, 500G, 4GB
    #[arg(long, default_value = "1T", value_parser = parse_size)]
    pub size: u64,

    /// Size of each file; the last file takes the remainder
    #[arg(long, default_value = "1G", value_parser = parse_size, conflicts_with = "files")]
    pub file_size: u64,

    /// Number of files, instead of --file-size (the size is split evenly)
    #[arg(long)]
    pub files: Option<u64>,

    /// Entries per directory; more files nest into subdirectories
    #[arg(long, default_value = "1000")]
    pub files_per_dir: u64,
}

impl TreeArgs {
    /// The tree spec these flags describe.
    pub fn to_spec(&self) -> TreeSpec {
        let sizing = match self.files {
            Some(n) => FileSizing::Files(n),
            None => FileSizing::FileSize(self.file_size),
        };
        TreeSpec {
            size: self.size,
            sizing,
            files_per_dir: self.files_per_dir,
            dlio: None,
        }
    }
}

/// Runs `mountctl mount`.
pub fn run(args: &MountArgs) -> Result<()> {
    if args.foreground || args.daemon_child {
        let result = serve(args);
        if let (Err(err), true) = (&result, args.daemon_child) {
            println!("err {err:#}");
        }
        result
    } else {
        spawn_daemon(args)
    }
}

fn options(args: &MountArgs) -> Result<MountOptions> {
    let content = args.content.to_spec();
    let mut tree = args.tree.to_spec();
    tree.dlio = args.dataset.to_spec(content.seed)?;
    Ok(MountOptions {
        mountpoint: args.mountpoint.clone(),
        content,
        tree,
        threads: args.threads,
        kernel_cache: args.kernel_cache,
        allow_other: args.allow_other,
        auto_unmount: args.auto_unmount,
        cache: CacheConfig {
            capacity: args.cache,
            ..CacheConfig::default()
        },
        numa: args.numa,
        uring: args.io_uring,
        uring_sched: args.uring_sched,
    })
}

/// Mounts, serves until a signal or an outside unmount, then unmounts.
fn serve(args: &MountArgs) -> Result<()> {
    crate::init_logging(if args.daemon_child { "info" } else { "warn" });
    let signals = block_stop_signals()?;
    let opts = options(args)?;
    let handle = mount(&opts)?;
    let control = Control::start(&handle, &opts)?;
    announce(args, &handle)?;

    let reason = wait_for_stop(&handle, &signals);
    tracing::info!(reason, "stopping");
    control.remove();
    handle.unmount()?;
    Ok(())
}

/// Prints the seed and the summary; a daemon child then says `ready` and drops stdout.
fn announce(args: &MountArgs, handle: &MountHandle) -> Result<()> {
    let spec = handle.content();
    let lines = [format!("seed: {}", spec.seed), summary(handle)];
    let mut out = io::stdout().lock();
    for line in lines {
        match args.daemon_child {
            true => writeln!(out, "out {line}")?,
            false => writeln!(out, "{line}")?,
        }
    }
    if args.daemon_child {
        writeln!(out, "ready")?;
        out.flush()?;
        detach_stdout()?;
    }
    Ok(out.flush()?)
}

/// One line: where, how many files of what size, which ratios.
fn summary(handle: &MountHandle) -> String {
    let (tree, spec) = (handle.tree(), handle.content());
    format!(
        "mounted {}: {} file{} of {}{} ({} total) in {} director{}, compress {}, dedup {}, \
         dedup unit {}",
        handle.path().display(),
        tree.files(),
        if tree.files() == 1 { "" } else { "s" },
        human_bytes(tree.file_size()),
        match tree.dlio_tree() {
            Some(d) => format!(" (dlio {}, mean size; sizes vary)", d.spec().format),
            None => String::new(),
        },
        human_bytes(tree.size()),
        tree.dirs(),
        if tree.dirs() == 1 { "y" } else { "ies" },
        spec.compress,
        spec.dedup,
        human_bytes(spec.dedup_unit),
    )
}

/// `1.5 GiB`-style sizes, exact bytes below 1 KiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} {}", UNITS[unit])
}

/// Points stdin and stdout at /dev/null and moves to `/` so the daemon pins nothing.
fn detach_stdout() -> Result<()> {
    let null = File::options().read(true).write(true).open("/dev/null")?;
    use std::os::fd::AsRawFd;
    for fd in [libc::STDIN_FILENO, libc::STDOUT_FILENO] {
        // SAFETY: both fds are open; dup2 replaces `fd` atomically with /dev/null.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error()).context("cannot detach stdout");
        }
    }
    std::env::set_current_dir("/").context("cannot change directory to /")
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread and every thread it starts later.
fn block_stop_signals() -> Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data that sigemptyset initializes before any use, and
    // pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        match libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) {
            0 => Ok(set),
            rc => Err(io::Error::from_raw_os_error(rc)).context("cannot block signals"),
        }
    }
}

/// Waits for a stop signal or an outside unmount, sampling throughput every second.
fn wait_for_stop(handle: &MountHandle, signals: &libc::sigset_t) -> String {
    let timeout = libc::timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    loop {
        // SAFETY: `signals` is an initialized set; a null siginfo pointer is allowed.
        let sig = unsafe { libc::sigtimedwait(signals, std::ptr::null_mut(), &timeout) };
        if sig > 0 {
            return format!("signal {sig}");
        }
        if !handle.is_mounted() {
            return "unmounted from outside".to_owned();
        }
        // Sampling keeps the recent throughput current between status queries.
        handle.stats();
    }
}

/// The control socket of a mount; a thread answers each connection with fresh counters.
struct Control {
    socket: PathBuf,
    log: PathBuf,
}

impl Control {
    /// Binds the socket (replacing a dead one) and serves it from a thread.
    fn start(handle: &MountHandle, opts: &MountOptions) -> Result<Control> {
        let socket = registry::socket_path(handle.path());
        let dir = registry::runtime_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)
            .with_context(|| format!("cannot bind {}", socket.display()))?;
        let (fixed, stats) = (fixed_status(handle, opts), handle.stats_reader());
        std::thread::Builder::new()
            .name("control".to_owned())
            .spawn(move || serve_control(&listener, &fixed, &stats))
            .context("cannot start the control thread")?;
        let log = registry::log_path(handle.path());
        Ok(Control { socket, log })
    }

    /// Removes the socket, and the log, which a clean stop makes uninteresting.
    fn remove(&self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The fixed status with the current counters added.
fn current_status(fixed: &Status, reader: &StatsReader) -> Status {
    let stats = reader.stats();
    let mut status = fixed.clone();
    if let Some(cache) = reader.cache_stats() {
        put_cache_stats(&mut status, &cache);
    }
    let mut put = |k: &str, v: String| status.0.insert(k.to_owned(), v);
    put("bytes_read", stats.bytes_read.to_string());
    put("reads", stats.reads.to_string());
    put("opens", stats.opens.to_string());
    put("uptime_secs", format!("{:.0}", stats.uptime.as_secs_f64()));
    put(
        "bytes_per_sec",
        format!("{:.0}", stats.recent_bytes_per_sec),
    );
    status
}

/// Adds `cache_nodes` and, per node `i`, `cache.i.<counter>` (all nodes summed in `cache.all`).
fn put_cache_stats(status: &mut Status, cache: &CacheStats) {
    let mut put = |k: String, v: u64| status.0.insert(k, v.to_string());
    put("cache_nodes".to_owned(), cache.nodes.len() as u64);
    let nodes = cache
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (i.to_string(), *n));
    for (name, n) in nodes.chain([("all".to_owned(), cache.total())]) {
        put(format!("cache.{name}.hits"), n.hits);
        put(format!("cache.{name}.misses"), n.misses);
        put(format!("cache.{name}.unit_hits"), n.unit_hits);
        put(format!("cache.{name}.unit_misses"), n.unit_misses);
        put(format!("cache.{name}.ahead_generated"), n.ahead_generated);
        put(format!("cache.{name}.ahead_used"), n.ahead_used);
        put(format!("cache.{name}.ahead_wasted"), n.ahead_wasted);
        put(format!("cache.{name}.resident"), n.resident_bytes);
    }
}

/// The parts of the status that never change.
fn fixed_status(handle: &MountHandle, opts: &MountOptions) -> Status {
    let (tree, spec) = (handle.tree(), handle.content());
    let pairs = [
        ("pid", std::process::id().to_string()),
        ("mountpoint", handle.path().display().to_string()),
        ("seed", spec.seed.to_string()),
        ("compress", spec.compress.to_string()),
        ("dedup", spec.dedup.to_string()),
        ("dedup_unit", spec.dedup_unit.to_string()),
        ("size", tree.size().to_string()),
        ("files", tree.files().to_string()),
        ("file_size", tree.file_size().to_string()),
        ("files_per_dir", opts.tree.files_per_dir.to_string()),
        ("threads", opts.thread_count().to_string()),
        ("kernel_cache", opts.kernel_cache.to_string()),
        ("cache_capacity", opts.cache.capacity.to_string()),
        ("numa", opts.numa.to_string()),
        ("io_uring", handle.io_uring().to_string()),
    ];
    Status(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn serve_control(listener: &UnixListener, fixed: &Status, stats: &StatsReader) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let reply = current_status(fixed, stats).render();
        if let Err(err) = stream.write_all(reply.as_bytes()) {
            tracing::debug!(%err, "status client went away");
        }
    }
}

/// Starts the daemon and relays its report; returns once the mount is live.
fn spawn_daemon(args: &MountArgs) -> Result<()> {
    let log_path = registry::log_path(&registry::canonical(&args.mountpoint));
    let log = open_log(&log_path)?;
    let exe = std::env::current_exe().context("cannot find the mountctl executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1)).arg("--daemon-child");
    if args.content.seed.is_none() {
        cmd.arg("--seed")
            .arg(dgenfs::spec::random_seed().to_string());
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
    // SAFETY: the closure runs in the forked child before exec and calls only setsid,
    // which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| match libc::setsid() {
            -1 => Err(io::Error::last_os_error()),
            _ => Ok(()),
        })
    };
    let mut child = cmd.spawn().context("cannot start the mount daemon")?;
    let stdout = child.stdout.take().context("daemon has no stdout")?;
    match relay_report(BufReader::new(stdout)) {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        Err(err) => {
            forget_log(&args.mountpoint, &log_path);
            return Err(err);
        }
    }
    let status = child.wait().context("cannot wait for the mount daemon")?;
    bail!(
        "mount daemon exited ({status}) before the mount was live; see {}",
        log_path.display()
    )
}

/// Removes the log of a daemon that reported its error, unless another daemon owns it.
fn forget_log(mountpoint: &Path, log: &Path) {
    let socket = registry::socket_path(&registry::canonical(mountpoint));
    if registry::query(&socket).is_err() {
        let _ = std::fs::remove_file(log);
    }
}

fn open_log(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Appending: a failed second mount must not truncate the log of a live daemon.
    let mut options = File::options();
    options.create(true).append(true);
    options
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Prints the daemon's `out` lines; `Ok(true)` on `ready`, `Err` on `err`, `Ok(false)` on EOF.
fn relay_report(reader: impl BufRead) -> Result<bool> {
    for line in reader.lines() {
        let line = line.context("cannot read the daemon's report")?;
        match line.split_once(' ') {
            Some(("out", text)) => println!("{text}"),
            Some(("err", text)) => bail!("{text}"),
            _ if line == "ready" => return Ok(true),
            _ => tracing::debug!(line, "unexpected daemon output"),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(1536 << 20), "1.5 GiB");
        assert_eq!(human_bytes(10 << 40), "10 TiB");
    }

    #[test]
    fn report_relays_errors_and_ready() {
        assert!(relay_report("out seed: 1\nready\n".as_bytes()).unwrap());
        let err = relay_report("err mount point /x does not exist\n".as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "mount point /x does not exist");
        assert!(!relay_report("".as_bytes()).unwrap());
    }
}
