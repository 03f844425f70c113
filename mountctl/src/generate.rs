//! `mountctl generate`: write a stream, or one file of a DLIO tree, to stdout or a file.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use dgenfs::dlio::DlioSpec;
use dgenfs::format::{ChecksumCache, Source};
use dgenfs::tree::{DirId, FileIndex, Node, Tree, TreeSpec};
use dgenfs::Generator;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{parse_size, ContentArgs};
use crate::dataset::DatasetArgs;

/// Bytes generated per write.
const BLOCK: usize = 8 << 20;

/// Streams at least this long get a progress bar when stderr is a terminal.
const PROGRESS_FROM: u64 = 256 << 20;

/// Flags of `mountctl generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Bytes to write, e.g. 4096, 512KiB, 1.5G, 10T, 4GB
    #[arg(long, value_parser = parse_size, required_unless_present = "path")]
    pub size: Option<u64>,

    #[command(flatten)]
    pub content: ContentArgs,

    /// Write this file of the DLIO tree (e.g. train/img_3_of_8.npz) instead of a stream;
    /// give the same --seed and dataset flags as to `mountctl mount`
    #[arg(long, conflicts_with_all = ["size", "offset"])]
    pub path: Option<String>,

    #[command(flatten)]
    pub dataset: DatasetArgs,

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
    let dlio = args.dataset.to_spec(spec.seed)?;
    if let (None, Some(_)) = (&args.path, dlio) {
        bail!("dataset flags (--format, --preset, --layout dlio, ..) need --path FILE");
    }
    let mut out = output(args)?;
    if let Some(path) = &args.path {
        return write_tree_file(&generator, dlio, path, &mut out);
    }
    let size = args.size.context("--size is required")?;

    let pool = crate::thread_pool(args.threads)?;
    let progress = progress_bar(size);

    // Generate the next block while the current one is written.
    let end = args
        .offset
        .checked_add(size)
        .context("--offset plus --size overflows")?;
    let mut current = vec![0u8; BLOCK.min(size as usize)];
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

/// The output file, or an unbuffered duplicate of stdout.
fn output(args: &GenerateArgs) -> Result<Box<dyn Write + Send>> {
    Ok(match &args.output {
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
    })
}

/// Writes the file at `path` (relative to the mount root) of the tree `dlio` describes.
fn write_tree_file(
    generator: &Generator,
    dlio: Option<DlioSpec>,
    path: &str,
    out: &mut Box<dyn Write + Send>,
) -> Result<()> {
    let Some(dlio) = dlio else {
        bail!("--path needs a DLIO tree: give --format, --preset or --layout dlio");
    };
    let spec = TreeSpec {
        dlio: Some(dlio),
        ..TreeSpec::default()
    };
    let tree = Tree::new(&spec)?;
    let file = resolve(&tree, path)?;
    let layout = tree.file_layout(file);
    let (cache, stream_offset) = (ChecksumCache::default(), tree.file_stream_offset(file));
    let src = Source {
        generator,
        stream_offset,
        file_key: file.0,
        cache: &cache,
    };
    let mut buf = vec![0u8; BLOCK];
    let mut pos = 0;
    loop {
        let n = layout.read(&src, pos, &mut buf);
        if n == 0 {
            break;
        }
        match out.write_all(&buf[..n]) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            other => other.context("write failed")?,
        }
        pos += n as u64;
    }
    out.flush().context("write failed")
}

/// The file at `path` in `tree`, by lookups from the root.
fn resolve(tree: &Tree, path: &str) -> Result<FileIndex> {
    let mut dir = DirId { level: 0, index: 0 };
    let mut parts = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .peekable();
    while let Some(part) = parts.next() {
        match (tree.lookup(dir, part), parts.peek()) {
            (Some(Node::Dir(d)), Some(_)) => dir = d,
            (Some(Node::File(f)), None) => return Ok(f),
            (Some(Node::Dir(_)), None) => bail!("{path} is a directory"),
            _ => bail!("no file {path} in this tree"),
        }
    }
    bail!("no file {path} in this tree")
}

fn fill(pool: &rayon::ThreadPool, g: &Generator, pos: u64, end: u64, buf: &mut [u8]) -> usize {
    let len = (end - pos).min(buf.len() as u64) as usize;
    g.fill_in(pool, pos, &mut buf[..len]);
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
