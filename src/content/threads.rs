//! Fill pools whose threads stay on distinct CPUs.
//!
//! A fill split across a pool is only as fast as its slowest share. On a machine where the
//! scheduler is free to place pool threads, two of them often land on the same CPU (a
//! thread woken for a share is put next to the thread that woke it), and the split fill
//! runs at one thread's speed. On the project's 2-CPU VM, half of the runs of a 32 MiB
//! fill on two unpinned threads ran at 1.0-1.4x one thread; with one thread per CPU they
//! run at 1.8x. See docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

/// The CPUs the calling thread may run on, in ascending order (empty if unknown).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, and the kernel writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// The CPU the calling thread is running on (`usize::MAX` if the kernel does not say).
pub fn current_cpu() -> usize {
    // SAFETY: sched_getcpu takes no arguments and only reads the running CPU.
    usize::try_from(unsafe { libc::sched_getcpu() }).unwrap_or(usize::MAX)
}

/// Restricts the calling thread to `cpu`. Failures are ignored: an unpinned thread fills
/// the same bytes, only with less predictable speed.
pub fn pin_current_thread(cpu: usize) {
    // SAFETY: as in `allowed_cpus`; CPU_SET ignores indexes past the set's size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Spins until `ready()` holds or `limit` has passed; says whether it holds.
pub fn spin_until(limit: Duration, ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= limit {
            return ready();
        }
    }
}

/// A rayon pool of `threads` threads (one per allowed CPU when 0), thread `i` pinned to
/// the `i`-th allowed CPU, round robin when there are more threads than CPUs. With a
/// single allowed CPU nothing is pinned.
pub fn spread_pool(
    threads: usize,
    name: impl Fn(usize) -> String + Send + Sync + 'static,
) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    let cpus = allowed_cpus();
    let threads = match threads {
        0 => cpus.len().max(1),
        n => n,
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(name)
        .start_handler(move |i| {
            if cpus.len() > 1 {
                pin_current_thread(cpus[i % cpus.len()]);
            }
        })
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_threads_land_on_distinct_allowed_cpus() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        let pool = spread_pool(cpus.len(), |i| format!("spread-{i}")).unwrap();
        let mut seen: Vec<Vec<usize>> = pool.broadcast(|_| allowed_cpus());
        if cpus.len() > 1 {
            assert!(seen.iter().all(|set| set.len() == 1), "{seen:?}");
            seen.sort();
            seen.dedup();
            assert_eq!(
                seen.len(),
                cpus.len(),
                "each thread on its own CPU: {seen:?}"
            );
        }
        assert!(seen.iter().flatten().all(|cpu| cpus.contains(cpu)));
    }
}
