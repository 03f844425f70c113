//! Where fills run: the calling thread, rayon's global pool, or a sized pool shared by
//! every generator asking for the same `max_threads`.
//!
//! The bytes never depend on this choice; only the speed does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use dgenfs::Generator;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

/// The threads that fill a buffer.
#[derive(Clone)]
pub enum Threads {
    /// Fill on the calling thread only (`max_threads=1`).
    Calling,
    /// Fill on rayon's global pool, one thread per core (`max_threads=None` or 0).
    Global,
    /// Fill on a pool of a given size.
    Pool(Arc<rayon::ThreadPool>),
}

impl Threads {
    /// Picks the threads for `max_threads` as dgen-py reads it: None or 0 means every core.
    pub fn new(max_threads: Option<usize>) -> PyResult<Self> {
        match max_threads {
            None | Some(0) => Ok(Threads::Global),
            Some(1) => Ok(Threads::Calling),
            Some(n) => shared_pool(n).map(Threads::Pool),
        }
    }

    /// Fills `out` with the stream of `generator` from `offset` on, turning a panic into a
    /// `RuntimeError`. Runs without the GIL when the caller has detached.
    pub fn fill(&self, generator: &Generator, offset: u64, out: &mut [u8]) -> PyResult<()> {
        crate::no_panic("generating data", || match self {
            Threads::Calling => generator.fill(offset, out),
            Threads::Global => generator.fill_par(offset, out),
            Threads::Pool(pool) => generator.fill_in(pool, offset, out),
        })
    }
}

/// Returns the pool of `n` threads, starting it on first use.
fn shared_pool(n: usize) -> PyResult<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(pool) = pools.get(&n) {
        return Ok(pool.clone());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("dgen-py-{i}"))
        .build()
        .map_err(|e| PyOSError::new_err(format!("cannot start {n} generator threads: {e}")))?;
    let pool = Arc::new(pool);
    pools.insert(n, pool.clone());
    Ok(pool)
}
