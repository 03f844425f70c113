//! The fuser 0.18 adapter: one span per request, one call into [`FsCore`], one reply.
//!
//! Nothing here decides what a file holds; it converts types, fills reads from a reused
//! per-thread buffer, and maps [`FsError`] to errno in [`errno`], the only such place.
//! Every request that would change the tree is answered with `EROFS`.

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow, WriteFlags,
};
use tracing::debug_span;

use super::uring::{self, InitSignal};
use super::{Attr, FsCore, FsError, Kind};
use crate::cache::Served;
use crate::tree::Ino;

/// How long the kernel may cache attributes and entries: the tree never changes.
pub(crate) const TTL: Duration = Duration::from_secs(3600);

/// Background requests (read-ahead, async direct I/O) the kernel may keep queued.
const MAX_BACKGROUND: u16 = 64;

/// Alignment of the reply buffer: a huge page, so the kernel copies from few TLB entries.
const BUF_ALIGN: usize = 2 << 20;

/// Every errno this filesystem returns, decided in one place.
pub fn errno(err: FsError) -> Errno {
    match err {
        FsError::NotFound => Errno::ENOENT,
        FsError::NotADirectory => Errno::ENOTDIR,
        FsError::IsADirectory => Errno::EISDIR,
        FsError::ReadOnly => Errno::EROFS,
    }
}

/// The [`Filesystem`] that fuser drives.
#[derive(Debug)]
pub struct FuseAdapter {
    core: Arc<FsCore>,
    open_flags: FopenFlags,
    /// Set when the mount asks for io_uring queues: told INIT's outcome.
    uring: Option<Arc<InitSignal>>,
}

impl FuseAdapter {
    /// Serves `core`; `kernel_cache` selects page-cache mode instead of direct I/O.
    pub fn new(core: Arc<FsCore>, kernel_cache: bool) -> FuseAdapter {
        let open_flags = if kernel_cache {
            FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::FOPEN_DIRECT_IO
        };
        FuseAdapter {
            core,
            open_flags,
            uring: None,
        }
    }

    /// Asks the kernel for FUSE over io_uring at INIT and reports the answer to `signal`.
    pub fn with_uring(mut self, signal: Option<Arc<InitSignal>>) -> FuseAdapter {
        self.uring = signal;
        self
    }
}

fn file_attr(attr: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(attr.ino.0),
        size: attr.size,
        blocks: attr.blocks,
        atime: attr.time,
        mtime: attr.time,
        ctime: attr.time,
        crtime: attr.time,
        kind: file_type(attr.kind),
        perm: attr.perm,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: 0,
        blksize: super::BLOCK_SIZE,
        flags: 0,
    }
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::File => FileType::RegularFile,
        Kind::Directory => FileType::Directory,
    }
}

/// A page-aligned buffer owned by one session thread and reused for every read it serves.
struct ReplyBuf {
    ptr: *mut u8,
    len: usize,
}

impl ReplyBuf {
    const fn empty() -> ReplyBuf {
        ReplyBuf {
            ptr: std::ptr::null_mut(),
            len: 0,
        }
    }

    /// The first `len` bytes, growing (once per thread in practice) when too small.
    fn slice(&mut self, len: usize) -> &mut [u8] {
        if len > self.len {
            self.grow(len.next_multiple_of(BUF_ALIGN));
        }
        // SAFETY: `ptr` points to `self.len >= len` bytes allocated by `grow` and owned by
        // this buffer; the bytes were zeroed at allocation, so they are initialized, and the
        // `&mut self` borrow makes the slice unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, len) }
    }

    fn grow(&mut self, len: usize) {
        self.free();
        let layout = Layout::from_size_align(len, BUF_ALIGN).expect("buffer layout");
        // SAFETY: `layout` has a non-zero size; a null result is handled below.
        let ptr = unsafe { alloc::alloc(layout) };
        if ptr.is_null() {
            alloc::handle_alloc_error(layout);
        }
        // SAFETY: `ptr..ptr + len` is a live allocation owned by us; madvise only changes
        // how the kernel backs it, and a failure leaves ordinary pages, which is fine. The
        // advice comes before the first touch (the zeroing below), so the kernel backs the
        // buffer with huge pages from the start: the kernel pins the reply's source pages
        // one by one when it copies a reply, which is cheaper on a huge page.
        unsafe {
            libc::madvise(ptr.cast(), len, libc::MADV_HUGEPAGE);
            std::ptr::write_bytes(ptr, 0, len);
        }
        (self.ptr, self.len) = (ptr, len);
    }

    fn free(&mut self) {
        if !self.ptr.is_null() {
            let layout = Layout::from_size_align(self.len, BUF_ALIGN).expect("buffer layout");
            // SAFETY: `ptr` was allocated by `grow` with exactly this layout.
            unsafe { alloc::dealloc(self.ptr, layout) };
            (self.ptr, self.len) = (std::ptr::null_mut(), 0);
        }
    }
}

impl Drop for ReplyBuf {
    fn drop(&mut self) {
        self.free();
    }
}

thread_local! {
    static REPLY_BUF: RefCell<ReplyBuf> = const { RefCell::new(ReplyBuf::empty()) };
}

impl Filesystem for FuseAdapter {
    /// Asks for asynchronous direct I/O (so libaio keeps several reads in flight) and
    /// parallel lookups, and lets more background requests queue than the default 16.
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for wanted in [InitFlags::FUSE_ASYNC_DIO, InitFlags::FUSE_PARALLEL_DIROPS] {
            if let Err(missing) = config.add_capabilities(wanted) {
                tracing::debug!(?missing, "kernel lacks a FUSE capability");
            }
        }
        let _ = config.set_max_background(MAX_BACKGROUND);
        let _ = config.set_congestion_threshold(MAX_BACKGROUND * 3 / 4);
        if let Some(signal) = &self.uring {
            // The kernel sizes every ring payload buffer by max_write, and nothing is
            // written here: keep it at the largest read.
            let _ = config.set_max_write(uring::PAYLOAD as u32);
            let accepted = config
                .add_capabilities(InitFlags::FUSE_OVER_IO_URING)
                .is_ok();
            if !accepted {
                tracing::warn!("kernel refused FUSE over io_uring; serving through /dev/fuse");
            }
            signal.set(accepted);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _span = debug_span!("lookup", ino = parent.0, ?name).entered();
        match self.core.lookup(Ino(parent.0), name) {
            Ok(attr) => reply.entry(&TTL, &file_attr(&attr), Generation(0)),
            Err(err) => {
                tracing::debug!(%err, "lookup miss");
                reply.error(errno(err))
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _span = debug_span!("getattr", ino = ino.0).entered();
        match self.core.getattr(Ino(ino.0)) {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(err) => reply.error(errno(err)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _span = debug_span!("open", ino = ino.0, flags = flags.0).entered();
        let write =
            !matches!(flags.acc_mode(), OpenAccMode::O_RDONLY) || flags.0 & libc::O_TRUNC != 0;
        match self.core.open(Ino(ino.0), write) {
            Ok(fh) => reply.opened(FileHandle(fh), self.open_flags),
            Err(err) => reply.error(errno(err)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let _span = debug_span!("read", ino = ino.0, offset, size).entered();
        REPLY_BUF.with_borrow_mut(|buf| {
            let buf = buf.slice(size as usize);
            match self.core.read_served(Ino(ino.0), fh.0, offset, buf) {
                Ok(Served::Buffer(n)) => reply.data(&buf[..n]),
                Ok(Served::Block(slice)) => reply.data(slice.as_slice()),
                Err(err) => reply.error(errno(err)),
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _span = debug_span!("release", ino = ino.0).entered();
        self.core.release(fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _span = debug_span!("opendir", ino = ino.0).entered();
        match self.core.opendir(Ino(ino.0)) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(err) => reply.error(errno(err)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let _span = debug_span!("readdir", ino = ino.0, offset).entered();
        let result = self.core.readdir(Ino(ino.0), offset, |e| {
            let full = reply.add(INodeNo(e.ino.0), e.next_offset, file_type(e.kind), &e.name);
            !full
        });
        match result {
            Ok(()) => reply.ok(),
            Err(err) => reply.error(errno(err)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _span = debug_span!("statfs").entered();
        let s = self.core.statfs();
        reply.statfs(
            s.blocks,
            0,
            0,
            s.files,
            0,
            s.block_size,
            s.name_max,
            s.block_size,
        );
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _span = debug_span!("setattr", ino = ino.0).entered();
        reply.error(errno(FsError::ReadOnly));
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let _span = debug_span!("mknod", ino = parent.0).entered();
        reply.error(errno(FsError::ReadOnly));
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let _span = debug_span!("mkdir", ino = parent.0).entered();
        reply.error(errno(FsError::ReadOnly));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        let _span = debug_span!("unlink", ino = parent.0).entered();
        reply.error(errno(FsError::ReadOnly));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        let _span = debug_span!("rmdir", ino = parent.0).entered();
        reply.error(errno(FsError::ReadOnly));
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        let _span = debug_span!("symlink", ino = parent.0).entered();
        reply.error(errno(FsError::ReadOnly));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _span = debug_span!("rename", ino = parent.0).entered();
        reply.error(errno(FsError::ReadOnly));
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let _span = debug_span!("link", ino = ino.0).entered();
        reply.error(errno(FsError::ReadOnly));
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _span = debug_span!("write", ino = ino.0, offset, size = data.len()).entered();
        reply.error(errno(FsError::ReadOnly));
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let _span = debug_span!("create", ino = parent.0).entered();
        reply.error(errno(FsError::ReadOnly));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_errno_a_shell_expects() {
        assert_eq!(errno(FsError::NotFound), Errno::ENOENT);
        assert_eq!(errno(FsError::NotADirectory), Errno::ENOTDIR);
        assert_eq!(errno(FsError::IsADirectory), Errno::EISDIR);
        assert_eq!(errno(FsError::ReadOnly), Errno::EROFS);
    }

    #[test]
    fn reply_buffer_is_huge_page_aligned_and_grows() {
        let mut buf = ReplyBuf::empty();
        assert_eq!(buf.slice(4096).as_ptr() as usize % BUF_ALIGN, 0);
        assert_eq!(buf.slice(3 << 20).len(), 3 << 20);
        assert_eq!(buf.len, 4 << 20);
    }
}
