//! The kernel-free filesystem core: lookup, getattr, readdir, open, read and statfs.
//!
//! [`FsCore`] answers every request of a read-only mount from a [`Tree`] and a
//! [`Generator`] and returns `Result<_, FsError>`; it knows nothing of FUSE, so tests call
//! it directly. The [`fuse`] adapter turns its answers into kernel replies and is the only
//! place where an [`FsError`] becomes an errno.

mod counter;
pub mod fuse;
pub mod uring;

use std::ffi::OsStr;
use std::time::SystemTime;

use self::counter::ShardedCounter;
use crate::cache::{BlockCache, FileExtent, HandleId, Served};
use crate::content::Generator;
use crate::format::{ChecksumCache, FileLayout, Source};
use crate::tree::{DirId, FileIndex, Ino, Node, Tree};

/// `st_blksize` of every inode: the read size that FUSE serves best.
pub const BLOCK_SIZE: u32 = 1 << 20;

/// Longest name in the tree that `statfs` reports.
pub const NAME_MAX: u32 = 255;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    /// No inode with this number, or no entry with this name.
    #[error("no such file or directory")]
    NotFound,
    /// A directory operation on a file.
    #[error("not a directory")]
    NotADirectory,
    /// A file operation on a directory.
    #[error("is a directory")]
    IsADirectory,
    /// Any attempt to change the tree.
    #[error("read-only file system")]
    ReadOnly,
}

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory, mode 0555.
    Directory,
    /// A regular file, mode 0444.
    File,
}

/// The attributes of an inode; times are the mount time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: Ino,
    /// File or directory.
    pub kind: Kind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// 512-byte blocks, `ceil(size / 512)`, so that `cp` does not punch holes.
    pub blocks: u64,
    /// Permission bits: 0444 for files, 0555 for directories.
    pub perm: u16,
    /// Hard links: 1 for files, 2 for directories.
    pub nlink: u32,
    /// Owner, the mounting user.
    pub uid: u32,
    /// Group, the mounting user's group.
    pub gid: u32,
    /// Access, change and modification time.
    pub time: SystemTime,
}

/// One directory entry as `readdir` yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode number of the entry.
    pub ino: Ino,
    /// File or directory.
    pub kind: Kind,
    /// The entry's name.
    pub name: String,
    /// The offset to resume after this entry.
    pub next_offset: u64,
}

/// Filesystem totals for `statfs`, in [`BLOCK_SIZE`] blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// Blocks holding the tree's bytes, rounded up.
    pub blocks: u64,
    /// Inodes in the tree: files plus directories.
    pub files: u64,
    /// Block size in bytes.
    pub block_size: u32,
    /// Longest name.
    pub name_max: u32,
}

/// Counters of the read path, updated by every read.
#[derive(Debug, Default)]
pub struct ReadCounters {
    bytes: ShardedCounter,
    reads: ShardedCounter,
    opens: ShardedCounter,
}

impl ReadCounters {
    /// Bytes served so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.sum()
    }

    /// Read requests served so far.
    pub fn reads(&self) -> u64 {
        self.reads.sum()
    }

    /// Files opened so far.
    pub fn opens(&self) -> u64 {
        self.opens.sum()
    }
}

/// The read-only filesystem of one mount.
#[derive(Debug)]
pub struct FsCore {
    tree: Tree,
    generator: Generator,
    uid: u32,
    gid: u32,
    time: SystemTime,
    counters: ReadCounters,
    cache: Option<BlockCache>,
    checksums: ChecksumCache,
}

impl FsCore {
    /// A filesystem over `tree` whose files hold `generator`'s stream, owned by `uid:gid`.
    pub fn new(tree: Tree, generator: Generator, uid: u32, gid: u32) -> FsCore {
        let time = SystemTime::now();
        let counters = ReadCounters::default();
        FsCore {
            tree,
            generator,
            uid,
            gid,
            time,
            counters,
            cache: None,
            checksums: ChecksumCache::default(),
        }
    }

    /// Serves reads through `cache` (blocks, dedup units, read-ahead) instead of filling
    /// every read on the session thread.
    pub fn with_cache(mut self, cache: BlockCache) -> FsCore {
        self.cache = Some(cache);
        self
    }

    /// The block cache, when reads go through one.
    pub fn cache(&self) -> Option<&BlockCache> {
        self.cache.as_ref()
    }

    /// The tree this filesystem serves.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The generator of the file contents.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// Counters of bytes and requests served.
    pub fn counters(&self) -> &ReadCounters {
        &self.counters
    }

    /// Checksums over payload computed so far (npz CRC-32, TFRecord CRC-32C).
    pub fn checksums(&self) -> &ChecksumCache {
        &self.checksums
    }

    /// Finds `name` in directory `parent`.
    pub fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Attr, FsError> {
        let dir = self.dir(parent)?;
        let name = name.to_str().ok_or(FsError::NotFound)?;
        let node = match name {
            "." => Node::Dir(dir),
            ".." => Node::Dir(self.tree.parent(Node::Dir(dir))),
            _ => self.tree.lookup(dir, name).ok_or(FsError::NotFound)?,
        };
        Ok(self.attr(node))
    }

    /// The attributes of `ino`.
    pub fn getattr(&self, ino: Ino) -> Result<Attr, FsError> {
        Ok(self.attr(self.node(ino)?))
    }

    /// Calls `add` for the entries of `ino` from `offset` on until it returns `false`.
    ///
    /// Offsets are stable: entry `k` (0 is `.`, 1 is `..`, then the children in name order)
    /// carries `next_offset = k + 1`, so a listing resumes exactly where the last one
    /// stopped, however the kernel pages it.
    pub fn readdir(
        &self,
        ino: Ino,
        offset: u64,
        mut add: impl FnMut(DirEntry) -> bool,
    ) -> Result<(), FsError> {
        let dir = self.dir(ino)?;
        let end = self.tree.child_count(dir) + 2;
        for k in offset..end {
            let (node, name) = match k {
                0 => (Node::Dir(dir), ".".to_owned()),
                1 => (Node::Dir(self.tree.parent(Node::Dir(dir))), "..".to_owned()),
                _ => self.child_entry(dir, k - 2)?,
            };
            let entry = DirEntry {
                ino: self.tree.ino(node),
                kind: kind(node),
                name,
                next_offset: k + 1,
            };
            if !add(entry) {
                break;
            }
        }
        Ok(())
    }

    /// Checks that `ino` is a file and may be opened with these access flags, and returns
    /// the handle that its reads pass back (0 when there is no cache to read ahead).
    pub fn open(&self, ino: Ino, write: bool) -> Result<u64, FsError> {
        match self.node(ino)? {
            Node::Dir(_) if write => Err(FsError::IsADirectory),
            _ if write => Err(FsError::ReadOnly),
            Node::Dir(_) => Err(FsError::IsADirectory),
            Node::File(_) => {
                self.counters.opens.add(1);
                Ok(self.cache.as_ref().map_or(0, |c| c.open().0))
            }
        }
    }

    /// Forgets the read-ahead state of handle `fh`.
    pub fn release(&self, fh: u64) {
        if let (Some(cache), true) = (&self.cache, fh != 0) {
            cache.release(HandleId(fh));
        }
    }

    /// Checks that `ino` is a directory.
    pub fn opendir(&self, ino: Ino) -> Result<(), FsError> {
        self.dir(ino).map(|_| ())
    }

    /// Fills `buf` with the bytes of `ino` from `offset` on and returns how many there were.
    ///
    /// The count is `buf.len()` except at the end of the file; at or past the end it is 0.
    pub fn read(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        match self.read_served(ino, 0, offset, buf)? {
            Served::Buffer(n) => Ok(n),
            Served::Block(slice) => {
                let bytes = slice.as_slice();
                buf[..bytes.len()].copy_from_slice(bytes);
                Ok(bytes.len())
            }
        }
    }

    /// Reads like [`read`](Self::read) for open handle `fh` (0: none), but answers with a
    /// slice of a cached block when one holds the whole range, leaving `buf` untouched.
    pub fn read_served(
        &self,
        ino: Ino,
        fh: u64,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<Served, FsError> {
        let file = match self.node(ino)? {
            Node::File(i) => i,
            Node::Dir(_) => return Err(FsError::IsADirectory),
        };
        let layout = self.tree.file_layout(file);
        if !matches!(layout, FileLayout::Raw(_)) {
            return Ok(Served::Buffer(
                self.read_formatted(file, &layout, offset, buf),
            ));
        }
        let extent = FileExtent {
            file,
            stream_offset: self.tree.file_stream_offset(file),
            len: layout.len(),
        };
        let n = extent.len.saturating_sub(offset).min(buf.len() as u64) as usize;
        self.counters.reads.add(1);
        if n == 0 {
            // At or past the end; `offset` may be near u64::MAX, so add nothing to it.
            return Ok(Served::Buffer(0));
        }
        let served = match &self.cache {
            Some(cache) => {
                let handle = (fh != 0).then_some(HandleId(fh));
                cache.read(handle, extent, offset, &mut buf[..n])
            }
            None => {
                self.generator
                    .fill(extent.stream_offset + offset, &mut buf[..n]);
                Served::Buffer(n)
            }
        };
        self.counters.bytes.add(n as u64);
        Ok(served)
    }

    /// Reads a formatted (npy, npz, hdf5, tfrecord) file through its layout.
    ///
    /// TODO: these reads bypass the block cache and its read-ahead, which hold stream bytes
    /// keyed by file offset; caching formatted files needs blocks built through the layout.
    /// Their payload is generated at the same speed, so only dedup hits and read-ahead are
    /// lost.
    fn read_formatted(
        &self,
        file: FileIndex,
        layout: &FileLayout,
        offset: u64,
        buf: &mut [u8],
    ) -> usize {
        let src = Source {
            generator: &self.generator,
            stream_offset: self.tree.file_stream_offset(file),
            file_key: file.0,
            cache: &self.checksums,
        };
        let n = layout.read(&src, offset, buf);
        self.counters.reads.add(1);
        self.counters.bytes.add(n as u64);
        n
    }

    /// Totals of the tree.
    pub fn statfs(&self) -> StatFs {
        StatFs {
            blocks: self.tree.size().div_ceil(u64::from(BLOCK_SIZE)),
            files: self.tree.files() + self.tree.dirs(),
            block_size: BLOCK_SIZE,
            name_max: NAME_MAX,
        }
    }

    /// The index of file `ino`, for callers that address files by index.
    pub fn file_index(&self, ino: Ino) -> Result<FileIndex, FsError> {
        match self.node(ino)? {
            Node::File(i) => Ok(i),
            Node::Dir(_) => Err(FsError::IsADirectory),
        }
    }

    fn child_entry(&self, dir: DirId, k: u64) -> Result<(Node, String), FsError> {
        let node = self.tree.child(dir, k).ok_or(FsError::NotFound)?;
        Ok((node, self.tree.name(node)))
    }

    fn node(&self, ino: Ino) -> Result<Node, FsError> {
        self.tree.node(ino).ok_or(FsError::NotFound)
    }

    fn dir(&self, ino: Ino) -> Result<DirId, FsError> {
        match self.node(ino)? {
            Node::Dir(d) => Ok(d),
            Node::File(_) => Err(FsError::NotADirectory),
        }
    }

    fn attr(&self, node: Node) -> Attr {
        let (size, perm, nlink) = match node {
            Node::File(i) => (self.tree.file_len(i), 0o444, 1),
            Node::Dir(_) => (0, 0o555, 2),
        };
        Attr {
            ino: self.tree.ino(node),
            kind: kind(node),
            size,
            blocks: size.div_ceil(512),
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            time: self.time,
        }
    }
}

fn kind(node: Node) -> Kind {
    match node {
        Node::File(_) => Kind::File,
        Node::Dir(_) => Kind::Directory,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ContentSpec;
    use crate::tree::{FileSizing, TreeSpec};

    pub(super) fn core(size: u64, file_size: u64, per_dir: u64) -> FsCore {
        let sizing = FileSizing::FileSize(file_size);
        let tree = Tree::new(&TreeSpec {
            size,
            sizing,
            files_per_dir: per_dir,
            dlio: None,
        })
        .unwrap();
        let generator = Generator::new(&ContentSpec::with_seed(7)).unwrap();
        FsCore::new(tree, generator, 0, 0)
    }

    fn list(fs: &FsCore, ino: Ino, offset: u64, max: usize) -> Vec<DirEntry> {
        let mut out = Vec::new();
        fs.readdir(ino, offset, |e| {
            out.push(e);
            out.len() < max
        })
        .unwrap();
        out
    }

    #[test]
    fn readdir_pages_resume_exactly() {
        let fs = core(25, 1, 10);
        let whole = list(&fs, Ino(1), 0, usize::MAX);
        assert_eq!(whole.len(), 5);
        assert_eq!(whole[0].name, ".");
        assert_eq!(whole[2].name, "dir_0");
        let leaf = fs.lookup(Ino(1), OsStr::new("dir_2")).unwrap().ino;
        let mut paged = Vec::new();
        let mut offset = 0;
        loop {
            let page = list(&fs, leaf, offset, 2);
            let Some(last) = page.last() else { break };
            offset = last.next_offset;
            paged.extend(page.into_iter().map(|e| e.name));
        }
        assert_eq!(
            paged,
            [".", "..", "file_20", "file_21", "file_22", "file_23", "file_24"]
        );
    }

    #[test]
    fn read_matches_the_stream_and_stops_at_eof() {
        let fs = core(10_000, 3_000, 1000);
        let attr = fs.lookup(Ino(1), OsStr::new("file_3")).unwrap();
        assert_eq!((attr.size, attr.blocks), (1_000, 2));
        let mut buf = vec![0; 4096];
        assert_eq!(fs.read(attr.ino, 900, &mut buf).unwrap(), 100);
        let mut want = vec![0; 100];
        fs.generator().fill(9_900, &mut want);
        assert_eq!(&buf[..100], &want[..]);
        assert_eq!(fs.read(attr.ino, 1_000, &mut buf).unwrap(), 0);
        assert_eq!(fs.read(attr.ino, u64::MAX, &mut buf).unwrap(), 0);
        assert_eq!(fs.counters().bytes(), 100);
    }

    #[test]
    fn errors_are_specific() {
        let fs = core(10_000, 3_000, 1000);
        let file = fs.lookup(Ino(1), OsStr::new("file_0")).unwrap().ino;
        assert_eq!(
            fs.lookup(Ino(1), OsStr::new("file_9")),
            Err(FsError::NotFound)
        );
        assert_eq!(
            fs.lookup(file, OsStr::new("x")),
            Err(FsError::NotADirectory)
        );
        assert_eq!(fs.open(file, true), Err(FsError::ReadOnly));
        assert_eq!(fs.open(Ino(1), false), Err(FsError::IsADirectory));
        assert_eq!(fs.getattr(Ino(999)), Err(FsError::NotFound));
        assert_eq!(fs.readdir(file, 0, |_| true), Err(FsError::NotADirectory));
    }

    #[test]
    fn dotdot_of_root_is_root() {
        let fs = core(10, 1, 1000);
        assert_eq!(fs.lookup(Ino(1), OsStr::new("..")).unwrap().ino, Ino(1));
        assert_eq!(fs.statfs().files, 11);
    }
}
