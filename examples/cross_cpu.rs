//! What a reader pays for a 1 MiB block generated on another CPU, against generating it on
//! its own CPU: the question behind `--cache` read-ahead on a given machine.
//!
//! `cargo run --release --example cross_cpu -- [ROUNDS] [BLOCKS]`   (defaults: 5, 2000)
//!
//! The reader thread is pinned to the first allowed CPU, a generator thread to the second.
//! Each round measures, per 1 MiB block (the configurations take turns, round by round):
//! - local: the reader generates the block into its reused buffer, then copies it into a
//!   reply buffer (the copy the kernel makes of a reply);
//! - remote, window W: the generator keeps W blocks ahead of the reader in a ring, and the
//!   reader copies each block out of the ring into the reply buffer;
//! - remap: the reader swaps two 2 MiB huge-page mappings with three `mremap` calls while
//!   the generator runs in the same process (the cost of moving a block under an io_uring
//!   payload address instead of copying it).
//!
//! It also times a pipe round trip between two threads, both on the reader's CPU and one
//! on each CPU: the two context switches every FUSE request costs its reader, whatever the
//! server does.
//!
//! Prints markdown tables of medians over the rounds, µs per block and GB/s.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dgenfs::content::threads::{allowed_cpus, pin_current_thread};
use dgenfs::{ContentSpec, Generator};

const BLOCK: usize = 1 << 20;
const HUGE: usize = 2 << 20;
/// Ring slots; more than the largest window, so a block is never overwritten while copied.
const SLOTS: usize = 16;
const WINDOWS: [u64; 3] = [1, 2, 8];

/// Memory shared by the reader and the generator; which thread touches which block is
/// ordered by the `made` and `used` counters.
struct Ring {
    base: *mut u8,
    made: AtomicU64,
    used: AtomicU64,
    window: AtomicU64,
    stop: AtomicBool,
}

// SAFETY: the generator writes only slot `made % SLOTS` while `made - used < window`, and the
// reader reads only slots of blocks below `made` that it has not marked used; the counters
// are released after and acquired before each access.
unsafe impl Send for Ring {}
unsafe impl Sync for Ring {}

impl Ring {
    fn slot(&self, block: u64) -> *mut u8 {
        // SAFETY: the ring holds SLOTS blocks.
        unsafe { self.base.add((block as usize % SLOTS) * BLOCK) }
    }
}

/// `len` bytes of anonymous memory on a 2 MiB boundary, advised for huge pages and touched.
fn huge_alloc(len: usize) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping, aligned inside its extra 2 MiB; it is never
    // unmapped (the process exits after the measurement).
    unsafe {
        let raw = libc::mmap(
            std::ptr::null_mut(),
            len + HUGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(raw, libc::MAP_FAILED, "mmap of {len} bytes failed");
        let at = (raw as usize).next_multiple_of(HUGE) as *mut u8;
        libc::madvise(at.cast(), len, libc::MADV_HUGEPAGE);
        std::ptr::write_bytes(at, 1, len);
        at
    }
}

fn generator(ring: Arc<Ring>, gen: Generator, cpu: usize) {
    pin_current_thread(cpu);
    while !ring.stop.load(Ordering::Relaxed) {
        let made = ring.made.load(Ordering::Relaxed);
        if made - ring.used.load(Ordering::Acquire) >= ring.window.load(Ordering::Relaxed) {
            std::hint::spin_loop();
            continue;
        }
        // SAFETY: see `Ring`; the slot of block `made` is not being read.
        let out = unsafe { std::slice::from_raw_parts_mut(ring.slot(made), BLOCK) };
        gen.fill(made * BLOCK as u64, out);
        ring.made.store(made + 1, Ordering::Release);
    }
}

/// µs per block: the reader generates and copies `blocks` blocks on its own CPU. Returns
/// (generate, copy).
fn local(gen: &Generator, buf: &mut [u8], reply: &mut [u8], blocks: u64) -> (f64, f64) {
    let (mut fill, mut copy) = (0.0, 0.0);
    for b in 0..blocks {
        let t0 = Instant::now();
        gen.fill(b * BLOCK as u64, buf);
        let t1 = Instant::now();
        reply.copy_from_slice(buf);
        fill += (t1 - t0).as_secs_f64();
        copy += t1.elapsed().as_secs_f64();
    }
    (fill * 1e6 / blocks as f64, copy * 1e6 / blocks as f64)
}

/// µs per block: the reader copies `blocks` blocks out of the ring while the generator may
/// have up to `window` blocks made and not yet used (1: each block was just written).
fn remote(ring: &Ring, window: u64, reply: &mut [u8], blocks: u64) -> f64 {
    // A block the generator is still making when the window closes completes as a valid
    // block, so the reader can start from whatever is made.
    ring.window.store(0, Ordering::Relaxed);
    let first = ring.made.load(Ordering::Acquire);
    ring.used.store(first, Ordering::Release);
    ring.window.store(window, Ordering::Relaxed);
    let mut copy = 0.0;
    for b in first..first + blocks {
        // Wait until the window is full: block `b` and the `window - 1` after it are made.
        while ring.made.load(Ordering::Acquire) < b + window {
            std::hint::spin_loop();
        }
        // SAFETY: see `Ring`; block `b` is made and not yet marked used.
        let block = unsafe { std::slice::from_raw_parts(ring.slot(b), BLOCK) };
        let t0 = Instant::now();
        reply.copy_from_slice(block);
        copy += t0.elapsed().as_secs_f64();
        ring.used.store(b + 1, Ordering::Release);
    }
    copy * 1e6 / blocks as f64
}

/// µs per swap of two 2 MiB huge-page mappings through a third address.
fn remap(a: *mut u8, b: *mut u8, spare: *mut u8, swaps: u64) -> f64 {
    let mv = |from: *mut u8, to: *mut u8| {
        // SAFETY: `from` is a live 2 MiB mapping of this process and `to` an address this
        // example owns (a live mapping being replaced, or the unmapped spare).
        let got = unsafe {
            libc::mremap(
                from.cast(),
                HUGE,
                HUGE,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                to.cast::<libc::c_void>(),
            )
        };
        assert_ne!(
            got,
            libc::MAP_FAILED,
            "mremap: {}",
            std::io::Error::last_os_error()
        );
    };
    let t0 = Instant::now();
    for _ in 0..swaps {
        mv(a, spare);
        mv(b, a);
        mv(spare, b);
        // SAFETY: both are mapped again; touching them makes the next move a real one.
        unsafe {
            a.write_volatile(a.read_volatile().wrapping_add(1));
            b.write_volatile(b.read_volatile().wrapping_add(1));
        }
    }
    t0.elapsed().as_secs_f64() * 1e6 / swaps as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// µs per round trip of one byte between two threads through two pipes, the echoing thread
/// pinned to `there` and the caller to `here`.
fn ping_pong(here: usize, there: usize, trips: u64) -> f64 {
    let (mut ping_r, mut ping_w) = std::io::pipe().expect("pipe");
    let (mut pong_r, mut pong_w) = std::io::pipe().expect("pipe");
    let echo = std::thread::spawn(move || {
        pin_current_thread(there);
        let mut byte = [0u8];
        // Ends when the caller drops its write end.
        while ping_r.read_exact(&mut byte).is_ok() {
            pong_w.write_all(&byte).expect("pong");
        }
    });
    pin_current_thread(here);
    let mut byte = [0u8];
    let mut trip = || {
        ping_w.write_all(&byte).expect("ping");
        pong_r.read_exact(&mut byte).expect("pong");
    };
    for _ in 0..trips / 10 + 1 {
        trip();
    }
    let start = Instant::now();
    for _ in 0..trips {
        trip();
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / trips as f64;
    drop(ping_w);
    echo.join().expect("echo thread");
    us
}

fn gbps(us: f64) -> f64 {
    BLOCK as f64 / us / 1e3
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rounds = args.first().copied().unwrap_or(5).max(1);
    let blocks = args.get(1).copied().unwrap_or(2000).max(1);
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        eprintln!("cross_cpu: needs two allowed CPUs, has {}", cpus.len());
        std::process::exit(1);
    }
    let gen = Generator::new(&ContentSpec::with_seed(1)).expect("valid spec");
    // Before any mapping moves: a thread's stack must not land in the spare hole below.
    let (mut near, mut far) = (vec![], vec![]);
    for _ in 0..rounds {
        near.push(ping_pong(cpus[0], cpus[0], blocks * 10));
        far.push(ping_pong(cpus[0], cpus[1], blocks));
    }
    pin_current_thread(cpus[0]);

    let ring = Arc::new(Ring {
        base: huge_alloc(SLOTS * BLOCK),
        made: AtomicU64::new(0),
        used: AtomicU64::new(0),
        window: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let worker = {
        let (ring, gen, cpu) = (ring.clone(), gen.clone(), cpus[1]);
        std::thread::spawn(move || generator(ring, gen, cpu))
    };
    // SAFETY: each is a fresh 2 MiB huge-page mapping owned by this function.
    let (buf, reply) = unsafe {
        (
            std::slice::from_raw_parts_mut(huge_alloc(HUGE), BLOCK),
            std::slice::from_raw_parts_mut(huge_alloc(HUGE), BLOCK),
        )
    };
    let (swap_a, swap_b, spare) = (huge_alloc(HUGE), huge_alloc(HUGE), huge_alloc(HUGE));
    // SAFETY: the spare address is ours and is only ever a transit point for `remap`.
    unsafe { libc::munmap(spare.cast(), HUGE) };

    let (mut fills, mut copies, mut swaps) = (vec![], vec![], vec![]);
    let mut remotes: Vec<Vec<f64>> = vec![vec![]; WINDOWS.len()];
    for _ in 0..rounds {
        let (f, c) = local(&gen, buf, reply, blocks);
        fills.push(f);
        copies.push(c);
        for (i, &w) in WINDOWS.iter().enumerate() {
            remotes[i].push(remote(&ring, w, reply, blocks));
        }
        // Keep the generator busy in this process while the mappings move.
        ring.window.store(u64::MAX, Ordering::Relaxed);
        swaps.push(remap(swap_a, swap_b, spare, blocks / 4 + 1));
        ring.window.store(0, Ordering::Relaxed);
        ring.used
            .store(ring.made.load(Ordering::Acquire), Ordering::Release);
    }
    ring.stop.store(true, Ordering::Relaxed);
    worker.join().expect("generator thread");

    let (reader, other) = (cpus[0], cpus[1]);
    println!(
        "Reader on CPU {reader}, generator on CPU {other}; {rounds} rounds of {blocks} blocks \
         of 1 MiB, medians."
    );
    println!();
    println!("| per 1 MiB block | µs | GB/s |");
    println!("|---|---|---|");
    let (f, c) = (median(fills), median(copies));
    println!("| generate on the reader's CPU | {f:.1} | {:.1} |", gbps(f));
    println!(
        "| copy it there (L2-hot source) | {c:.1} | {:.1} |",
        gbps(c)
    );
    println!(
        "| generate + copy on the reader's CPU | {:.1} | {:.1} |",
        f + c,
        gbps(f + c)
    );
    for (i, w) in WINDOWS.iter().enumerate() {
        let r = median(remotes[i].clone());
        println!(
            "| copy a block generated on the other CPU, {w} ahead | {r:.1} | {:.1} |",
            gbps(r)
        );
    }
    let s = median(swaps);
    println!("| swap two 2 MiB mappings (3 x mremap), generator running | {s:.1} | - |");
    println!();
    println!("| pipe round trip between two threads | µs |");
    println!("|---|---|");
    println!("| both on CPU {reader} | {:.1} |", median(near));
    println!("| on CPU {reader} and CPU {other} | {:.1} |", median(far));
}
