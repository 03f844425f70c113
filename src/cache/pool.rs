//! A node's generation pool: a few threads that sleep until a block is queued.
//!
//! Read-ahead queues one small job per block, a few times per millisecond per reader. A
//! rayon pool runs such jobs, but its idle threads spin (`sched_yield`) for a while before
//! they sleep, and with jobs arriving this often they never sleep: on the two-core machine
//! this project is measured on, the spinning took a fifth of both cores from the FUSE
//! threads that copy the blocks out. These threads block on a condition variable instead.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next job, or `None` once the pool is closed and drained.
    fn next(&self) -> Option<Job> {
        let mut queue = self.lock();
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                return Some(job);
            }
            if queue.closed {
                return None;
            }
            queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Threads that run queued jobs in order of submission.
pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `threads` threads named by `name(i)`; each runs `start(i)` first.
    pub fn new(
        threads: usize,
        name: impl Fn(usize) -> String,
        start: impl Fn(usize) + Send + Sync + 'static,
    ) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared::default());
        let start = Arc::new(start);
        let mut pool = Pool {
            shared,
            threads: Vec::with_capacity(threads),
        };
        for i in 0..threads.max(1) {
            let shared = Arc::clone(&pool.shared);
            let start = Arc::clone(&start);
            let handle = std::thread::Builder::new().name(name(i)).spawn(move || {
                start(i);
                while let Some(job) = shared.next() {
                    // A panicking job loses only itself: its reservation fails the slot,
                    // and readers waiting on it generate the block themselves.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })?;
            pool.threads.push(handle);
        }
        Ok(pool)
    }

    /// Number of threads.
    #[cfg(test)]
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Queues `job` and wakes one sleeping thread.
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        self.shared.lock().jobs.push_back(Box::new(job));
        self.shared.ready.notify_one();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl Drop for Pool {
    /// Runs the jobs already queued, then joins the threads.
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn runs_every_job_before_it_is_dropped() {
        let done = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let s = Arc::clone(&started);
        let pool = Pool::new(
            3,
            |i| format!("test{i}"),
            move |_| {
                s.fetch_add(1, Ordering::Relaxed);
            },
        )
        .unwrap();
        assert_eq!(pool.threads(), 3);
        for _ in 0..1000 {
            let done = Arc::clone(&done);
            pool.spawn(move || {
                done.fetch_add(1, Ordering::Relaxed);
            });
        }
        drop(pool);
        assert_eq!(done.load(Ordering::Relaxed), 1000);
        assert_eq!(started.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_panicking_job_does_not_stop_the_pool() {
        let done = Arc::new(AtomicUsize::new(0));
        let pool = Pool::new(1, |i| format!("test{i}"), |_| {}).unwrap();
        pool.spawn(|| panic!("job fails"));
        let d = Arc::clone(&done);
        pool.spawn(move || {
            d.fetch_add(1, Ordering::Relaxed);
        });
        drop(pool);
        assert_eq!(done.load(Ordering::Relaxed), 1);
    }
}
