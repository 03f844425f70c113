//! `mountctl bench`: fill speed next to memcpy and memset, measured in the same run.

use std::sync::Mutex;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use dgenfs::content::team::FillTeam;
use dgenfs::content::PAR_FROM;
use dgenfs::{ContentSpec, Generator};

use crate::args::parse_size;

/// Flags of `mountctl bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Buffer size for every measurement
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    pub size: u64,

    /// Thread counts to measure, comma separated (default: 1 and one per core)
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,

    /// Compress ratios to measure, comma separated
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub compress: Vec<f64>,

    /// Repetitions per measurement; the median is reported
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
}

/// Runs `mountctl bench` and prints a markdown table of GB/s (10^9 bytes per second).
pub fn run(args: &BenchArgs) -> Result<()> {
    let len = args.size as usize;
    let mut threads = args.threads.clone();
    if threads.is_empty() {
        threads = vec![1, rayon::current_num_threads().max(1)];
        threads.dedup();
    }
    let mut buf = vec![0u8; len];
    let mut src = vec![0u8; len];
    Generator::new(&ContentSpec::with_seed(1))?.fill_par(0, &mut src);

    // The calling thread and n - 1 helpers for each thread count, as an in-process caller
    // fills (one thread: the calling thread alone).
    let teams = threads
        .iter()
        .map(|&n| crate::fill_team(Some(n)))
        .collect::<Result<Vec<_>>>()?;

    println!("| what | threads | GB/s (median of {}) |", args.rounds);
    println!("|---|---|---|");
    // memcpy and memset at every thread count, split as `fill_team` splits a fill (not
    // below PAR_FROM): with more than one thread they give the ceiling the memory system
    // sets.
    let parts = |k: usize| if len < PAR_FROM { 1 } else { threads[k] };
    let mut byte = 0u8;
    let rates = alternate(args.rounds, len, 2 * threads.len(), |i| {
        let (k, copy) = (i / 2, i % 2 == 0);
        let parts = parts(k);
        if copy {
            split(&teams[k], parts, &mut buf, |j, to| {
                let from = j * len.div_ceil(parts);
                to.copy_from_slice(&src[from..from + to.len()])
            })
        } else {
            byte = byte.wrapping_add(1);
            split(&teams[k], parts, &mut buf, |_, to| to.fill(byte))
        }
    });
    for (k, n) in threads.iter().enumerate() {
        println!("| memcpy | {n} | {:.2} |", rates[2 * k]);
        println!("| memset | {n} | {:.2} |", rates[2 * k + 1]);
    }

    for &c in &args.compress {
        let spec = ContentSpec {
            compress: c,
            ..ContentSpec::with_seed(1)
        };
        let generator = Generator::new(&spec)?;
        let mut offset = 0u64;
        let rates = alternate(args.rounds, len, threads.len(), |k| {
            generator.fill_team(&teams[k], offset, &mut buf);
            offset += len as u64;
        });
        for (n, gbps) in threads.iter().zip(rates) {
            println!("| fill compress={c} | {n} | {gbps:.2} |");
        }
    }
    std::hint::black_box(&buf);
    Ok(())
}

/// Runs `work(i, part)` for each of `parts` contiguous parts of `buf`, part `i` on thread
/// `i` of `team` (all on the calling thread when `parts` is 1).
fn split(team: &FillTeam, parts: usize, buf: &mut [u8], work: impl Fn(usize, &mut [u8]) + Sync) {
    if parts <= 1 {
        return work(0, buf);
    }
    let size = buf.len().div_ceil(parts);
    let chunks: Vec<Mutex<Option<&mut [u8]>>> =
        buf.chunks_mut(size).map(|c| Mutex::new(Some(c))).collect();
    team.run(&|i| {
        if let Some(part) = chunks.get(i).and_then(|c| c.lock().ok()?.take()) {
            work(i, part);
        }
    });
}

/// Bytes processed per timed round at least, so small buffers are timed over many calls.
const ROUND_BYTES: usize = 256 << 20;

/// Measures `contenders` kinds of work, `work(k)` doing one call of kind `k` on `bytes`
/// bytes: each is warmed up once, then `rounds` rounds take turns (one round of each kind,
/// enough calls to cover [`ROUND_BYTES`], then the next round), so that a change in the
/// machine's load lands on every kind alike. Returns each kind's median GB/s.
fn alternate(
    rounds: usize,
    bytes: usize,
    contenders: usize,
    mut work: impl FnMut(usize),
) -> Vec<f64> {
    (0..contenders).for_each(&mut work);
    let calls = ROUND_BYTES.div_ceil(bytes.max(1));
    let mut rates = vec![Vec::with_capacity(rounds); contenders];
    for _ in 0..rounds.max(1) {
        for (k, samples) in rates.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..calls {
                work(k);
            }
            samples.push((calls * bytes) as f64 / start.elapsed().as_secs_f64() / 1e9);
        }
    }
    rates
        .into_iter()
        .map(|mut samples| {
            samples.sort_by(f64::total_cmp);
            samples[samples.len() / 2]
        })
        .collect()
}
