//! DLIO (MLPerf Storage) dataset layouts: `train/` and `valid/` of formatted sample files.
//!
//! The tree is what DLIO's generators write: `<root>/train/` and `<root>/valid/` (`valid/`
//! exists even when empty), files `img_<i>_of_<N>.<ext>` with `i` zero-padded to the width
//! of `N`, and with `subfolders = S > 1` train file `i` in `train/<i mod S>/`, the folder
//! name zero-padded to the width of `S`. Train file `i` has global index `i`, valid file
//! `j` global index `train + j`.
//!
//! File sizes vary as DLIO's do: each file has one `dim1 x dim2` image shape drawn from a
//! normal distribution around `sqrt(record_length)` with deviation `record_length_stdev /
//! 2 / sqrt(record_length)` (DLIO's rule), here from a hash of (seed, file) so every file's
//! shape is O(1) and the same on every host. Dimensions are clipped to at most six
//! deviations above the mean.
//!
//! The payloads of all files, in file order, are one run of the content stream: file `g`
//! reads the stream from the sum of the payload lengths of files `0..g` on, so the dataset
//! as a whole has the stream's dedup and compress ratios. Those sums are a table built when
//! the tree is (8 bytes and one shape draw per file, in parallel: about 40 ms for
//! cosmoflow's 524,288 files on two cores).
//!
//! TODO: the table makes a tree of `n` files cost `8 n` bytes and O(n) time to build, so
//! trees are capped at 2^28 files (a 2 GiB table, about 20 s to mount); sizes with O(1)
//! prefix sums would lift the cap, and DLIO datasets have millions of files at most.
//!
//! TODO: there is no `index/` folder of DALI TFRecord indexes (`tfrecord2idx` output), so
//! DALI loaders cannot read tfrecord trees; the TensorFlow and PyTorch loaders need none.
//!
//! TODO: `subfolders` splits `train/` only; DLIO's `num_subfolders_eval` is not offered
//! because no MLPerf Storage workload uses it.
//!
//! This module computes names, shapes and offsets; it produces no bytes.

use std::sync::Arc;

use rayon::prelude::*;

use crate::content::lanes::mix64;
use crate::format::{FileLayout, Format, Shape};
use crate::spec::SpecError;
use crate::tree::{DirId, FileIndex, Node};

/// Largest number of files a dlio tree may hold: its offset table takes 8 bytes per file.
const MAX_FILES: u64 = 1 << 28;

/// The top-level directories, in name order.
const SPLITS: [&str; 2] = ["train", "valid"];

/// The parameters of a DLIO dataset, named as DLIO's config keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DlioSpec {
    /// File format (and extension) of every file.
    pub format: Format,
    /// Files in `train/` (`num_files_train`).
    pub files_train: u64,
    /// Files in `valid/` (`num_files_eval`), 0 by default.
    pub files_valid: u64,
    /// Samples per file (`num_samples_per_file`), at least 1.
    pub samples_per_file: u64,
    /// Mean bytes of one sample (`record_length`), at least 1.
    pub record_length: u64,
    /// Standard deviation of the bytes of one sample (`record_length_stdev`), 0 for none.
    pub record_length_stdev: u64,
    /// Subfolders of `train/` (`num_subfolders_train`); 0 or 1 means none.
    pub subfolders: u64,
    /// Seed of the size variation; the content seed is the natural choice.
    pub seed: u64,
}

/// The MLPerf Storage workloads whose shapes `--preset` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// 3D U-Net: 168 npz files of one sample, 146.6 MB mean with a wide spread.
    Unet3d,
    /// ResNet-50: 1024 tfrecord files of 1251 samples of 114,660 bytes (about 143 MB).
    Resnet50,
    /// CosmoFlow: 524,288 tfrecord files of one sample of about 2.8 MB.
    Cosmoflow,
}

impl Preset {
    /// Parses `unet3d`, `resnet50` or `cosmoflow`.
    pub fn parse(text: &str) -> Result<Preset, SpecError> {
        match text.trim() {
            "unet3d" => Ok(Preset::Unet3d),
            "resnet50" => Ok(Preset::Resnet50),
            "cosmoflow" => Ok(Preset::Cosmoflow),
            _ => Err(SpecError::new(
                "preset",
                text,
                "expected unet3d, resnet50 or cosmoflow",
            )),
        }
    }

    /// The dataset of this workload as DLIO 2.0's `*_h100.yaml` configs define it.
    pub fn spec(self, seed: u64) -> DlioSpec {
        let (format, files_train, samples_per_file, record_length, record_length_stdev) = match self
        {
            Preset::Unet3d => (Format::Npz, 168, 1, 146_600_628, 68_341_808),
            Preset::Resnet50 => (Format::TfRecord, 1024, 1251, 114_660, 0),
            Preset::Cosmoflow => (Format::TfRecord, 524_288, 1, 2_828_486, 71_311),
        };
        DlioSpec {
            format,
            files_train,
            files_valid: 0,
            samples_per_file,
            record_length,
            record_length_stdev,
            subfolders: 0,
            seed,
        }
    }
}

/// How a tree's files are named and grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `file_N` in `dir_N` directories, sized by the tree's size and file size or count.
    Plain,
    /// DLIO's `train/` and `valid/` with `img_<i>_of_<N>.<ext>` files.
    Dlio,
}

impl Layout {
    /// Parses `plain` or `dlio`.
    pub fn parse(text: &str) -> Result<Layout, SpecError> {
        match text.trim() {
            "plain" => Ok(Layout::Plain),
            "dlio" => Ok(Layout::Dlio),
            _ => Err(SpecError::new("layout", text, "expected plain or dlio")),
        }
    }
}

/// A DLIO dataset as a user asks for it: every knob is optional.
///
/// This is what `mountctl`'s dataset flags and the Python keywords fill in. An unset knob
/// takes the preset's value, else DLIO's default: raw files, 8 in `train/`, none in
/// `valid/`, one sample of 1 MiB per file, no subfolders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DlioRequest {
    /// File format.
    pub format: Option<Format>,
    /// Tree layout; dlio when a preset or a format other than raw is given, else plain.
    pub layout: Option<Layout>,
    /// MLPerf Storage workload whose shape is the base of the other knobs.
    pub preset: Option<Preset>,
    /// Files in `train/`.
    pub files_train: Option<u64>,
    /// Files in `valid/`.
    pub files_valid: Option<u64>,
    /// Samples per file.
    pub samples_per_file: Option<u64>,
    /// Mean bytes of one sample.
    pub record_length: Option<u64>,
    /// Standard deviation of the bytes of one sample.
    pub record_length_stdev: Option<u64>,
    /// Subfolders of `train/`.
    pub subfolders: Option<u64>,
}

impl DlioRequest {
    /// The dataset this request describes with size seed `seed`, or `None` for a plain tree.
    ///
    /// The plain layout with a preset or a framed format is an error. The values are not
    /// range-checked here; [`DlioTree::new`] does that.
    pub fn resolve(&self, seed: u64) -> Result<Option<DlioSpec>, SpecError> {
        let implied = self.preset.is_some() || self.format.is_some_and(|f| f != Format::Raw);
        match (self.layout, implied) {
            (Some(Layout::Plain), true) => {
                let allowed = "plain trees serve raw files; drop format and preset, or use dlio";
                return Err(SpecError::new("layout", "plain", allowed));
            }
            (Some(Layout::Plain), false) | (None, false) => return Ok(None),
            _ => {}
        }

        let base = match self.preset {
            Some(p) => p.spec(seed),
            None => DlioSpec {
                format: Format::Raw,
                files_train: 8,
                files_valid: 0,
                samples_per_file: 1,
                record_length: 1 << 20,
                record_length_stdev: 0,
                subfolders: 0,
                seed,
            },
        };
        Ok(Some(DlioSpec {
            format: self.format.unwrap_or(base.format),
            files_train: self.files_train.unwrap_or(base.files_train),
            files_valid: self.files_valid.unwrap_or(base.files_valid),
            samples_per_file: self.samples_per_file.unwrap_or(base.samples_per_file),
            record_length: self.record_length.unwrap_or(base.record_length),
            record_length_stdev: self.record_length_stdev.unwrap_or(base.record_length_stdev),
            subfolders: self.subfolders.unwrap_or(base.subfolders),
            seed,
        }))
    }
}

/// A DLIO tree: every query is O(1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlioTree {
    spec: DlioSpec,
    /// Nominal image dimension: `floor(sqrt(record_length))`.
    dim: u64,
    /// Largest dimension a file may draw.
    dim_max: u64,
    /// Stream offset of each file's payload: the payload lengths of the files before it.
    offsets: Arc<[u64]>,
}

/// Files whose payload lengths one rayon task sums when the offset table is built.
const TABLE_PIECE: usize = 1 << 14;

impl DlioTree {
    /// Checks `spec` and computes the tree, including its table of stream offsets.
    pub fn new(spec: &DlioSpec) -> Result<DlioTree, SpecError> {
        check(spec)?;
        let dim = (spec.record_length as f64).sqrt().floor().max(1.0) as u64;
        let dim_max = dim + (6.0 * dim_stdev(spec)).ceil() as u64;
        let mut tree = DlioTree {
            spec: *spec,
            dim,
            dim_max,
            offsets: Arc::new([]),
        };
        let err = || SpecError::new("record-length", spec.record_length, "a smaller dataset");
        tree.offsets = tree.offset_table().ok_or_else(err)?;
        Ok(tree)
    }

    /// Prefix sums of the payload lengths, or `None` when they overflow 64 bits.
    fn offset_table(&self) -> Option<Arc<[u64]>> {
        let largest = self.dim_max.checked_mul(self.dim_max)?;
        largest.checked_mul(self.spec.samples_per_file)?;
        let mut lens: Vec<u64> = vec![0; self.files() as usize];
        lens.par_chunks_mut(TABLE_PIECE)
            .enumerate()
            .for_each(|(k, piece)| {
                for (j, len) in piece.iter_mut().enumerate() {
                    let g = FileIndex((k * TABLE_PIECE + j) as u64);
                    *len = self.shape(g).payload_len();
                }
            });
        let mut sum: u64 = 0;
        for len in &mut lens {
            let start = sum;
            sum = sum.checked_add(*len)?;
            *len = start;
        }
        Some(lens.into())
    }

    /// The spec of this tree.
    pub fn spec(&self) -> &DlioSpec {
        &self.spec
    }

    /// Number of files in `train/` and `valid/`.
    pub fn files(&self) -> u64 {
        self.spec.files_train + self.spec.files_valid
    }

    /// Number of directories: the root, `train/`, `valid/` and the subfolders.
    pub fn dirs(&self) -> u64 {
        3 + self.subfolders()
    }

    /// Levels of directories below the root.
    pub fn depth(&self) -> u32 {
        if self.subfolders() > 0 {
            2
        } else {
            1
        }
    }

    /// The length of a file of the nominal shape.
    pub fn nominal_file_len(&self) -> u64 {
        let shape = Shape {
            dim1: self.dim,
            dim2: self.dim,
            samples: self.spec.samples_per_file,
        };
        FileLayout::new(self.spec.format, shape).len()
    }

    /// The image shape of file `g`.
    pub fn shape(&self, g: FileIndex) -> Shape {
        Shape {
            dim1: self.draw_dim(g.0, 0),
            dim2: self.draw_dim(g.0, 1),
            samples: self.spec.samples_per_file,
        }
    }

    /// The layout of file `g`.
    pub fn layout(&self, g: FileIndex) -> FileLayout {
        FileLayout::new(self.spec.format, self.shape(g))
    }

    /// Where file `g`'s payload starts in the content stream.
    pub fn file_stream_offset(&self, g: FileIndex) -> u64 {
        self.offsets.get(g.0 as usize).copied().unwrap_or(0)
    }

    /// The directory holding `node`; the root is its own parent.
    pub fn parent(&self, node: Node) -> DirId {
        let root = DirId { level: 0, index: 0 };
        match node {
            Node::Dir(DirId { level: 0 | 1, .. }) => root,
            Node::Dir(_) => DirId { level: 1, index: 0 },
            Node::File(g) if g.0 >= self.spec.files_train => DirId { level: 1, index: 1 },
            Node::File(g) if self.subfolders() > 0 => DirId {
                level: 2,
                index: g.0 % self.subfolders(),
            },
            Node::File(_) => DirId { level: 1, index: 0 },
        }
    }

    /// Whether `node` exists in this tree.
    pub fn contains(&self, node: Node) -> bool {
        match node {
            Node::File(g) => g.0 < self.files(),
            Node::Dir(DirId { level: 0, index }) => index == 0,
            Node::Dir(DirId { level: 1, index }) => index < 2,
            Node::Dir(DirId { level: 2, index }) => index < self.subfolders(),
            Node::Dir(_) => false,
        }
    }

    /// Number of entries in `dir`, not counting `.` and `..`.
    pub fn child_count(&self, dir: DirId) -> u64 {
        match (dir.level, dir.index) {
            (0, _) => 2,
            (1, 0) if self.subfolders() > 0 => self.subfolders(),
            (1, 0) => self.spec.files_train,
            (1, _) => self.spec.files_valid,
            (_, k) => self
                .spec
                .files_train
                .saturating_sub(k)
                .div_ceil(self.subfolders()),
        }
    }

    /// The `k`-th entry of `dir` in name order, if there is one.
    pub fn child(&self, dir: DirId, k: u64) -> Option<Node> {
        if k >= self.child_count(dir) {
            return None;
        }
        Some(match (dir.level, dir.index) {
            (0, _) => Node::Dir(DirId { level: 1, index: k }),
            (1, 0) if self.subfolders() > 0 => Node::Dir(DirId { level: 2, index: k }),
            (1, 0) => Node::File(FileIndex(k)),
            (1, _) => Node::File(FileIndex(self.spec.files_train + k)),
            (_, sub) => Node::File(FileIndex(sub + k * self.subfolders())),
        })
    }

    /// The name of a non-root `node`.
    pub fn name(&self, node: Node) -> String {
        match node {
            Node::Dir(DirId { level: 1, index }) => SPLITS[index.min(1) as usize].to_owned(),
            Node::Dir(d) => format!("{:0w$}", d.index, w = width(self.subfolders())),
            Node::File(g) => {
                let (i, n) = self.split_index(g);
                let ext = self.spec.format.name();
                format!("img_{i:0w$}_of_{n}.{ext}", w = width(n))
            }
        }
    }

    /// Parses `name` back to a child of `dir`, or `None` when `dir` has no such entry.
    pub fn lookup(&self, dir: DirId, name: &str) -> Option<Node> {
        let node = match dir.level {
            0 => Node::Dir(DirId {
                level: 1,
                index: SPLITS.iter().position(|&s| s == name)? as u64,
            }),
            1 if dir.index == 0 && self.subfolders() > 0 => Node::Dir(DirId {
                level: 2,
                index: parse_fixed(name, width(self.subfolders()))?,
            }),
            _ => Node::File(self.parse_file(dir, name)?),
        };
        (self.contains(node) && self.parent(node) == dir && self.name(node) == name).then_some(node)
    }

    /// Parses `img_<i>_of_<N>.<ext>` into a global index of the split `dir` belongs to.
    fn parse_file(&self, dir: DirId, name: &str) -> Option<FileIndex> {
        let valid = dir.level == 1 && dir.index == 1;
        let n = if valid {
            self.spec.files_valid
        } else {
            self.spec.files_train
        };
        let rest = name.strip_prefix("img_")?;
        let (index, rest) = rest.split_once("_of_")?;
        let expected_rest = format!("{n}.{}", self.spec.format.name());
        let i = parse_fixed(index, width(n)).filter(|_| rest == expected_rest)?;
        Some(FileIndex(if valid { self.spec.files_train + i } else { i }))
    }

    /// (index within its split, files in that split) of file `g`.
    fn split_index(&self, g: FileIndex) -> (u64, u64) {
        match g.0.checked_sub(self.spec.files_train) {
            Some(j) => (j, self.spec.files_valid),
            None => (g.0, self.spec.files_train),
        }
    }

    fn subfolders(&self) -> u64 {
        if self.spec.subfolders > 1 {
            self.spec.subfolders
        } else {
            0
        }
    }

    /// Dimension `which` (0 or 1) of file `g`: normal around `dim`, clipped to `1..=dim_max`.
    fn draw_dim(&self, g: u64, which: u64) -> u64 {
        let stdev = dim_stdev(&self.spec);
        if stdev == 0.0 {
            return self.dim;
        }
        let key = mix64(self.spec.seed ^ 0x3c6e_f372_fe94_f82b);
        let a = mix64(key ^ mix64(2 * (2 * g + which)));
        let b = mix64(key ^ mix64(2 * (2 * g + which) + 1));
        let z = standard_normal(a, b);
        let d = (self.dim as f64 + stdev * z).floor();
        (d.max(1.0) as u64).min(self.dim_max)
    }
}

/// The spread of an image dimension, by DLIO's rule.
fn dim_stdev(spec: &DlioSpec) -> f64 {
    spec.record_length_stdev as f64 / 2.0 / (spec.record_length as f64).sqrt()
}

/// A standard normal variate from two random words (Box-Muller).
fn standard_normal(a: u64, b: u64) -> f64 {
    let u1 = ((a >> 11) + 1) as f64 / (1u64 << 53) as f64; // (0, 1]
    let u2 = (b >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn check(spec: &DlioSpec) -> Result<(), SpecError> {
    let files = spec.files_train.checked_add(spec.files_valid);
    if files.is_none_or(|n| n > MAX_FILES) {
        return Err(SpecError::new(
            "files-train",
            spec.files_train,
            "at most 2^28 files",
        ));
    }
    if spec.samples_per_file == 0 {
        return Err(SpecError::new("samples-per-file", 0, "at least 1"));
    }
    if spec.record_length == 0 {
        return Err(SpecError::new("record-length", 0, "at least 1 byte"));
    }
    if spec.subfolders > spec.files_train.max(1) {
        let allowed = "at most the number of train files";
        return Err(SpecError::new("subfolders", spec.subfolders, allowed));
    }
    Ok(())
}

/// Decimal digits of `n` (DLIO pads to `len(str(n))`).
fn width(n: u64) -> usize {
    n.to_string().len()
}

/// Parses exactly `width` ASCII digits.
fn parse_fixed(text: &str, width: usize) -> Option<u64> {
    (text.len() == width && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(train: u64, valid: u64, subfolders: u64) -> DlioSpec {
        DlioSpec {
            files_train: train,
            files_valid: valid,
            subfolders,
            ..Preset::Unet3d.spec(5)
        }
    }

    /// Every path of the tree, walked through `child` and checked through `lookup`.
    fn walk(t: &DlioTree) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![(DirId { level: 0, index: 0 }, String::new())];
        while let Some((dir, path)) = stack.pop() {
            for k in 0..t.child_count(dir) {
                let node = t.child(dir, k).unwrap();
                let name = t.name(node);
                assert_eq!(t.lookup(dir, &name), Some(node), "{path}/{name}");
                assert_eq!(t.parent(node), dir);
                match node {
                    Node::Dir(d) => stack.push((d, format!("{path}/{name}"))),
                    Node::File(_) => out.push(format!("{path}/{name}")),
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn names_follow_dlio() {
        let t = DlioTree::new(&spec(12, 3, 0)).unwrap();
        let paths = walk(&t);
        assert_eq!(paths.len(), 15);
        assert_eq!(paths[0], "/train/img_00_of_12.npz");
        assert_eq!(paths[14], "/valid/img_2_of_3.npz");
        let root = DirId { level: 0, index: 0 };
        assert_eq!(t.child_count(root), 2);
        assert_eq!(
            t.lookup(root, "valid"),
            Some(Node::Dir(DirId { level: 1, index: 1 }))
        );
    }

    #[test]
    fn subfolders_hold_i_mod_s() {
        let t = DlioTree::new(&spec(25, 0, 12)).unwrap();
        let paths = walk(&t);
        assert_eq!(paths.len(), 25);
        assert!(paths.contains(&"/train/01/img_13_of_25.npz".to_owned()));
        assert!(paths.contains(&"/train/11/img_23_of_25.npz".to_owned()));
        let valid = DirId { level: 1, index: 1 };
        assert_eq!(t.child_count(valid), 0);
        let sub = DirId { level: 2, index: 1 };
        assert_eq!(t.lookup(sub, "img_02_of_25.npz"), None);
        assert_eq!(t.lookup(sub, "img_13_of_25.npy"), None);
        assert_eq!(t.lookup(sub, "img_013_of_25.npz"), None);
    }

    #[test]
    fn sizes_vary_around_the_record_length() {
        let t = DlioTree::new(&Preset::Unet3d.spec(1)).unwrap();
        let sizes: Vec<u64> = (0..168).map(|g| t.layout(FileIndex(g)).len()).collect();
        let mean = sizes.iter().sum::<u64>() as f64 / 168.0;
        assert!((mean / 146.6e6 - 1.0).abs() < 0.15, "mean {mean}");
        assert!(sizes.iter().any(|&s| s != sizes[0]));
        let again = DlioTree::new(&Preset::Unet3d.spec(1)).unwrap();
        assert_eq!(again.layout(FileIndex(7)), t.layout(FileIndex(7)));
        let max = t.dim_max * t.dim_max;
        assert!((0..168).all(|g| t.shape(FileIndex(g)).payload_len() <= max));
    }

    #[test]
    fn payloads_are_one_run_of_the_stream() {
        let t = DlioTree::new(&spec(12, 3, 4)).unwrap();
        let mut next = 0;
        for g in (0..t.files()).map(FileIndex) {
            assert_eq!(t.file_stream_offset(g), next);
            next += t.shape(g).payload_len();
        }
        let start = std::time::Instant::now();
        let c = DlioTree::new(&Preset::Cosmoflow.spec(1)).unwrap();
        let elapsed = start.elapsed();
        let last = FileIndex(c.files() - 1);
        let before = c.file_stream_offset(last);
        assert!(
            (before as f64 / 524_287.0 / 2.83e6 - 1.0).abs() < 0.05,
            "{before}"
        );
        assert!(elapsed.as_millis() < 500, "{elapsed:?}");
    }

    #[test]
    fn presets_have_mlperf_sizes() {
        let r = DlioTree::new(&Preset::Resnet50.spec(1)).unwrap();
        let len = r.layout(FileIndex(0)).len();
        assert!((140e6..146e6).contains(&(len as f64)), "{len}");
        let c = DlioTree::new(&Preset::Cosmoflow.spec(1)).unwrap();
        for g in [0, 1, 524_287] {
            let len = c.layout(FileIndex(g)).len() as f64;
            assert!((2.6e6..3.1e6).contains(&len), "{len}");
        }
        assert_eq!(c.files(), 524_288);
    }

    #[test]
    fn bad_specs_name_the_field() {
        let mut s = spec(10, 0, 0);
        s.samples_per_file = 0;
        assert_eq!(DlioTree::new(&s).unwrap_err().field, "samples-per-file");
        assert_eq!(
            DlioTree::new(&spec(10, 0, 11)).unwrap_err().field,
            "subfolders"
        );
        assert_eq!(Preset::parse("bert").unwrap_err().field, "preset");
    }

    #[test]
    fn request_defaults_presets_and_layouts() {
        assert_eq!(DlioRequest::default().resolve(7), Ok(None));
        let npz = DlioRequest {
            format: Some(Format::Npz),
            ..DlioRequest::default()
        };
        let spec = npz.resolve(7).unwrap().unwrap();
        assert_eq!(
            (spec.files_train, spec.record_length, spec.seed),
            (8, 1 << 20, 7)
        );

        let unet = DlioRequest {
            preset: Some(Preset::Unet3d),
            files_train: Some(2),
            ..DlioRequest::default()
        };
        let spec = unet.resolve(1).unwrap().unwrap();
        assert_eq!((spec.format, spec.files_train), (Format::Npz, 2));
        assert_eq!(spec.record_length, Preset::Unet3d.spec(1).record_length);

        let plain = DlioRequest {
            layout: Some(Layout::Plain),
            ..npz
        };
        assert_eq!(plain.resolve(7).unwrap_err().field, "layout");
        assert_eq!(Layout::parse("flat").unwrap_err().field, "layout");
    }
}
