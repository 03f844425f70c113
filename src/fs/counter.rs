//! A statistics counter that many threads add to without sharing a cache line.
//!
//! Every read adds to the mount's counters. With one atomic per counter, session threads
//! on different cores would take turns owning its cache line on every read, about 3% of
//! 4 KiB read throughput (docs/BENCHMARKS.md, "FUSE"); so each thread adds to its own
//! shard, and a reader sums the shards. It is not a synchronization primitive: the sum is
//! a snapshot that never goes backwards, not a value taken at one instant.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Shards per counter; threads beyond this many share shards round-robin.
const SHARDS: usize = 16;

/// A `u64` sum of additions from any thread.
#[derive(Debug, Default)]
pub struct ShardedCounter {
    shards: [Shard; SHARDS],
}

/// One shard on a cache line of its own (128 bytes covers adjacent-line prefetch).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(AtomicU64);

impl ShardedCounter {
    /// Adds `n` to the calling thread's shard.
    pub fn add(&self, n: u64) {
        self.shards[shard_index()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The sum of all additions so far.
    pub fn sum(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

/// The calling thread's shard, assigned round-robin on its first addition.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| {
        if index.get() == usize::MAX {
            index.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        index.get()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additions_from_many_threads_all_count() {
        let counter = ShardedCounter::default();
        std::thread::scope(|s| {
            for _ in 0..2 * SHARDS {
                s.spawn(|| (0..1000).for_each(|_| counter.add(3)));
            }
        });
        assert_eq!(counter.sum(), 2 * SHARDS as u64 * 3000);
    }
}
