//! mountctl: mount, generate and benchmark dgenfs synthetic data.

mod args;
mod bench;
mod dataset;
mod generate;
mod mount;
mod registry;
mod status;
mod umount;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// Synthetic data of exact compressibility and duplication, computed on read.
#[derive(Debug, Parser)]
#[command(name = "mountctl", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a stream of synthetic data to stdout or a file
    Generate(generate::GenerateArgs),
    /// Measure fill speed next to memcpy and memset
    Bench(bench::BenchArgs),
    /// Mount a synthetic tree; returns once it is live (a daemon keeps serving it)
    #[command(after_help = mount::EXAMPLES)]
    Mount(mount::MountArgs),
    /// Unmount a tree and stop its daemon; also clears stale mounts
    Umount(umount::UmountArgs),
    /// List dgenfs mounts with their spec, bytes served and throughput
    Status(status::StatusArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let result = match &cli.command {
        Command::Generate(args) => generate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Mount(args) => mount::run(args),
        Command::Umount(args) => umount::run(args),
        Command::Status(args) => status::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mountctl: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints help and version as clap does, and any other parse error on one line.
fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) || matches!(
        err.kind(),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
    }
    let rendered = err.render().to_string();
    let line = rendered.lines().next().unwrap_or("invalid arguments");
    eprintln!("mountctl: {}", line.trim_start_matches("error: "));
    ExitCode::from(2)
}

/// A pool of `threads` fill threads (one per allowed CPU when absent), each pinned to its
/// own CPU so that a split fill's shares run side by side.
fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    dgenfs::content::threads::spread_pool(thread_count(threads)?, |i| format!("fill-{i}"))
        .context("cannot start generator threads")
}

/// A fill team of `threads` threads, the caller included (one per allowed CPU when absent).
fn fill_team(threads: Option<usize>) -> Result<dgenfs::content::team::FillTeam> {
    dgenfs::content::team::FillTeam::new(thread_count(threads)?, "fill")
        .context("cannot start generator threads")
}

/// `--threads` as the pool builders take it: 0 for one per allowed CPU; 0 given is an error.
fn thread_count(threads: Option<usize>) -> Result<usize> {
    match threads {
        Some(0) => anyhow::bail!("invalid threads '0': expected at least 1"),
        Some(n) => Ok(n),
        None => Ok(0),
    }
}

/// Sends `tracing` output to stderr, filtered by MOUNTCTL_LOG, else RUST_LOG, else `default`.
fn init_logging(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("MOUNTCTL_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
