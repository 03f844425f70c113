//! mountctl: mount, generate and benchmark dgenfs synthetic data.

mod args;
mod bench;
mod generate;

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
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let result = match &cli.command {
        Command::Generate(args) => generate::run(args),
        Command::Bench(args) => bench::run(args),
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

/// A rayon pool of `threads` threads, or one per core.
fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        anyhow::ensure!(n >= 1, "invalid threads '{n}': expected at least 1");
        builder = builder.num_threads(n);
    }
    builder.build().context("cannot start generator threads")
}
