//! A fill team: the calling thread plus pinned helper threads that wait for the next fill by
//! spinning for a while before they sleep.
//!
//! A split fill on a rayon pool costs three wake-ups (two pool threads and the caller) and on
//! the project's VMs a wake-up on another CPU takes 25-50 µs, as long as filling 1 MiB. For
//! back-to-back fills of a few MiB that loses a third of the second thread. Here the caller
//! fills the first share itself, and helpers that finished a share less than
//! [`SPIN_FOR`] ago pick up the next one without being woken; the caller likewise spins a
//! little for the helpers to finish before it sleeps. An idle team sleeps on condition
//! variables and costs nothing.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::threads::{allowed_cpus, current_cpu, pin_current_thread, spin_until};

/// How long a helper spins for the next job after finishing one, before it sleeps.
pub const SPIN_FOR: Duration = Duration::from_micros(200);

/// How long the caller spins for the helpers to finish its job, before it sleeps.
const WAIT_SPIN_FOR: Duration = Duration::from_micros(100);

/// The job being run: a borrowed closure with its lifetime erased. [`FillTeam::run`] does not
/// return before every helper has finished with it, so the borrow outlives every use.
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn(usize) + Sync));

// SAFETY: the closure is `Sync`, and `run` keeps it alive while helpers call it.
unsafe impl Send for Job {}

/// What the caller and the helpers share.
struct Shared {
    /// Bumped once per job (and once at shutdown); a helper runs each epoch once.
    epoch: AtomicU64,
    /// The current job; written before `epoch` is bumped.
    job: Mutex<Option<Job>>,
    /// Helpers still working on the current job.
    remaining: AtomicUsize,
    /// Helpers asleep (or about to be) on `wake`.
    sleepers: AtomicUsize,
    /// Whether the caller is asleep (or about to be) on `done`.
    caller_sleeps: AtomicBool,
    /// The CPU the caller was on when it posted the current job (`usize::MAX`: unknown).
    caller_cpu: AtomicUsize,
    /// The first panic of a helper in the current job, re-raised on the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    shutdown: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
    done: Condvar,
}

/// The calling thread and `threads - 1` helpers pinned one per CPU, away from the caller's.
pub struct FillTeam {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
    /// Held by the caller whose job is running; a second caller fills alone.
    busy: Mutex<()>,
    /// The process that started the helpers: a forked child has none of them.
    pid: u32,
}

impl FillTeam {
    /// A team of `threads` threads in all (one per allowed CPU when 0): the caller and
    /// `threads - 1` helpers, helper `i` pinned to the `i`-th allowed CPU after the one the
    /// caller runs on (round robin when there are more threads than CPUs; nothing is pinned
    /// with one allowed CPU).
    pub fn new(threads: usize, name: &str) -> std::io::Result<FillTeam> {
        let cpus = allowed_cpus();
        let threads = match threads {
            0 => cpus.len().max(1),
            n => n,
        };
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: Mutex::new(None),
            remaining: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            caller_sleeps: AtomicBool::new(false),
            caller_cpu: AtomicUsize::new(usize::MAX),
            panic: Mutex::new(None),
            shutdown: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            done: Condvar::new(),
        });
        let mut team = FillTeam {
            shared,
            helpers: Vec::with_capacity(threads - 1),
            busy: Mutex::new(()),
            pid: std::process::id(),
        };
        for i in 1..threads {
            let shared = team.shared.clone();
            let cpus = cpus.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || helper(&shared, i, &cpus))?;
            team.helpers.push(handle);
        }
        Ok(team)
    }

    /// Threads that take part in a job, the caller included.
    pub fn threads(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Calls `work(i)` once for every `i` in `0..threads()`: `work(0)` on the calling
    /// thread, the others on the helpers, and returns when all have returned. A panic in any
    /// of them is raised here once all are done. While another thread's job is running, the
    /// caller does every `work(i)` itself, in order; so does a forked child of the process
    /// that made the team, which has no helpers.
    pub fn run(&self, work: &(dyn Fn(usize) + Sync)) {
        if std::process::id() != self.pid {
            return (0..self.threads()).for_each(work);
        }
        let _busy = match self.busy.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                (0..self.threads()).for_each(work);
                return;
            }
        };
        if self.helpers.is_empty() {
            return work(0);
        }
        let shared = &*self.shared;
        // SAFETY: erases the borrow's lifetime; `wait_done` below returns only after every
        // helper has finished calling `work`, before this frame (and the borrow) ends.
        let job: Job = Job(unsafe {
            std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(work)
        });
        *lock(&shared.job) = Some(job);
        shared.caller_cpu.store(current_cpu(), SeqCst);
        shared.remaining.store(self.helpers.len(), SeqCst);
        shared.epoch.fetch_add(1, SeqCst);
        if shared.sleepers.load(SeqCst) > 0 {
            let _guard = lock(&shared.lock);
            shared.wake.notify_all();
        }
        let own = catch_unwind(AssertUnwindSafe(|| work(0)));
        wait_done(shared);
        *lock(&shared.job) = None;
        if let Err(panic) = own {
            std::panic::resume_unwind(panic);
        }
        if let Some(panic) = lock(&shared.panic).take() {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for FillTeam {
    fn drop(&mut self) {
        let shared = &*self.shared;
        shared.shutdown.store(true, SeqCst);
        shared.epoch.fetch_add(1, SeqCst);
        {
            let _guard = lock(&shared.lock);
            shared.wake.notify_all();
        }
        for handle in self.helpers.drain(..) {
            let _ = handle.join();
        }
    }
}

impl std::fmt::Debug for FillTeam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillTeam")
            .field("threads", &self.threads())
            .finish()
    }
}

/// Locks `mutex`, ignoring poisoning: every value guarded here stays valid across a panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The caller's wait for the helpers: a short spin, then sleep until the last one is done.
fn wait_done(shared: &Shared) {
    if spin_until(WAIT_SPIN_FOR, || shared.remaining.load(SeqCst) == 0) {
        return;
    }
    let mut guard = lock(&shared.lock);
    shared.caller_sleeps.store(true, SeqCst);
    while shared.remaining.load(SeqCst) != 0 {
        guard = shared
            .done
            .wait(guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    shared.caller_sleeps.store(false, SeqCst);
}

/// The CPU helper `index` keeps to while the caller runs on `caller` (`usize::MAX`:
/// unknown): the `index`-th allowed CPU after the caller's, so that no helper shares the
/// caller's CPU; `None` with fewer than two allowed CPUs.
fn helper_cpu(cpus: &[usize], index: usize, caller: usize) -> Option<usize> {
    if cpus.len() < 2 {
        return None;
    }
    let at = cpus.iter().position(|&cpu| cpu == caller).unwrap_or(0);
    Some(cpus[(at + index) % cpus.len()])
}

/// A helper's loop: wait for an epoch it has not run, run its share, report, repeat.
///
/// A helper is pinned to the CPU [`helper_cpu`] gives for the caller's CPU, and moves when
/// the caller has moved onto it: the scheduler may wake the caller on any CPU, and a share
/// run on the caller's CPU halves the team.
fn helper(shared: &Shared, index: usize, cpus: &[usize]) {
    let mut pinned = helper_cpu(cpus, index, cpus.first().copied().unwrap_or(usize::MAX));
    if let Some(cpu) = pinned {
        pin_current_thread(cpu);
    }
    // Epoch 0 is the team's start: a job posted before this thread runs is still new to it.
    let mut seen = 0;
    loop {
        if !spin_until(SPIN_FOR, || shared.epoch.load(SeqCst) != seen) {
            let mut guard = lock(&shared.lock);
            // Counted before the epoch is read again: a caller that bumps the epoch after
            // that read sees the count and notifies under the lock.
            shared.sleepers.fetch_add(1, SeqCst);
            while shared.epoch.load(SeqCst) == seen {
                guard = shared
                    .wake
                    .wait(guard)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            shared.sleepers.fetch_sub(1, SeqCst);
        }
        seen = shared.epoch.load(SeqCst);
        if shared.shutdown.load(SeqCst) {
            return;
        }
        let wanted = helper_cpu(cpus, index, shared.caller_cpu.load(SeqCst));
        if wanted != pinned {
            if let Some(cpu) = wanted {
                pin_current_thread(cpu);
            }
            pinned = wanted;
        }
        let job = *lock(&shared.job);
        if let Some(Job(work)) = job {
            // SAFETY: the caller is inside `run` until `remaining` reaches zero below.
            let work = unsafe { &*work };
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| work(index))) {
                lock(&shared.panic).get_or_insert(panic);
            }
        }
        if shared.remaining.fetch_sub(1, SeqCst) == 1 && shared.caller_sleeps.load(SeqCst) {
            let _guard = lock(&shared.lock);
            shared.done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_runs_once_per_job() {
        for threads in [1, 2, 3, 5] {
            let team = FillTeam::new(threads, "test").unwrap();
            assert_eq!(team.threads(), threads);
            for round in 0..200 {
                let hits: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
                team.run(&|i| {
                    hits[i].fetch_add(1, SeqCst);
                });
                let hits: Vec<usize> = hits.iter().map(|h| h.load(SeqCst)).collect();
                assert_eq!(hits, vec![1; threads], "round {round}");
                if round % 50 == 0 {
                    // Let the helpers fall asleep, so the next job must wake them.
                    std::thread::sleep(SPIN_FOR * 3);
                }
            }
        }
    }

    #[test]
    fn a_forked_child_runs_every_index_itself() {
        let team = FillTeam::new(2, "test").unwrap();
        team.run(&|_| {});
        // SAFETY: the child only runs the team's fallback path and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let hits = AtomicUsize::new(0);
            team.run(&|_| {
                hits.fetch_add(1, SeqCst);
            });
            unsafe { libc::_exit(if hits.load(SeqCst) == 2 { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }

    #[test]
    fn helpers_keep_off_the_callers_cpu() {
        assert_eq!(helper_cpu(&[3], 1, 3), None);
        assert_eq!(helper_cpu(&[0, 1], 1, 0), Some(1));
        assert_eq!(helper_cpu(&[0, 1], 1, 1), Some(0));
        assert_eq!(helper_cpu(&[0, 1], 1, usize::MAX), Some(1));
        let cpus = [2, 4, 6, 8];
        for caller in cpus {
            let mut used: Vec<usize> = (1..4)
                .filter_map(|i| helper_cpu(&cpus, i, caller))
                .collect();
            assert!(!used.contains(&caller), "caller {caller}: {used:?}");
            used.sort();
            used.dedup();
            assert_eq!(used.len(), 3, "caller {caller}: distinct helpers");
        }
    }

    #[test]
    fn concurrent_callers_all_complete() {
        let team = FillTeam::new(2, "test").unwrap();
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100 {
                        team.run(&|_| {
                            total.fetch_add(1, SeqCst);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(SeqCst), 4 * 100 * 2);
    }

    #[test]
    fn a_helper_panic_reaches_the_caller_and_the_team_goes_on() {
        let team = FillTeam::new(2, "test").unwrap();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            team.run(&|i| assert!(i == 0, "helper share fails"));
        }));
        assert!(caught.is_err());
        let ran = AtomicUsize::new(0);
        team.run(&|_| {
            ran.fetch_add(1, SeqCst);
        });
        assert_eq!(ran.load(SeqCst), 2);
    }
}
