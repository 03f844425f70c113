//! `mountctl status`: list live dgenfs mounts with their spec and read counters.
//!
//! Daemons are asked over their control sockets; dgenfs mounts in `/proc/self/mountinfo`
//! without a daemon (stale, or mounted in-process by another program) are listed too.
//! Sockets nobody listens on are removed.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use dgenfs::mount::{mount_points, FS_NAME};

use crate::mount::human_bytes;
use crate::registry::{self, Status};

/// Flags of `mountctl status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show only the mount at this path (default: all dgenfs mounts)
    pub mountpoint: Option<PathBuf>,
}

/// Runs `mountctl status`.
pub fn run(args: &StatusArgs) -> Result<()> {
    let wanted = args.mountpoint.as_deref().map(registry::canonical);
    let live = live_daemons();
    let mut shown = 0;
    for status in live
        .iter()
        .filter(|s| matches(wanted.as_deref(), s.get("mountpoint")))
    {
        println!("{}", render(status));
        shown += 1;
    }
    for (point, _) in mount_points()
        .into_iter()
        .filter(|(_, source)| source == FS_NAME)
    {
        let served = live.iter().any(|s| Path::new(s.get("mountpoint")) == point);
        if !served && matches(wanted.as_deref(), &point.to_string_lossy()) {
            println!(
                "{}  (no mountctl daemon: stale, or mounted in-process)",
                point.display()
            );
            shown += 1;
        }
    }
    match (shown, wanted) {
        (0, Some(path)) => bail!("no dgenfs mount at {}", path.display()),
        (0, None) => println!("no dgenfs mounts"),
        _ => {}
    }
    Ok(())
}

fn matches(wanted: Option<&Path>, mountpoint: &str) -> bool {
    wanted.is_none_or(|w| w == Path::new(mountpoint))
}

/// Statuses of the daemons that answer; dead sockets are removed on the way.
fn live_daemons() -> Vec<Status> {
    let mut live = Vec::new();
    for socket in registry::sockets() {
        match registry::query(&socket) {
            Ok(status) => live.push(status),
            Err(_) => {
                let _ = std::fs::remove_file(&socket);
            }
        }
    }
    live
}

/// Three lines per mount: where and since when, what, how much was served.
fn render(s: &Status) -> String {
    let bytes = |key: &str| human_bytes(s.num(key) as u64);
    format!(
        "{}  pid {}  up {}\n  spec: seed {}, compress {}, dedup {}, dedup unit {}; {} files of \
         {}, {} total, {} per dir; {} threads{}{}\n  served: {} in {} reads ({} opens), \
         {}/s recently",
        s.get("mountpoint"),
        s.get("pid"),
        uptime(s.num("uptime_secs") as u64),
        s.get("seed"),
        s.get("compress"),
        s.get("dedup"),
        bytes("dedup_unit"),
        s.get("files"),
        bytes("file_size"),
        bytes("size"),
        s.get("files_per_dir"),
        s.get("threads"),
        if s.get("kernel_cache") == "true" {
            ", kernel cache"
        } else {
            ""
        },
        if s.get("io_uring") == "true" {
            ", io_uring queues"
        } else {
            ""
        },
        bytes("bytes_read"),
        s.get("reads"),
        s.get("opens"),
        bytes("bytes_per_sec"),
    ) + &cache_lines(s)
}

/// The cache's lines: totals, then one line per node when there are several.
fn cache_lines(s: &Status) -> String {
    if s.num("cache_capacity") == 0.0 {
        return "\n  cache: off".to_owned();
    }
    let nodes = s.num("cache_nodes") as usize;
    let mut text = format!(
        "\n  cache: {} on {} numa node(s) (numa {}); {}",
        human_bytes(s.num("cache_capacity") as u64),
        nodes,
        s.get("numa"),
        cache_counters(s, "all"),
    );
    if nodes > 1 {
        for node in 0..nodes {
            text += &format!(
                "\n    node {node}: {}",
                cache_counters(s, &node.to_string())
            );
        }
    }
    text
}

/// One node's (or `all`) counters in a line.
fn cache_counters(s: &Status, node: &str) -> String {
    let n = |key: &str| s.num(&format!("cache.{node}.{key}"));
    let rate = |hits: f64, misses: f64| match hits + misses {
        0.0 => 0.0,
        total => 100.0 * hits / total,
    };
    format!(
        "{} resident; blocks {} hits, {} misses ({:.1}%); dedup units {} hits, {} misses \
         ({:.1}%); read-ahead {} generated, {} used, {} wasted",
        human_bytes(n("resident") as u64),
        n("hits"),
        n("misses"),
        rate(n("hits"), n("misses")),
        n("unit_hits"),
        n("unit_misses"),
        rate(n("unit_hits"), n("unit_misses")),
        n("ahead_generated"),
        n("ahead_used"),
        n("ahead_wasted"),
    )
}

fn uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}
