//! The NUMA-aware block cache and read-ahead behind the mount.
//!
//! # What is cached, under which key
//!
//! Reads are served from *blocks*: [`CacheConfig::block_size`] bytes (1 MiB by default) of
//! one file, starting at a multiple of the block size in that file and keyed by
//! [`BlockKey`] (file, block number). A block is a pure function of its key, so it is the
//! content identity of those bytes; keying by the file rather than by the stream makes a
//! 1 MiB read at a 1 MiB-aligned file offset (what `dd`, `cp` and the kernel send) exactly
//! one block, which is replied to straight from the cached buffer without a copy.
//!
//! A block-keyed cache alone cannot see dedup: with 4 KiB dedup units a 1 MiB block holds
//! 256 units of unrelated content ids and never recurs. So when the dedup ratio is above 1,
//! each shard also keeps a *unit store*: whole dedup units keyed by [`ContentId`]. Building
//! a block copies every unit the store holds and generates only the others, which then
//! enter the store. A duplicate points back at most
//! [`WINDOW_BYTES`](crate::content::dedup::WINDOW_BYTES) (64 MiB) of stream, whose
//! originals take `64 MiB / dedup` bytes, so a unit store of a quarter of the cache (64 MiB
//! by default) holds the whole window and an end-to-end read of a dedup-`d` tree hits on
//! every duplicate: a unit hit rate of `1 - 1/d` (90% for dedup 10). The blocks get the
//! other three quarters. Units cut by a file boundary are generated, not stored.
//!
//! # What it buys
//!
//! One core generates about as fast as it copies memory, so a hit saves the reading thread
//! little by itself: the value is that blocks are generated *ahead*, on the other cores of
//! the reader's node, while the FUSE thread replies, and that the reply needs no fill.
//! Dedup units are copied, not generated, which helps when generation is the slower of the
//! two (low compress ratios with small sectors). `docs/BENCHMARKS.md` has the numbers.
//!
//! # Shards, pools and threads
//!
//! One shard per NUMA node of the [`Plan`] (one for `--numa uma`): its own LRU of blocks,
//! its own unit store, its own counters, an even share of the byte budget, and one
//! generation pool with a thread per CPU of the node, each bound to the node's memory and
//! kept to its CPU. A read-ahead job goes to the least busy pool thread on another CPU
//! than the reader's, so blocks are generated beside the reader, not between its requests. A FUSE
//! session thread is dealt a node round-robin on its first read, binds itself to it, and
//! from then on reads only from that node's shard and asks only that node's pool to read
//! ahead, so blocks are allocated and first touched on the node that reads them. A block
//! cached on another node is generated again rather than pulled across the interconnect.
//!
//! # Read-ahead
//!
//! Each open file handle has a [`Sequence`]: sequential readers get a window of blocks
//! generated ahead that starts at one block and doubles up to
//! [`CacheConfig::max_window`]; a random read collapses it, and random readers never cause
//! read-ahead work. A block being generated ahead sits in the LRU as a pending slot; a read
//! that reaches it waits for it rather than generating it twice.
//!
//! A block that a sequential reader has read to its end leaves the cache at once (use-once,
//! as the kernel's page cache treats streams): a stream is rarely read twice, and so the
//! buffer goes back to the shard's arena when its reply is sent, and read-ahead cycles
//! through a few buffers that stay in the CPU caches instead of sweeping the whole budget
//! through memory. Random reads are served from a block that is already cached, but never
//! make one: they fill only their own bytes (through the unit store when there is one).
//! Blocks read partly, and dedup units, age normally.
//!
//! # Bounds
//!
//! Resident bytes (blocks plus units) never exceed the budget: room is made by evicting
//! least-recently-used entries before a new one is admitted, and an entry larger than its
//! shard's budget is never admitted. Memory outside the budget is the blocks still being
//! sent to the kernel after eviction (one per FUSE thread at most) and the free buffers of
//! each shard's arena, which grows only to the most blocks ever alive at once.
//!
//! This module knows nothing of FUSE or inodes: the fs core hands it a [`FileExtent`].

pub mod readahead;
pub mod stats;
pub mod topology;

mod block;
mod pool;
mod shard;

use std::cell::Cell;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use block::{Block, BlockSlice};
use pool::Pool;
use readahead::{Geometry, Sequence};
use shard::{Lookup, Shard};
pub use stats::{CacheStats, NodeStats};
pub use topology::{Binder, NumaMode, Plan, TopologyError};

use crate::content::{ContentId, Generator};
use crate::tree::FileIndex;

/// Default cache budget: 256 MiB.
pub const DEFAULT_CAPACITY: u64 = 256 << 20;

/// Default block size: 1 MiB, the FUSE read size.
pub const DEFAULT_BLOCK_SIZE: usize = 1 << 20;

/// Default largest read-ahead window: 8 blocks.
pub const DEFAULT_MAX_WINDOW: u64 = 8;

/// How a cache is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Byte budget for blocks and dedup units over all nodes (default 256 MiB).
    pub capacity: u64,
    /// Bytes per block (default 1 MiB); a power of two of at least 4 KiB.
    pub block_size: usize,
    /// Largest read-ahead window per open file, in blocks (default 8); 0 turns it off.
    pub max_window: u64,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            capacity: DEFAULT_CAPACITY,
            block_size: DEFAULT_BLOCK_SIZE,
            max_window: DEFAULT_MAX_WINDOW,
        }
    }
}

/// Why a cache could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The placement could not be planned.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A generation pool could not start its threads.
    #[error("cannot start the generation pool of numa node {node}: {reason}")]
    Pool {
        /// The node's OS index.
        node: usize,
        /// What the OS said.
        reason: String,
    },
    /// The block size is not a power of two of at least 4 KiB.
    #[error("invalid block size {0}: expected a power of two of at least 4096")]
    BlockSize(usize),
}

/// A file as the cache sees it: where its bytes sit in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileExtent {
    /// The file's index in the tree.
    pub file: FileIndex,
    /// Stream offset of the file's first byte.
    pub stream_offset: u64,
    /// The file's length in bytes.
    pub len: u64,
}

/// Identity of a cached block: block `block` (offset `block * block_size`) of file `file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockKey {
    /// The file.
    pub file: FileIndex,
    /// Block number within the file.
    pub block: u64,
}

/// An open file handle's number in the read-ahead table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandleId(pub u64);

/// What a read produced: a slice of one cached block, or bytes copied into the caller's
/// buffer (a read spanning blocks).
#[derive(Debug)]
pub enum Served {
    /// The bytes are this slice of a block; nothing was written to the buffer.
    Block(BlockSlice),
    /// The first `n` bytes of the buffer hold the data.
    Buffer(usize),
}

/// The state shared with the generation pools' jobs.
#[derive(Debug)]
struct Inner {
    generator: Generator,
    config: CacheConfig,
    shards: Vec<Shard>,
    binder: Binder,
}

/// A block cache with per-node shards, generation pools and read-ahead.
#[derive(Debug)]
pub struct BlockCache {
    inner: Arc<Inner>,
    pools: Vec<Pool>,
    handles: Mutex<HashMap<HandleId, Sequence>>,
    next_handle: AtomicU64,
    next_thread: AtomicUsize,
    id: u64,
}

/// Source of cache ids, so a thread's node assignment is per cache.
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// (cache id, shard) this thread serves from; cache id 0 when not yet assigned.
    static THREAD_NODE: Cell<(u64, usize)> = const { Cell::new((0, 0)) };
}

impl BlockCache {
    /// A cache of `config` over `generator`'s stream, placed and bound by `binder`.
    pub fn new(
        generator: Generator,
        config: CacheConfig,
        binder: Binder,
    ) -> Result<BlockCache, CacheError> {
        if config.block_size < 4096 || !config.block_size.is_power_of_two() {
            return Err(CacheError::BlockSize(config.block_size));
        }
        let plan = binder.plan();
        let budget = plan.shard_budget(config.capacity);
        let dedup = !generator.dedup_map().is_identity();
        let shards = (0..plan.nodes().len())
            .map(|node| {
                let spin_wait = plan.nodes()[node].cpus.len() > 1;
                Shard::new(budget, dedup, config.block_size, spin_wait)
            })
            .collect();
        let pools = (0..plan.nodes().len())
            .map(|node| start_pool(&binder, node))
            .collect::<Result<_, _>>()?;
        let inner = Arc::new(Inner {
            generator,
            config,
            shards,
            binder,
        });
        Ok(BlockCache {
            inner,
            pools,
            handles: Mutex::default(),
            next_handle: AtomicU64::new(1),
            next_thread: AtomicUsize::new(0),
            id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// The placement in force.
    pub fn plan(&self) -> &Plan {
        self.inner.binder.plan()
    }

    /// Starts read-ahead tracking for a newly opened file.
    pub fn open(&self) -> HandleId {
        let id = HandleId(self.next_handle.fetch_add(1, Ordering::Relaxed));
        self.lock_handles().insert(id, Sequence::default());
        id
    }

    /// Forgets a handle; its blocks stay cached.
    pub fn release(&self, handle: HandleId) {
        self.lock_handles().remove(&handle);
    }

    /// Reads `out.len()` bytes of `file` at `offset` (the caller clamps to the file's end).
    ///
    /// When `handle` is given, the read feeds that handle's read-ahead. A read inside one
    /// block returns a slice of it; a read across blocks is copied into `out`.
    pub fn read(
        &self,
        handle: Option<HandleId>,
        file: FileExtent,
        offset: u64,
        out: &mut [u8],
    ) -> Served {
        let len = out.len() as u64;
        if len == 0 {
            return Served::Buffer(0);
        }
        let node = self.thread_node();
        let sequential = handle.is_some_and(|h| self.read_ahead(node, h, file, offset, len));

        let b = self.inner.config.block_size as u64;
        let (first, last) = (offset / b, (offset + len - 1) / b);
        let key = BlockKey {
            file: file.file,
            block: first,
        };
        let start = (offset - first * b) as usize;
        if !sequential {
            // A random read: serve it from a block that is already there, but do not make
            // one of it; generating a whole block for a 4 KiB read costs 256 times the read.
            if first == last {
                if let Some(block) = self.inner.shards[node].find(key) {
                    return Served::Block(BlockSlice::new(block, start..start + out.len()));
                }
            }
            self.inner.fill(node, file.stream_offset + offset, out);
            return Served::Buffer(out.len());
        }
        if first == last {
            let block = self.inner.block(node, file, first);
            if start + out.len() == block.bytes().len() {
                self.inner.shards[node].forget(key);
            }
            return Served::Block(BlockSlice::new(block, start..start + out.len()));
        }
        self.copy_blocks(node, file, offset, first..last + 1, out);
        Served::Buffer(out.len())
    }

    /// Counters of every node.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            nodes: self.inner.shards.iter().map(Shard::snapshot).collect(),
            capacity_bytes: self.inner.config.capacity,
        }
    }

    /// Copies the parts of `blocks` that `[offset, offset + out.len())` covers into `out`,
    /// and drops the blocks read to their end (the reader is sequential).
    fn copy_blocks(
        &self,
        node: usize,
        file: FileExtent,
        offset: u64,
        blocks: Range<u64>,
        out: &mut [u8],
    ) {
        let b = self.inner.config.block_size as u64;
        let end = offset + out.len() as u64;
        for index in blocks {
            let block = self.inner.block(node, file, index);
            let (lo, hi) = ((index * b).max(offset), ((index + 1) * b).min(end));
            let from = (lo - index * b) as usize..(hi - index * b) as usize;
            let read_to_end = from.end == block.bytes().len();
            out[(lo - offset) as usize..(hi - offset) as usize]
                .copy_from_slice(&block.bytes()[from]);
            if read_to_end {
                self.inner.shards[node].forget(BlockKey {
                    file: file.file,
                    block: index,
                });
            }
        }
    }

    /// Updates the handle's sequence, queues the blocks it asks for on `node`'s pool, and
    /// tells whether the handle reads sequentially.
    fn read_ahead(
        &self,
        node: usize,
        handle: HandleId,
        file: FileExtent,
        offset: u64,
        len: u64,
    ) -> bool {
        let config = &self.inner.config;
        let geometry = Geometry {
            block: config.block_size as u64,
            file_blocks: file.len.div_ceil(config.block_size as u64),
            max_window: config.max_window.min(self.inner.shards[node].max_window()),
        };
        let (wanted, sequential) = match self.lock_handles().get_mut(&handle) {
            Some(sequence) => (
                sequence.on_read(offset, len, geometry),
                sequence.window() > 0,
            ),
            None => return false,
        };
        for index in wanted {
            let key = BlockKey {
                file: file.file,
                block: index,
            };
            let shard = &self.inner.shards[node];
            let Some(slot) = shard.reserve_ahead(key, self.inner.block_len(file, index)) else {
                continue;
            };
            let inner = Arc::clone(&self.inner);
            self.pools[node].spawn_away(move || {
                let block = inner.generate(node, file, index);
                slot.publish(block);
            });
        }
        sequential
    }

    /// The shard this thread serves from, assigned (and bound) on its first read.
    ///
    /// TODO: fuser starts the session threads itself and has no start hook, so a thread
    /// binds on its first read rather than at start; requests before that (lookups) run
    /// unbound, which costs nothing measurable since they touch no block memory.
    fn thread_node(&self) -> usize {
        let (cache, node) = THREAD_NODE.get();
        if cache == self.id {
            return node;
        }
        // A thread kept to one CPU (an io_uring queue's thread) serves from that CPU's
        // node and stays on its CPU; others are dealt nodes round-robin.
        let cpus = crate::content::threads::allowed_cpus();
        let pinned = match cpus[..] {
            [cpu] => self.plan().node_of_cpu(cpu).map(|node| (node, cpu)),
            _ => None,
        };
        let node = match pinned {
            Some((node, _)) => node,
            None => {
                let thread = self.next_thread.fetch_add(1, Ordering::Relaxed);
                self.plan().node_of_thread(thread)
            }
        };
        self.inner.binder.bind_current_thread(node);
        if let Some((_, cpu)) = pinned {
            crate::content::threads::pin_current_thread(cpu);
        }
        THREAD_NODE.set((self.id, node));
        node
    }

    fn lock_handles(&self) -> std::sync::MutexGuard<'_, HashMap<HandleId, Sequence>> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn start_pool(binder: &Binder, node: usize) -> Result<Pool, CacheError> {
    let os_index = binder.plan().nodes()[node].os_index;
    let bind = binder.clone();
    Pool::new(
        binder.plan().pool_threads(node),
        &binder.plan().nodes()[node].cpus,
        |i| format!("dgenfs-gen{os_index}.{i}"),
        move |_| bind.bind_current_thread(node),
    )
    .map_err(|e| CacheError::Pool {
        node: os_index,
        reason: e.to_string(),
    })
}

impl Inner {
    /// Bytes in block `index` of `file`.
    fn block_len(&self, file: FileExtent, index: u64) -> usize {
        let b = self.config.block_size as u64;
        file.len.saturating_sub(index * b).min(b) as usize
    }

    /// Block `index` of `file` from `node`'s shard, generated here when nobody has it.
    fn block(&self, node: usize, file: FileExtent, index: u64) -> Arc<Block> {
        let key = BlockKey {
            file: file.file,
            block: index,
        };
        let shard = &self.shards[node];
        match shard.lookup(key, self.block_len(file, index)) {
            Lookup::Found(slot) => match shard.wait(&slot) {
                Some(block) => block,
                None => self.generate(node, file, index),
            },
            Lookup::Reserved(slot) => {
                let block = self.generate(node, file, index);
                slot.publish(Arc::clone(&block));
                block
            }
            Lookup::Uncacheable => self.generate(node, file, index),
        }
    }

    /// Generates block `index` of `file` into a buffer of `node`'s shard.
    fn generate(&self, node: usize, file: FileExtent, index: u64) -> Arc<Block> {
        let shard = &self.shards[node];
        let mut buf = shard.buffer(self.block_len(file, index));
        self.fill(
            node,
            file.stream_offset + index * self.config.block_size as u64,
            buf.as_mut_slice(),
        );
        shard.wrap(buf)
    }

    /// Fills `out` with the stream from `stream`, through `node`'s dedup unit store if any.
    fn fill(&self, node: usize, stream: u64, out: &mut [u8]) {
        let shard = &self.shards[node];
        if shard.has_units() {
            self.fill_with_units(shard, stream, out);
        } else {
            self.generator.fill(stream, out);
        }
    }

    /// Fills `out` with the stream from `stream`, copying whole dedup units the shard's
    /// unit store holds and generating (and storing) the rest.
    ///
    /// TODO: when the dedup unit is at least the block size and files start on unit
    /// boundaries, a block *is* a unit, and the block LRU could be keyed by content id so
    /// that duplicates share one buffer and reply without the copy made here; with the
    /// default 4 KiB unit this does not arise, so the copy costs only large-unit specs.
    fn fill_with_units(&self, shard: &Shard, stream: u64, out: &mut [u8]) {
        let unit = self.generator.spec().dedup_unit;
        let pieces = unit_pieces(stream, out.len(), unit);
        let whole: Vec<(ContentId, Range<usize>)> = pieces
            .iter()
            .filter(|p| p.whole)
            .map(|p| (self.generator.content_id(p.unit), p.range.clone()))
            .collect();
        let missing = shard.copy_units(&whole, out);

        for p in pieces.iter().filter(|p| !p.whole) {
            let id = self.generator.content_id(p.unit);
            self.generator
                .fill_unit(id, p.within, &mut out[p.range.clone()]);
        }
        for (id, range) in &missing {
            self.generator.fill_unit(*id, 0, &mut out[range.clone()]);
        }
        shard.store_units(&missing, out);
    }
}

/// A run of bytes of one dedup unit inside a buffer that starts at some stream offset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UnitPiece {
    unit: crate::content::UnitIndex,
    /// Offset of the piece within its unit.
    within: u64,
    /// Where the piece lies in the buffer.
    range: Range<usize>,
    /// Whether the piece is the whole unit.
    whole: bool,
}

/// Cuts `len` bytes of stream from `stream` into pieces of dedup units of `unit` bytes.
fn unit_pieces(stream: u64, len: usize, unit: u64) -> Vec<UnitPiece> {
    let mut pieces = Vec::with_capacity(len / unit as usize + 2);
    let mut pos = 0usize;
    while pos < len {
        let at = stream + pos as u64;
        let within = at % unit;
        let take = ((unit - within) as usize).min(len - pos);
        pieces.push(UnitPiece {
            unit: crate::content::UnitIndex(at / unit),
            within,
            range: pos..pos + take,
            whole: within == 0 && take as u64 == unit,
        });
        pos += take;
    }
    pieces
}

#[cfg(test)]
mod tests;
