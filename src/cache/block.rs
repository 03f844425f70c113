//! Cached blocks, slices of them for replies, and the huge-page arena their buffers come
//! from.
//!
//! When the kernel copies a reply out of the daemon it pins the source pages one at a time;
//! on 4 KiB pages that walk took a seventh of a session thread's time, on 2 MiB pages it is
//! a few percent. So full-size block buffers are cut from 2 MiB-aligned chunks advised as
//! huge pages before their first touch, and handed back to their shard's free list when
//! the last reply holding them is sent. Chunks are kept until the shard is dropped: the
//! arena grows to the largest number of blocks ever alive at once (the cache budget, the
//! read-ahead in flight and one reply per session thread) and steady-state reading
//! allocates nothing and touches no new pages. Blocks shorter than full size (a file's
//! tail) are ordinary heap buffers.

use std::alloc::{self, Layout};
use std::fmt;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

/// Size and alignment of the chunks the arena cuts buffers from: one x86-64 huge page.
const CHUNK: usize = 2 << 20;

/// A block buffer: a piece of its shard's arena, or a heap buffer for a short block.
pub(super) enum Buf {
    /// A full-size piece of the arena of the recycler it returns to.
    Arena(NonNull<u8>, usize),
    /// A short block's own buffer.
    Heap(Box<[u8]>),
}

// SAFETY: an arena piece is owned by exactly one `Buf` at a time (the recycler hands each
// piece out once until it is put back), so sending or sharing it is like a `Box<[u8]>`.
unsafe impl Send for Buf {}
// SAFETY: as above; `&Buf` only gives `&[u8]`.
unsafe impl Sync for Buf {}

impl Buf {
    /// The buffer's bytes, for filling.
    pub(super) fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            // SAFETY: the piece is `len` initialized bytes of a live chunk (zeroed when
            // the chunk was made), owned by this `Buf` alone.
            Buf::Arena(ptr, len) => unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), *len) },
            Buf::Heap(bytes) => bytes,
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            // SAFETY: as in `as_mut_slice`; `&self` makes this a shared borrow.
            Buf::Arena(ptr, len) => unsafe { std::slice::from_raw_parts(ptr.as_ptr(), *len) },
            Buf::Heap(bytes) => bytes,
        }
    }
}

/// The bytes of one block. Dropping the last reference hands an arena buffer back to its
/// shard.
pub struct Block {
    buf: Buf,
    recycler: Arc<Recycler>,
}

impl Block {
    pub(super) fn new(buf: Buf, recycler: Arc<Recycler>) -> Block {
        Block { buf, recycler }
    }

    /// The block's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.buf.as_slice()
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Block({} bytes)", self.bytes().len())
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Buf::Arena(ptr, _) = self.buf {
            self.recycler.put(ptr);
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

/// One shard's arena of full-size block buffers.
pub(super) struct Recycler {
    size: usize,
    arena: Mutex<Arena>,
}

struct Arena {
    free: Vec<NonNull<u8>>,
    chunks: Vec<(NonNull<u8>, Layout)>,
}

// SAFETY: the pointers are to memory the arena owns; every access goes through the mutex
// or through the one `Buf` a free piece was handed to.
unsafe impl Send for Arena {}

impl Recycler {
    /// An empty arena of `size`-byte buffers (a power of two).
    pub(super) fn new(size: usize) -> Recycler {
        Recycler {
            size,
            arena: Mutex::new(Arena {
                free: Vec::new(),
                chunks: Vec::new(),
            }),
        }
    }

    /// Size of the buffers this arena hands out.
    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// A buffer of `len` bytes: a piece of the arena when `len` is the full size, else a
    /// heap buffer. Its contents are arbitrary; the caller overwrites every byte.
    pub(super) fn take(&self, len: usize) -> Buf {
        if len != self.size {
            return Buf::Heap(vec![0u8; len].into_boxed_slice());
        }
        let mut arena = self.lock();
        if arena.free.is_empty() {
            arena.grow(self.size);
        }
        match arena.free.pop() {
            Some(ptr) => Buf::Arena(ptr, self.size),
            None => Buf::Heap(vec![0u8; len].into_boxed_slice()),
        }
    }

    fn put(&self, ptr: NonNull<u8>) {
        self.lock().free.push(ptr);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arena> {
        self.arena.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for Recycler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arena = self.lock();
        f.debug_struct("Recycler")
            .field("size", &self.size)
            .field("chunks", &arena.chunks.len())
            .field("free", &arena.free.len())
            .finish()
    }
}

impl Arena {
    /// Adds one chunk (a huge page, or one buffer when buffers are larger) to the free list;
    /// on allocation failure adds nothing, and the caller falls back to the heap.
    fn grow(&mut self, size: usize) {
        let Ok(layout) = Layout::from_size_align(size.max(CHUNK), CHUNK) else {
            return;
        };
        // SAFETY: the layout has a non-zero size.
        let Some(base) = NonNull::new(unsafe { alloc::alloc(layout) }) else {
            return;
        };
        // SAFETY: `base..base + layout.size()` is a live allocation we own. The advice only
        // changes how the kernel backs it (a failure leaves ordinary pages); it comes before
        // the first touch, the zeroing, so the chunk is faulted in as huge pages.
        unsafe {
            libc::madvise(base.as_ptr().cast(), layout.size(), libc::MADV_HUGEPAGE);
            std::ptr::write_bytes(base.as_ptr(), 0, layout.size());
        }
        self.chunks.push((base, layout));
        for at in (0..layout.size()).step_by(size) {
            // SAFETY: `at < layout.size()`, so the pointer stays inside the allocation.
            self.free.push(unsafe { base.add(at) });
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        for (base, layout) in self.chunks.drain(..) {
            // SAFETY: allocated in `grow` with exactly this layout; every `Block` holding a
            // piece keeps the recycler (and so this arena) alive, so none is in use.
            unsafe { alloc::dealloc(base.as_ptr(), layout) };
        }
    }
}
