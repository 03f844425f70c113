//! Where fills run: the calling thread, a fill team (the calling thread plus pinned helpers)
//! shared by every generator asking for the same `max_threads`, or a pool bound to one NUMA
//! node.
//!
//! The bytes never depend on this choice; only the speed does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use dgenfs::cache::{Binder, NumaMode, TopologyError};
use dgenfs::content::team::FillTeam;
use dgenfs::content::threads::pin_current_thread;
use dgenfs::Generator;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

/// The threads that fill a buffer.
#[derive(Clone)]
pub enum Threads {
    /// Fill on the calling thread only (`max_threads=1`).
    Calling,
    /// Fill on the calling thread and the helpers of a team of a given size (one thread per
    /// CPU for `max_threads=None` or 0); short fills stay on the calling thread, and so does
    /// a fill while another Python thread's fill holds the team.
    Team(Arc<FillTeam>),
    /// Fill on a pool whose threads are bound to one NUMA node (`numa_node=N`). Every fill,
    /// however short, runs there, so that its stores come from the node's CPUs.
    Bound(Arc<rayon::ThreadPool>),
}

impl Threads {
    /// Picks the threads for `max_threads` as dgen-py reads it: None or 0 means every core.
    pub fn new(max_threads: Option<usize>) -> PyResult<Self> {
        match max_threads {
            None | Some(0) => shared_team(0).map(Threads::Team),
            Some(1) => Ok(Threads::Calling),
            Some(n) => shared_team(n).map(Threads::Team),
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
        shared_pool(node, binder, n).map(Threads::Bound)
    }

    /// Fills `out` with the stream of `generator` from `offset` on, turning a panic into a
    /// `RuntimeError`. Runs without the GIL when the caller has detached.
    pub fn fill(&self, generator: &Generator, offset: u64, out: &mut [u8]) -> PyResult<()> {
        crate::no_panic("generating data", || match self {
            Threads::Calling => generator.fill(offset, out),
            Threads::Team(team) => generator.fill_team(team, offset, out),
            Threads::Bound(pool) => generator.fill_in(pool, offset, out),
        })
    }
}

/// The binder for NUMA node `node` (its OS index), read from the machine once per node.
fn node_binder(node: usize) -> PyResult<Binder> {
    static BINDERS: OnceLock<Mutex<HashMap<usize, Binder>>> = OnceLock::new();
    cached(&BINDERS, node, || {
        Binder::detect(NumaMode::Node(node)).map_err(|e| match e {
            TopologyError::NoSuchNode { wanted, have } => PyValueError::new_err(format!(
                "invalid numa_node '{wanted}': this machine has NUMA nodes {have:?}"
            )),
            other => {
                PyOSError::new_err(format!("cannot place threads on NUMA node {node}: {other}"))
            }
        })
    })
}

/// The value `map` holds for `key`, made by `make` (and kept) on first use.
fn cached<K: std::hash::Hash + Eq, V: Clone>(
    map: &OnceLock<Mutex<HashMap<K, V>>>,
    key: K,
    make: impl FnOnce() -> PyResult<V>,
) -> PyResult<V> {
    let mut values = map
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(value) = values.get(&key) {
        return Ok(value.clone());
    }
    let value = make()?;
    values.insert(key, value.clone());
    Ok(value)
}

/// Returns the fill team of `n` threads (one per allowed CPU when 0), the caller included,
/// starting it on first use.
fn shared_team(n: usize) -> PyResult<Arc<FillTeam>> {
    static TEAMS: OnceLock<Mutex<HashMap<usize, Arc<FillTeam>>>> = OnceLock::new();
    cached(&TEAMS, n, || {
        FillTeam::new(n, "dgen-py")
            .map(Arc::new)
            .map_err(|e| PyOSError::new_err(format!("cannot start {n} generator threads: {e}")))
    })
}

/// Returns the pool of `n` threads bound to NUMA node `node` (its OS index) by `binder`, each
/// pinned to its own CPU of the node, starting it on first use.
fn shared_pool(node: usize, binder: Binder, n: usize) -> PyResult<Arc<rayon::ThreadPool>> {
    type Pools = HashMap<(usize, usize), Arc<rayon::ThreadPool>>;
    static POOLS: OnceLock<Mutex<Pools>> = OnceLock::new();
    cached(&POOLS, (node, n), || {
        // The binder's plan holds just this node, as shard 0; within it, thread `i` keeps
        // to the node's `i`-th CPU so that a fill's shares run side by side.
        let cpus = binder.plan().nodes()[0].cpus.clone();
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(move |i| format!("dgen-py-n{node}-{i}"))
            .start_handler(move |i| {
                binder.bind_current_thread(0);
                if cpus.len() > 1 {
                    pin_current_thread(cpus[i % cpus.len()]);
                }
            })
            .build()
            .map(Arc::new)
            .map_err(|e| PyOSError::new_err(format!("cannot start {n} generator threads: {e}")))
    })
}
