//! A node's generation pool: one thread per CPU of the node, each with its own queue.
//!
//! Read-ahead queues one small job per block, a few times per millisecond per reader. A
//! rayon pool runs such jobs, but its idle threads spin (`sched_yield`) for a while before
//! they sleep, and with jobs arriving this often they never sleep: on the two-core machine
//! this project is measured on, the spinning took a fifth of both cores from the FUSE
//! threads that copy the blocks out. These threads block on a condition variable instead.
//!
//! Each thread keeps to one CPU, and a job goes to a thread on another CPU than the one
//! that queues it ([`Pool::spawn_away`]). A thread woken by a FUSE thread is otherwise put
//! on the waker's CPU (the scheduler favours the waker's cache), so the blocks generated
//! "ahead" were generated on the reader's own CPU, between its requests, and a single
//! reader gained nothing from the idle cores (see docs/BENCHMARKS.md, Cache).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::content::threads::{allowed_cpus, current_cpu, pin_current_thread};

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

/// One thread's queue, and the CPU the thread keeps to.
#[derive(Default)]
struct Worker {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Jobs queued and not yet finished.
    load: AtomicUsize,
    /// The CPU the thread is pinned to, if any.
    cpu: Option<usize>,
}

impl Worker {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next job, or `None` once the pool is closed and this queue drained.
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

/// Threads that run queued jobs, each thread its own jobs in order of submission.
pub struct Pool {
    workers: Vec<Arc<Worker>>,
    threads: Vec<JoinHandle<()>>,
    /// Where the search for the least loaded worker starts, so ties rotate.
    next: AtomicUsize,
}

impl Pool {
    /// Starts `threads` threads named by `name(i)`; each runs `start(i)` first. Thread `i`
    /// is pinned to the `i`-th (round robin) of the CPUs in `cpus` that this process may
    /// use, when there are two or more of them; otherwise nothing is pinned.
    pub fn new(
        threads: usize,
        cpus: &[usize],
        name: impl Fn(usize) -> String,
        start: impl Fn(usize) + Send + Sync + 'static,
    ) -> std::io::Result<Pool> {
        let allowed = allowed_cpus();
        let usable: Vec<usize> = cpus
            .iter()
            .copied()
            .filter(|cpu| allowed.contains(cpu))
            .collect();
        let start = Arc::new(start);
        let mut pool = Pool {
            workers: Vec::new(),
            threads: Vec::new(),
            next: AtomicUsize::new(0),
        };
        for i in 0..threads.max(1) {
            let worker = Arc::new(Worker {
                cpu: (usable.len() > 1).then(|| usable[i % usable.len()]),
                ..Worker::default()
            });
            let (w, start) = (Arc::clone(&worker), Arc::clone(&start));
            let handle = std::thread::Builder::new().name(name(i)).spawn(move || {
                start(i);
                if let Some(cpu) = w.cpu {
                    pin_current_thread(cpu);
                }
                while let Some(job) = w.next() {
                    // A panicking job loses only itself: its reservation fails the slot,
                    // and readers waiting on it generate the block themselves.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    w.load.fetch_sub(1, Ordering::Relaxed);
                }
            })?;
            // On an error above, dropping the pool closes and joins the threads started.
            pool.workers.push(worker);
            pool.threads.push(handle);
        }
        Ok(pool)
    }

    /// Number of threads.
    #[cfg(test)]
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// The CPU each thread keeps to, in thread order.
    #[cfg(test)]
    fn cpus(&self) -> Vec<Option<usize>> {
        self.workers.iter().map(|w| w.cpu).collect()
    }

    /// Queues `job` on the least loaded thread that does not run on the calling thread's
    /// CPU (any thread when they all do), and wakes it.
    pub fn spawn_away(&self, job: impl FnOnce() + Send + 'static) {
        let worker = &self.workers[self.pick(current_cpu())];
        worker.load.fetch_add(1, Ordering::Relaxed);
        worker.lock().jobs.push_back(Box::new(job));
        worker.ready.notify_one();
    }

    /// The worker for a job queued from `cpu`.
    fn pick(&self, cpu: usize) -> usize {
        let n = self.workers.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let candidates = (0..n).map(|k| (first + k) % n);
        let load = |i: &usize| self.workers[*i].load.load(Ordering::Relaxed);
        candidates
            .clone()
            .filter(|&i| self.workers[i].cpu != Some(cpu))
            .min_by_key(load)
            .or_else(|| candidates.min_by_key(load))
            .unwrap_or(0)
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
        for worker in &self.workers {
            worker.lock().closed = true;
            worker.ready.notify_all();
        }
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_every_job_before_it_is_dropped() {
        let done = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let s = Arc::clone(&started);
        let pool = Pool::new(
            3,
            &allowed_cpus(),
            |i| format!("test{i}"),
            move |_| {
                s.fetch_add(1, Ordering::Relaxed);
            },
        )
        .unwrap();
        assert_eq!(pool.threads(), 3);
        for _ in 0..1000 {
            let done = Arc::clone(&done);
            pool.spawn_away(move || {
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
        let pool = Pool::new(1, &[], |i| format!("test{i}"), |_| {}).unwrap();
        pool.spawn_away(|| panic!("job fails"));
        let d = Arc::clone(&done);
        pool.spawn_away(move || {
            d.fetch_add(1, Ordering::Relaxed);
        });
        drop(pool);
        assert_eq!(done.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn threads_keep_to_distinct_cpus_and_jobs_run_away_from_the_caller() {
        let cpus = allowed_cpus();
        let pool = Pool::new(cpus.len(), &cpus, |i| format!("test{i}"), |_| {}).unwrap();
        if cpus.len() < 2 {
            assert!(pool.cpus().iter().all(Option::is_none));
            return;
        }
        let mut pinned: Vec<usize> = pool.cpus().into_iter().flatten().collect();
        pinned.sort_unstable();
        assert_eq!(pinned, cpus);
        for &caller in &cpus {
            for _ in 0..2 * cpus.len() {
                let worker = pool.pick(caller);
                assert_ne!(pool.workers[worker].cpu, Some(caller));
            }
        }
        // From a caller kept to one CPU, a job runs on another.
        pin_current_thread(cpus[0]);
        let (tx, rx) = std::sync::mpsc::channel();
        pool.spawn_away(move || tx.send(current_cpu()).unwrap());
        assert_ne!(rx.recv().unwrap(), cpus[0]);
    }

    #[test]
    fn a_cpu_outside_the_allowed_set_is_not_pinned() {
        let pool = Pool::new(
            2,
            &[usize::MAX - 1, usize::MAX - 2],
            |i| format!("t{i}"),
            |_| {},
        )
        .unwrap();
        assert!(pool.cpus().iter().all(Option::is_none));
        // With no thread on the caller's CPU every thread is a candidate.
        for _ in 0..4 {
            assert!(pool.pick(0) < 2);
        }
    }
}
