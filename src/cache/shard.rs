//! One node's share of the cache: an LRU of blocks, a unit store, counters, buffers.
//!
//! Both LRUs are bounded in bytes, not entries: before an entry is admitted, entries are
//! evicted from the cold end until it fits, under the same lock that admits it, so the
//! resident bytes never exceed the budget even with many concurrent readers.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use lru::LruCache;

use super::block::{Block, Buf, Recycler};
use super::stats::{NodeCounters, NodeStats};
use super::BlockKey;
use crate::content::threads::spin_until;
use crate::content::ContentId;

/// The share of a shard's budget that goes to dedup units when the dedup ratio is above 1.
const UNIT_SHARE: u64 = 4;

/// Lets a read-ahead window use at most this fraction (1/n) of a shard's block budget.
const WINDOW_SHARE: u64 = 4;

/// How long a reader spins on a pending block before it sleeps.
const WAIT_SPIN: Duration = Duration::from_micros(60);

/// A cache entry: a block, or the promise of one being generated.
#[derive(Debug)]
pub(super) struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
    len: u64,
    /// Whether read-ahead asked for the block.
    ahead: bool,
    /// Whether a read has used it.
    used: AtomicBool,
    /// Whether the state has left `Pending`.
    settled: AtomicBool,
}

#[derive(Debug)]
enum SlotState {
    Pending,
    Ready(Arc<Block>),
    Failed,
}

impl Slot {
    fn new(len: usize, ahead: bool) -> Arc<Slot> {
        Arc::new(Slot {
            state: Mutex::new(SlotState::Pending),
            ready: Condvar::new(),
            len: len as u64,
            ahead,
            used: AtomicBool::new(false),
            settled: AtomicBool::new(false),
        })
    }

    /// The block once generated; `None` when its generation failed.
    ///
    /// With `spin` (the block is generated on another CPU), a reader that reaches it still
    /// pending spins for up to [`WAIT_SPIN`] first: the generation is a few tens of
    /// microseconds from done, and sleeping costs a cross-CPU wake-up of about as long.
    pub(super) fn wait(&self, spin: bool) -> Option<Arc<Block>> {
        if spin && !self.settled.load(Ordering::Acquire) {
            spin_until(WAIT_SPIN, || self.settled.load(Ordering::Acquire));
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match &*state {
                SlotState::Ready(block) => return Some(Arc::clone(block)),
                SlotState::Failed => return None,
                SlotState::Pending => {
                    state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner())
                }
            }
        }
    }

    fn settle(&self, outcome: SlotState) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*state, SlotState::Pending) {
            *state = outcome;
        }
        self.settled.store(true, Ordering::Release);
        self.ready.notify_all();
    }
}

/// The duty to fill a pending slot; dropped unfilled (a panic), it fails the slot so that
/// waiting readers generate the block themselves instead of waiting forever.
#[derive(Debug)]
pub(super) struct Reservation(Arc<Slot>);

impl Reservation {
    /// Makes the block available to every reader of the slot.
    pub(super) fn publish(self, block: Arc<Block>) {
        self.0.settle(SlotState::Ready(block));
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.0.settle(SlotState::Failed);
    }
}

/// The outcome of looking a block up.
#[derive(Debug)]
pub(super) enum Lookup {
    /// Cached or being generated: wait on the slot.
    Found(Arc<Slot>),
    /// Not there; the caller generates it and publishes it.
    Reserved(Reservation),
    /// Larger than the shard's budget; the caller generates it and keeps it to itself.
    Uncacheable,
}

#[derive(Debug)]
struct Blocks {
    lru: LruCache<BlockKey, Arc<Slot>>,
    bytes: u64,
}

#[derive(Debug)]
struct Units {
    lru: LruCache<ContentId, Box<[u8]>>,
    bytes: u64,
    budget: u64,
}

/// One node's blocks, dedup units, counters and spare buffers.
#[derive(Debug)]
pub(super) struct Shard {
    blocks: Mutex<Blocks>,
    block_budget: u64,
    units: Option<Mutex<Units>>,
    recycler: Arc<Recycler>,
    counters: NodeCounters,
    /// Whether read-ahead runs on another CPU than the reader's (the node has several),
    /// so that a reader waiting for a pending block spins before it sleeps.
    spin_wait: bool,
}

impl Shard {
    /// A shard of `budget` bytes; with `dedup` a quarter of it holds dedup units. With
    /// `spin_wait`, readers spin a moment on a pending block (see [`Slot::wait`]).
    pub(super) fn new(budget: u64, dedup: bool, block_size: usize, spin_wait: bool) -> Shard {
        let unit_budget = if dedup { budget / UNIT_SHARE } else { 0 };
        let units = dedup.then(|| {
            Mutex::new(Units {
                lru: LruCache::unbounded(),
                bytes: 0,
                budget: unit_budget,
            })
        });
        Shard {
            blocks: Mutex::new(Blocks {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            block_budget: budget - unit_budget,
            units,
            recycler: Arc::new(Recycler::new(block_size)),
            counters: NodeCounters::default(),
            spin_wait,
        }
    }

    /// The largest read-ahead window this shard affords, in blocks.
    pub(super) fn max_window(&self) -> u64 {
        self.block_budget / self.recycler.size() as u64 / WINDOW_SHARE
    }

    /// Finds `key` (of `len` bytes) or reserves a slot for the caller to fill.
    pub(super) fn lookup(&self, key: BlockKey, len: usize) -> Lookup {
        let mut blocks = self.lock_blocks();
        if let Some(slot) = blocks.lru.get(&key) {
            let slot = Arc::clone(slot);
            drop(blocks);
            NodeCounters::add(&self.counters.hits, 1);
            if slot.ahead && !slot.used.swap(true, Ordering::Relaxed) {
                NodeCounters::add(&self.counters.ahead_used, 1);
            }
            return Lookup::Found(slot);
        }
        NodeCounters::add(&self.counters.misses, 1);
        match self.admit(&mut blocks, key, len, false) {
            Some(slot) => Lookup::Reserved(Reservation(slot)),
            None => Lookup::Uncacheable,
        }
    }

    /// Reserves a read-ahead slot for `key` unless it is cached or does not fit.
    pub(super) fn reserve_ahead(&self, key: BlockKey, len: usize) -> Option<Reservation> {
        let mut blocks = self.lock_blocks();
        if blocks.lru.contains(&key) {
            return None;
        }
        let slot = self.admit(&mut blocks, key, len, true)?;
        NodeCounters::add(&self.counters.ahead_generated, 1);
        Some(Reservation(slot))
    }

    /// Evicts until `len` more bytes fit, then inserts a pending slot for `key`.
    fn admit(
        &self,
        blocks: &mut Blocks,
        key: BlockKey,
        len: usize,
        ahead: bool,
    ) -> Option<Arc<Slot>> {
        let len64 = len as u64;
        if len64 > self.block_budget {
            return None;
        }
        while blocks.bytes + len64 > self.block_budget {
            let Some((_, old)) = blocks.lru.pop_lru() else {
                break;
            };
            blocks.bytes -= old.len;
            self.counters.resident.fetch_sub(old.len, Ordering::Relaxed);
            if old.ahead && !old.used.load(Ordering::Relaxed) {
                NodeCounters::add(&self.counters.ahead_wasted, 1);
            }
        }
        let slot = Slot::new(len, ahead);
        blocks.lru.put(key, Arc::clone(&slot));
        blocks.bytes += len64;
        NodeCounters::add(&self.counters.resident, len64);
        Some(slot)
    }

    /// The block of `key` when it is cached or being generated (waiting for it then), as a
    /// hit; `None` (a miss) otherwise, without reserving anything.
    pub(super) fn find(&self, key: BlockKey) -> Option<Arc<Block>> {
        let slot = self.lock_blocks().lru.get(&key).map(Arc::clone);
        let Some(slot) = slot else {
            NodeCounters::add(&self.counters.misses, 1);
            return None;
        };
        NodeCounters::add(&self.counters.hits, 1);
        if slot.ahead && !slot.used.swap(true, Ordering::Relaxed) {
            NodeCounters::add(&self.counters.ahead_used, 1);
        }
        self.wait(&slot)
    }

    /// The block of `slot` once it is generated; `None` when its generation failed.
    pub(super) fn wait(&self, slot: &Slot) -> Option<Arc<Block>> {
        slot.wait(self.spin_wait)
    }

    /// Drops `key` from the LRU: a sequential reader has read the whole block. Its buffer
    /// returns to the arena as soon as the reply that holds it is sent, so read-ahead keeps
    /// cycling through a few buffers that stay in the CPU caches.
    pub(super) fn forget(&self, key: BlockKey) {
        let mut blocks = self.lock_blocks();
        if let Some(old) = blocks.lru.pop(&key) {
            blocks.bytes -= old.len;
            self.counters.resident.fetch_sub(old.len, Ordering::Relaxed);
        }
    }

    /// A buffer of `len` bytes for a block, from the shard's arena when full-size.
    pub(super) fn buffer(&self, len: usize) -> Buf {
        self.recycler.take(len)
    }

    /// Wraps generated bytes into a block whose arena buffer returns to this shard.
    pub(super) fn wrap(&self, buf: Buf) -> Arc<Block> {
        Arc::new(Block::new(buf, Arc::clone(&self.recycler)))
    }

    /// Whether this shard keeps a dedup unit store.
    pub(super) fn has_units(&self) -> bool {
        self.units.is_some()
    }

    /// Copies every unit of `wanted` the store holds into `out`; returns the others.
    pub(super) fn copy_units(
        &self,
        wanted: &[(ContentId, Range<usize>)],
        out: &mut [u8],
    ) -> Vec<(ContentId, Range<usize>)> {
        let Some(units) = &self.units else {
            return wanted.to_vec();
        };
        let mut units = lock(units);
        let mut missing = Vec::new();
        for (id, range) in wanted {
            match units.lru.get(id) {
                Some(bytes) => out[range.clone()].copy_from_slice(bytes),
                None => missing.push((*id, range.clone())),
            }
        }
        drop(units);
        let hits = (wanted.len() - missing.len()) as u64;
        NodeCounters::add(&self.counters.unit_hits, hits);
        NodeCounters::add(&self.counters.unit_misses, missing.len() as u64);
        missing
    }

    /// Stores copies of the units `fresh` from `out`, evicting cold units to stay in budget.
    pub(super) fn store_units(&self, fresh: &[(ContentId, Range<usize>)], out: &[u8]) {
        let Some(units) = &self.units else { return };
        let copies: Vec<(ContentId, Box<[u8]>)> = fresh
            .iter()
            .map(|(id, r)| (*id, out[r.clone()].into()))
            .collect();
        let mut units = lock(units);
        for (id, bytes) in copies {
            let len = bytes.len() as u64;
            if len > units.budget || units.lru.contains(&id) {
                continue;
            }
            while units.bytes + len > units.budget {
                let Some((_, old)) = units.lru.pop_lru() else {
                    break;
                };
                units.bytes -= old.len() as u64;
                self.counters
                    .resident
                    .fetch_sub(old.len() as u64, Ordering::Relaxed);
            }
            units.lru.put(id, bytes);
            units.bytes += len;
            NodeCounters::add(&self.counters.resident, len);
        }
    }

    /// The shard's counters now.
    pub(super) fn snapshot(&self) -> NodeStats {
        self.counters.snapshot()
    }

    fn lock_blocks(&self) -> MutexGuard<'_, Blocks> {
        lock(&self.blocks)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
