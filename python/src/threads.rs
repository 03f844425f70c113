//! Where fills run: the calling thread, a pool of pinned threads shared by every
//! generator asking for the same `max_threads`, or a pool bound to one NUMA node.
//!
//! The bytes never depend on this choice; only the speed does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use dgenfs::cache::{Binder, NumaMode, TopologyError};
use dgenfs::content::threads::{pin_current_thread, spread_pool};
use dgenfs::Generator;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

/// The threads that fill a buffer.
#[derive(Clone)]
pub enum Threads {
    /// Fill on the calling thread only (`max_threads=1`).
    Calling,
    /// Fill on a pool of a given size (one thread per CPU for `max_threads=None` or 0);
    /// short fills stay on the calling thread.
    Pool(Arc<rayon::ThreadPool>),
    /// Fill on a pool whose threads are bound to one NUMA node (`numa_node=N`). Every fill,
    /// however short, runs there, so that its stores come from the node's CPUs.
    Bound(Arc<rayon::ThreadPool>),
}

impl Threads {
    /// Picks the threads for `max_threads` as dgen-py reads it: None or 0 means every core.
    pub fn new(max_threads: Option<usize>) -> PyResult<Self> {
        match max_threads {
            None | Some(0) => shared_pool(None, 0).map(Threads::Pool),
            Some(1) => Ok(Threads::Calling),
            Some(n) => shared_pool(None, n).map(Threads::Pool),
        }
    }

    /// Picks the threads for dgen-py's `numa_mode`, `numa_node` and `max_threads`.
    ///
    /// With a `numa_node` (and a mode other than "disabled") the fills run on a pool bound
    /// to that node's CPUs and memory: `max_threads` threads, or one per CPU of the node
    /// when it is None or 0. A node the machine lacks is a `ValueError` naming `numa_node`,
    /// whatever the mode. Without a node, "auto", "force" and "disabled" all fill as
    /// [`new`](Self::new) does.
    ///
    /// TODO: without `numa_node`, "auto" and "force" do not split a fill by node on a
    /// multi-node machine (each piece filled by a thread of the node holding its pages);
    /// the project's machines have one node, where that split is the plain pool.
    pub fn placed(
        numa_mode: &str,
        numa_node: Option<usize>,
        max_threads: Option<usize>,
    ) -> PyResult<Self> {
        let Some(node) = numa_node else {
            return Threads::new(max_threads);
        };
        let binder = node_binder(node)?;
        if numa_mode == "disabled" {
            return Threads::new(max_threads);
        }
        let n = match max_threads {
            None | Some(0) => binder.plan().pool_threads(0),
            Some(n) => n,
        };
        shared_pool(Some((node, binder)), n).map(Threads::Bound)
    }

    /// Fills `out` with the stream of `generator` from `offset` on, turning a panic into a
    /// `RuntimeError`. Runs without the GIL when the caller has detached.
    pub fn fill(&self, generator: &Generator, offset: u64, out: &mut [u8]) -> PyResult<()> {
        crate::no_panic("generating data", || match self {
            Threads::Calling => generator.fill(offset, out),
            Threads::Pool(pool) => generator.fill_in(pool, offset, out),
            Threads::Bound(pool) => generator.fill_in(pool, offset, out),
        })
    }
}

/// The binder for NUMA node `node` (its OS index), read from the machine once per node.
fn node_binder(node: usize) -> PyResult<Binder> {
    static BINDERS: OnceLock<Mutex<HashMap<usize, Binder>>> = OnceLock::new();
    let mut binders = BINDERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(binder) = binders.get(&node) {
        return Ok(binder.clone());
    }
    let binder = Binder::detect(NumaMode::Node(node)).map_err(|e| match e {
        TopologyError::NoSuchNode { wanted, have } => PyValueError::new_err(format!(
            "invalid numa_node '{wanted}': this machine has NUMA nodes {have:?}"
        )),
        other => PyOSError::new_err(format!("cannot place threads on NUMA node {node}: {other}")),
    })?;
    binders.insert(node, binder.clone());
    Ok(binder)
}

/// Returns the pool of `n` threads (one per allowed CPU when 0), each pinned to its own CPU, bound to a node when `node` is given (its OS index and
/// binder), starting it on first use.
fn shared_pool(node: Option<(usize, Binder)>, n: usize) -> PyResult<Arc<rayon::ThreadPool>> {
    type Pools = HashMap<(Option<usize>, usize), Arc<rayon::ThreadPool>>;
    static POOLS: OnceLock<Mutex<Pools>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let key = (node.as_ref().map(|(index, _)| *index), n);
    if let Some(pool) = pools.get(&key) {
        return Ok(pool.clone());
    }

    let pool = match node {
        None => spread_pool(n, |i| format!("dgen-py-{i}")),
        // The binder's plan holds just this node, as shard 0; within it, thread `i` keeps
        // to the node's `i`-th CPU so that a fill's shares run side by side.
        Some((index, binder)) => {
            let cpus = binder.plan().nodes()[0].cpus.clone();
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(move |i| format!("dgen-py-n{index}-{i}"))
                .start_handler(move |i| {
                    binder.bind_current_thread(0);
                    if cpus.len() > 1 {
                        pin_current_thread(cpus[i % cpus.len()]);
                    }
                })
                .build()
        }
    }
    .map_err(|e| PyOSError::new_err(format!("cannot start {n} generator threads: {e}")))?;
    let pool = Arc::new(pool);
    pools.insert(key, pool.clone());
    Ok(pool)
}
