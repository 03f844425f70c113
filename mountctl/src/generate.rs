//! `mountctl generate`: write a stream to stdout or a file.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use dgenfs::Generator;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{parse_size, ContentArgs};

/// Bytes generated per write.
const BLOCK: usize = 8 << 20;

/// Streams at least this long get a progress bar when stderr is a terminal.
const PROGRESS_FROM: u64 = 256 << 20;

/// Flags of `mountctl generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Bytes to write, e.g. 4096, 512KiB, 1.5G, 10T, 4GB
    #[arg(long, value_parser = parse_size)]
    pub size: u64,

    #[command(flatten)]
    pub content: ContentArgs,

    /// Stream offset of the first byte written
    #[arg(long, default_value = "0", value_parser = parse_size)]
    pub offset: u64,

    /// Generator threads (default: one per core)
    #[arg(long)]
    pub threads: Option<usize>,

    /// Output file (default: stdout)
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Runs `mountctl generate`.
pub fn run(args: &GenerateArgs) -> Result<()> {
    let spec = args.content.to_spec();
    let generator = Generator::new(&spec)?;
    eprintln!("seed: {}", spec.seed);

    let pool = crate::thread_pool(args.threads)?;
    let mut out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => {
            // A dup of fd 1 as a File: unbuffered, so 8 MiB writes go straight out.
            use std::os::fd::AsFd;
            let fd = io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .context("cannot use stdout")?;
            Box::new(File::from(fd))
        }
    };
    let progress = progress_bar(args.size);

    // Generate the next block while the current one is written.
    let end = args
        .offset
        .checked_add(args.size)
        .context("--offset plus --size overflows")?;
    let mut current = vec![0u8; BLOCK.min(args.size as usize)];
    let mut next = current.clone();
    let mut pos = args.offset;
    let mut len = fill(&pool, &generator, pos, end, &mut current);
    while len > 0 {
        let next_pos = pos + len as u64;
        let (written, next_len) = rayon::join(
            || out.write_all(&current[..len]),
            || fill(&pool, &generator, next_pos, end, &mut next),
        );
        match written {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            other => other.context("write failed")?,
        }
        progress.inc(len as u64);
        std::mem::swap(&mut current, &mut next);
        pos = next_pos;
        len = next_len;
    }
    out.flush().context("write failed")?;
    progress.finish_and_clear();
    Ok(())
}

fn fill(pool: &rayon::ThreadPool, g: &Generator, pos: u64, end: u64, buf: &mut [u8]) -> usize {
    let len = (end - pos).min(buf.len() as u64) as usize;
    pool.install(|| g.fill_par(pos, &mut buf[..len]));
    len
}

fn progress_bar(total: u64) -> ProgressBar {
    if total < PROGRESS_FROM || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{bytes}/{total_bytes} {wide_bar} {binary_bytes_per_sec} eta {eta}",
    )
    .expect("static template is valid");
    bar.set_style(style);
    bar
}
