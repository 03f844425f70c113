//! `mountctl bench`: fill speed next to memcpy and memset, measured in the same run.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use dgenfs::content::PAR_FROM;
use dgenfs::{ContentSpec, Generator};
use rayon::prelude::*;

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

    println!("| what | threads | GB/s (median of {}) |", args.rounds);
    println!("|---|---|---|");
    // memcpy and memset at every thread count, split as `fill_in` splits a fill (not below
    // PAR_FROM): with more than one thread they give the ceiling the memory system sets.
    let mut byte = 0u8;
    for &n in &threads {
        let pool = crate::thread_pool(Some(n))?;
        let share = if len < PAR_FROM { len } else { len.div_ceil(n) }.max(1);
        let memcpy = median_gbps(args.rounds, len, || {
            if share == len {
                buf.copy_from_slice(&src);
            } else {
                pool.install(|| {
                    buf.par_chunks_mut(share)
                        .zip(src.par_chunks(share))
                        .for_each(|(to, from)| to.copy_from_slice(from))
                });
            }
        });
        println!("| memcpy | {n} | {memcpy:.2} |");
        let memset = median_gbps(args.rounds, len, || {
            byte = byte.wrapping_add(1);
            if share == len {
                buf.fill(byte);
            } else {
                pool.install(|| buf.par_chunks_mut(share).for_each(|to| to.fill(byte)));
            }
        });
        println!("| memset | {n} | {memset:.2} |");
    }

    for &c in &args.compress {
        let spec = ContentSpec {
            compress: c,
            ..ContentSpec::with_seed(1)
        };
        let generator = Generator::new(&spec)?;
        for &n in &threads {
            let pool = crate::thread_pool(Some(n))?;
            let mut offset = 0u64;
            let gbps = median_gbps(args.rounds, len, || {
                // One thread fills on the calling thread, as an in-process caller would.
                if n == 1 {
                    generator.fill(offset, &mut buf);
                } else {
                    generator.fill_in(&pool, offset, &mut buf);
                }
                offset += len as u64;
            });
            println!("| fill compress={c} | {n} | {gbps:.2} |");
        }
    }
    std::hint::black_box(&buf);
    Ok(())
}

/// Bytes processed per timed round at least, so small buffers are timed over many calls.
const ROUND_BYTES: usize = 256 << 20;

/// Runs `work` once to warm up, then `rounds` rounds of enough calls to cover
/// [`ROUND_BYTES`], and returns the median GB/s.
fn median_gbps(rounds: usize, bytes: usize, mut work: impl FnMut()) -> f64 {
    work();
    let calls = ROUND_BYTES.div_ceil(bytes.max(1));
    let mut rates: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                work();
            }
            (calls * bytes) as f64 / start.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}
