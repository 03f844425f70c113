//! Cached blocks, slices of them for replies, and the recycling of their buffers.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Spare full-size buffers a shard keeps for reuse, at most.
const SPARE_BUFFERS: usize = 8;

/// The bytes of one block. Dropping the last reference hands a full-size buffer back to
/// its shard, so steady-state reading allocates nothing and touches no new pages.
pub struct Block {
    bytes: Box<[u8]>,
    recycler: Option<Arc<Recycler>>,
}

impl Block {
    pub(super) fn new(bytes: Box<[u8]>, recycler: Option<Arc<Recycler>>) -> Block {
        Block { bytes, recycler }
    }

    /// The block's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Block({} bytes)", self.bytes.len())
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Some(recycler) = self.recycler.take() {
            recycler.put(std::mem::take(&mut self.bytes));
        }
    }
}

/// A range of a shared block: what a read replies with, without copying.
#[derive(Debug, Clone)]
pub struct BlockSlice {
    block: Arc<Block>,
    range: Range<usize>,
}

impl BlockSlice {
    pub(super) fn new(block: Arc<Block>, range: Range<usize>) -> BlockSlice {
        BlockSlice { block, range }
    }

    /// The bytes of the read.
    pub fn as_slice(&self) -> &[u8] {
        &self.block.bytes()[self.range.clone()]
    }
}

/// Spare buffers of one size, kept by one shard.
#[derive(Debug)]
pub(super) struct Recycler {
    size: usize,
    spare: Mutex<Vec<Box<[u8]>>>,
}

impl Recycler {
    pub(super) fn new(size: usize) -> Recycler {
        Recycler {
            size,
            spare: Mutex::default(),
        }
    }

    /// Size of the buffers this recycler keeps.
    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// A buffer of `len` bytes: a spare one when `len` is the full size, else a fresh one.
    /// Its contents are arbitrary; the caller overwrites every byte.
    pub(super) fn take(&self, len: usize) -> Box<[u8]> {
        if len == self.size {
            if let Some(bytes) = self.lock().pop() {
                return bytes;
            }
        }
        vec![0u8; len].into_boxed_slice()
    }

    fn put(&self, bytes: Box<[u8]>) {
        let mut spare = self.lock();
        if bytes.len() == self.size && spare.len() < SPARE_BUFFERS {
            spare.push(bytes);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Box<[u8]>>> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }
}
