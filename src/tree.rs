//! The tree of a mount: directories, file names, sizes and inode numbers by arithmetic.
//!
//! A [`Tree`] is a handful of integers; nothing is stored per file, so a tree of ten
//! million files costs the same memory as a tree of one. File `i` of the `raw` layout
//! holds the bytes of the global stream from [`Tree::file_stream_offset`] on. This module
//! does not produce bytes; [`crate::fs`] pairs it with a [`crate::Generator`].
//!
//! Shape: when there are more files than `files_per_dir`, files are grouped into leaf
//! directories of `files_per_dir` files each, those into parents of `files_per_dir`
//! directories, and so on up to the root. Every file name carries its global index
//! (`file_0000042`), every directory name the index of the directory within its level
//! (`dir_007`), both zero-padded to a fixed width so `lookup` parses them back. A tree
//! built with [`TreeSpec::dlio`] instead has DLIO's shape and names ([`crate::dlio`]); the
//! methods below hand such a tree over to [`DlioTree`].

use crate::dlio::{DlioSpec, DlioTree};
use crate::format::FileLayout;
use crate::spec::SpecError;

/// The inode number of the root directory (fixed by the FUSE protocol).
pub const ROOT_INO: Ino = Ino(1);

/// Bits of an inode number that hold a directory's level; files and the root use level 0.
const LEVEL_SHIFT: u32 = 56;

/// Inode numbers below this are the root (1) and files (2 + index).
const MAX_FILES: u64 = (1 << LEVEL_SHIFT) - 2;

/// The default number of entries in one directory.
pub const DEFAULT_FILES_PER_DIR: u64 = 1000;

/// An inode number as the kernel sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ino(pub u64);

/// The index of a file in the tree, from 0 to `files - 1`, in name order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileIndex(pub u64);

/// A directory: its depth below the root (root is 0) and its index within that depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DirId {
    /// Depth below the root: 0 is the root, `depth` holds the leaf directories.
    pub level: u32,
    /// Index among the directories of this level, in name order.
    pub index: u64,
}

/// What an inode number names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    /// A directory.
    Dir(DirId),
    /// A regular file.
    File(FileIndex),
}

/// How the total size is cut into files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileSizing {
    /// Every file has this many bytes except the last, which takes the remainder.
    FileSize(u64),
    /// Exactly this many files of `size / files` bytes; the last takes the remainder.
    Files(u64),
}

/// The parameters of a tree, as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeSpec {
    /// Total bytes in all files (default 1 TiB).
    pub size: u64,
    /// How the total is cut into files (default 1 GiB files).
    pub sizing: FileSizing,
    /// Entries per directory, at least 2 (default 1000).
    pub files_per_dir: u64,
    /// A DLIO dataset instead of plain files (default none); `size`, `sizing` and
    /// `files_per_dir` are then ignored.
    pub dlio: Option<DlioSpec>,
}

impl Default for TreeSpec {
    fn default() -> Self {
        TreeSpec {
            size: 1 << 40,
            sizing: FileSizing::FileSize(1 << 30),
            files_per_dir: DEFAULT_FILES_PER_DIR,
            dlio: None,
        }
    }
}

/// A tree computed from a [`TreeSpec`]; every query is O(depth), and depth is small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    size: u64,
    file_size: u64,
    files: u64,
    fanout: u64,
    /// Levels of directories below the root; files sit in directories of this level.
    depth: u32,
    dlio: Option<DlioTree>,
}

impl Tree {
    /// Computes the tree for `spec`, or says which field is out of range.
    pub fn new(spec: &TreeSpec) -> Result<Tree, SpecError> {
        if spec.files_per_dir < 2 {
            let allowed = "at least 2";
            return Err(SpecError::new("files-per-dir", spec.files_per_dir, allowed));
        }
        if let Some(dlio) = &spec.dlio {
            return Tree::dlio(dlio);
        }
        let (files, file_size) = split(spec)?;
        let depth = depth_for(files, spec.files_per_dir);
        Ok(Tree {
            size: spec.size,
            file_size,
            files,
            fanout: spec.files_per_dir,
            depth,
            dlio: None,
        })
    }

    /// A DLIO tree; `size` and `file_size` hold nominal (mean) values.
    fn dlio(spec: &DlioSpec) -> Result<Tree, SpecError> {
        let dlio = DlioTree::new(spec)?;
        let file_size = dlio.nominal_file_len();
        Ok(Tree {
            size: file_size.saturating_mul(dlio.files()),
            file_size,
            files: dlio.files(),
            fanout: 0,
            depth: dlio.depth(),
            dlio: Some(dlio),
        })
    }

    /// The DLIO layout of this tree, if it is one.
    pub fn dlio_tree(&self) -> Option<&DlioTree> {
        self.dlio.as_ref()
    }

    /// Total bytes in all files (for a DLIO tree: files times the nominal file size).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of files.
    pub fn files(&self) -> u64 {
        self.files
    }

    /// Number of directories, the root included.
    pub fn dirs(&self) -> u64 {
        if let Some(d) = &self.dlio {
            return d.dirs();
        }
        (0..=self.depth).map(|level| self.dirs_at(level)).sum()
    }

    /// Size of every file but the last (for a DLIO tree: of a file of the nominal shape).
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// Levels of directories below the root.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// The size of file `i` in bytes.
    pub fn file_len(&self, i: FileIndex) -> u64 {
        if let Some(d) = &self.dlio {
            return d.layout(i).len();
        }
        if i.0 + 1 == self.files {
            self.size - self.file_size * i.0
        } else {
            self.file_size
        }
    }

    /// Where file `i` starts in the global content stream.
    pub fn file_stream_offset(&self, i: FileIndex) -> u64 {
        if let Some(d) = &self.dlio {
            return d.file_stream_offset(i);
        }
        i.0 * self.file_size
    }

    /// How file `i`'s bytes are framed around its payload.
    pub fn file_layout(&self, i: FileIndex) -> FileLayout {
        match &self.dlio {
            Some(d) => d.layout(i),
            None => FileLayout::Raw(self.file_len(i)),
        }
    }

    /// The inode number of `node`.
    pub fn ino(&self, node: Node) -> Ino {
        match node {
            Node::File(i) => Ino(i.0 + 2),
            Node::Dir(DirId { level: 0, .. }) => ROOT_INO,
            Node::Dir(d) => Ino((u64::from(d.level) << LEVEL_SHIFT) | d.index),
        }
    }

    /// What `ino` names, or `None` when no such inode exists in this tree.
    pub fn node(&self, ino: Ino) -> Option<Node> {
        let level = (ino.0 >> LEVEL_SHIFT) as u32;
        let low = ino.0 & ((1 << LEVEL_SHIFT) - 1);
        if let Some(d) = &self.dlio {
            return dlio_node(d, level, low);
        }
        match level {
            0 if low == 1 => Some(Node::Dir(DirId { level: 0, index: 0 })),
            0 if low >= 2 && low - 2 < self.files => Some(Node::File(FileIndex(low - 2))),
            l if l >= 1 && l <= self.depth && low < self.dirs_at(l) => Some(Node::Dir(DirId {
                level: l,
                index: low,
            })),
            _ => None,
        }
    }

    /// The parent of `node`; the root is its own parent.
    pub fn parent(&self, node: Node) -> DirId {
        if let Some(d) = &self.dlio {
            return d.parent(node);
        }
        match node {
            Node::File(i) => DirId {
                level: self.depth,
                index: i.0 / self.leaf_span(self.depth),
            },
            Node::Dir(DirId { level: 0, .. }) => DirId { level: 0, index: 0 },
            Node::Dir(d) => DirId {
                level: d.level - 1,
                index: d.index / self.fanout,
            },
        }
    }

    /// Number of entries in `dir`, not counting `.` and `..`.
    pub fn child_count(&self, dir: DirId) -> u64 {
        if let Some(d) = &self.dlio {
            return d.child_count(dir);
        }
        let (first, end) = self.child_range(dir);
        end - first
    }

    /// The `k`-th entry of `dir` (0-based, without `.` and `..`), if there is one.
    pub fn child(&self, dir: DirId, k: u64) -> Option<Node> {
        if let Some(d) = &self.dlio {
            return d.child(dir, k);
        }
        let (first, end) = self.child_range(dir);
        let index = first.checked_add(k).filter(|&index| index < end)?;
        Some(self.child_node(dir, index))
    }

    /// The name of a non-root `node`, zero-padded so that names sort in index order.
    pub fn name(&self, node: Node) -> String {
        if let Some(d) = &self.dlio {
            return d.name(node);
        }
        match node {
            Node::File(i) => format!("file_{:0w$}", i.0, w = digits(self.files)),
            Node::Dir(d) => format!("dir_{:0w$}", d.index, w = digits(self.dirs_at(d.level))),
        }
    }

    /// Parses `name` back to a child of `dir`, or `None` when `dir` has no such entry.
    pub fn lookup(&self, dir: DirId, name: &str) -> Option<Node> {
        if let Some(d) = &self.dlio {
            return d.lookup(dir, name);
        }
        let (prefix, count) = if dir.level == self.depth {
            ("file_", self.files)
        } else {
            ("dir_", self.dirs_at(dir.level + 1))
        };
        let digits_text = name.strip_prefix(prefix)?;
        let index = parse_index(digits_text, digits(count))?;
        let (first, end) = self.child_range(dir);
        (first..end)
            .contains(&index)
            .then(|| self.child_node(dir, index))
    }

    fn child_node(&self, dir: DirId, index: u64) -> Node {
        if dir.level == self.depth {
            Node::File(FileIndex(index))
        } else {
            Node::Dir(DirId {
                level: dir.level + 1,
                index,
            })
        }
    }

    /// Indices (files or next-level directories) of the children of `dir`, half-open.
    fn child_range(&self, dir: DirId) -> (u64, u64) {
        let count = if dir.level == self.depth {
            self.files
        } else {
            self.dirs_at(dir.level + 1)
        };
        let first = dir.index.saturating_mul(self.fanout).min(count);
        (first, first.saturating_add(self.fanout).min(count))
    }

    /// Files below one directory of `level`: fanout^(depth - level + 1), saturating.
    fn leaf_span(&self, level: u32) -> u64 {
        self.fanout.saturating_pow(self.depth - level + 1)
    }

    /// Number of directories at `level`.
    fn dirs_at(&self, level: u32) -> u64 {
        if level == 0 {
            return 1;
        }
        self.files.div_ceil(self.leaf_span(level)).max(1)
    }
}

/// What (`level`, `low`) of an inode number names in a DLIO tree.
fn dlio_node(d: &DlioTree, level: u32, low: u64) -> Option<Node> {
    let node = match level {
        0 if low == 1 => Node::Dir(DirId { level: 0, index: 0 }),
        0 => Node::File(FileIndex(low.checked_sub(2)?)),
        _ => Node::Dir(DirId { level, index: low }),
    };
    d.contains(node).then_some(node)
}

/// Number of files and size of each but the last.
fn split(spec: &TreeSpec) -> Result<(u64, u64), SpecError> {
    match spec.sizing {
        FileSizing::FileSize(0) => Err(SpecError::new("file-size", 0, "at least 1 byte")),
        FileSizing::FileSize(fs) => Ok((spec.size.div_ceil(fs), fs)),
        FileSizing::Files(0) if spec.size > 0 => {
            Err(SpecError::new("files", 0, "at least 1 when size is not 0"))
        }
        FileSizing::Files(n) if n > MAX_FILES => {
            Err(SpecError::new("files", n, format!("at most {MAX_FILES}")))
        }
        FileSizing::Files(n) => Ok((n, spec.size.checked_div(n).unwrap_or(0))),
    }
    .and_then(|(files, fs)| match files {
        n if n > MAX_FILES => Err(SpecError::new("file-size", fs, "fewer than 2^56 files")),
        n => Ok((n, fs)),
    })
}

/// Levels of directories needed so that no directory holds more than `fanout` entries.
fn depth_for(files: u64, fanout: u64) -> u32 {
    let mut depth = 0;
    let mut capacity = fanout;
    while capacity < files {
        depth += 1;
        capacity = capacity.saturating_mul(fanout);
    }
    depth
}

/// Decimal digits needed for indices `0..count` (at least 1).
fn digits(count: u64) -> usize {
    let mut max = count.saturating_sub(1);
    let mut n = 1;
    while max >= 10 {
        max /= 10;
        n += 1;
    }
    n
}

/// Parses exactly `width` ASCII digits; other spellings of the same number are not names.
fn parse_index(text: &str, width: usize) -> Option<u64> {
    if text.len() != width || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(size: u64, file_size: u64, per_dir: u64) -> Tree {
        let sizing = FileSizing::FileSize(file_size);
        Tree::new(&TreeSpec {
            size,
            sizing,
            files_per_dir: per_dir,
            dlio: None,
        })
        .unwrap()
    }

    /// Walks the whole tree the slow way and checks every identity the fast way relies on.
    fn check_walk(t: &Tree) {
        let mut files = Vec::new();
        let mut stack = vec![DirId { level: 0, index: 0 }];
        while let Some(dir) = stack.pop() {
            assert!(t.child_count(dir) <= t.fanout);
            for k in 0..t.child_count(dir) {
                let node = t.child(dir, k).unwrap();
                assert_eq!(t.lookup(dir, &t.name(node)), Some(node));
                assert_eq!(t.node(t.ino(node)), Some(node));
                assert_eq!(t.parent(node), dir);
                match node {
                    Node::Dir(d) => stack.push(d),
                    Node::File(i) => files.push(i.0),
                }
            }
        }
        files.sort_unstable();
        assert_eq!(files, (0..t.files()).collect::<Vec<_>>());
    }

    #[test]
    fn flat_tree_with_remainder() {
        let t = tree(10_000, 3_000, 1000);
        assert_eq!((t.files(), t.depth()), (4, 0));
        assert_eq!(t.file_len(FileIndex(3)), 1_000);
        assert_eq!(t.file_stream_offset(FileIndex(2)), 6_000);
        assert_eq!(t.name(Node::File(FileIndex(3))), "file_3");
        check_walk(&t);
    }

    #[test]
    fn nested_trees_walk_consistently() {
        for (files, per_dir) in [(10, 3), (9, 3), (27, 3), (28, 3), (1000, 10), (1001, 10)] {
            let t = tree(files * 7, 7, per_dir);
            assert_eq!(t.files(), files);
            check_walk(&t);
        }
    }

    #[test]
    fn files_count_gives_exact_count() {
        let sizing = FileSizing::Files(3);
        let t = Tree::new(&TreeSpec {
            size: 10,
            sizing,
            files_per_dir: 1000,
            dlio: None,
        })
        .unwrap();
        assert_eq!(
            (t.files(), t.file_size(), t.file_len(FileIndex(2))),
            (3, 3, 4)
        );
    }

    #[test]
    fn lookup_rejects_other_spellings_and_foreign_children() {
        let t = tree(100, 1, 10);
        let root = DirId { level: 0, index: 0 };
        let leaf = DirId { level: 1, index: 1 };
        assert_eq!(t.lookup(root, "dir_1"), Some(Node::Dir(leaf)));
        assert_eq!(t.lookup(root, "dir_01"), None);
        assert_eq!(t.lookup(leaf, "file_12"), Some(Node::File(FileIndex(12))));
        assert_eq!(t.lookup(leaf, "file_22"), None);
        assert_eq!(t.lookup(leaf, "file_+2"), None);
        assert_eq!(t.node(Ino(0)), None);
        assert_eq!(t.node(Ino(102)), None);
    }

    #[test]
    fn ten_million_files_are_arithmetic() {
        let t = tree(10 << 40, (10 << 40) / 10_000_000 + 1, 1000);
        assert_eq!(t.depth(), 2);
        assert!(t.files() <= 10_000_000);
        let last = Node::File(FileIndex(t.files() - 1));
        let dir = t.parent(last);
        assert_eq!(t.lookup(dir, &t.name(last)), Some(last));
    }

    #[test]
    fn bad_specs_name_the_field() {
        let spec = TreeSpec {
            files_per_dir: 1,
            ..TreeSpec::default()
        };
        assert_eq!(Tree::new(&spec).unwrap_err().field, "files-per-dir");
        let spec = TreeSpec {
            sizing: FileSizing::FileSize(0),
            ..TreeSpec::default()
        };
        assert_eq!(Tree::new(&spec).unwrap_err().field, "file-size");
    }

    proptest::proptest! {
        /// Any small tree walks consistently: names, inodes and parents round-trip.
        #[test]
        fn any_small_tree_walks_consistently(files in 0u64..300, fanout in 2u64..12) {
            let sizing = FileSizing::Files(files);
            let spec = TreeSpec { size: files * 3, sizing, files_per_dir: fanout, dlio: None };
            check_walk(&Tree::new(&spec).unwrap());
        }
    }

    #[test]
    fn empty_tree_has_an_empty_root() {
        let t = tree(0, 1 << 30, 1000);
        assert_eq!(
            (t.files(), t.child_count(DirId { level: 0, index: 0 })),
            (0, 0)
        );
    }
}
