//! Flags that make a tree a DLIO dataset: format, layout, DLIO's knobs and presets.

use anyhow::Result;
use clap::Args;
use dgenfs::dlio::{DlioRequest, DlioSpec, Layout, Preset};
use dgenfs::format::Format;

use crate::args::parse_size;

/// Flags of a DLIO dataset; any of --format (other than raw), --preset or --layout dlio
/// turns the tree into one.
#[derive(Debug, Clone, Args)]
pub struct DatasetArgs {
    /// File format: raw, npy, npz, hdf5 or tfrecord (default raw, or the preset's)
    #[arg(long, value_parser = Format::parse)]
    pub format: Option<Format>,

    /// Tree layout: plain or dlio (default dlio when --format or --preset is given, else plain)
    #[arg(long, value_parser = Layout::parse)]
    pub layout: Option<Layout>,

    /// MLPerf Storage workload shape: unet3d, resnet50 or cosmoflow; other flags override it
    #[arg(long, value_parser = Preset::parse)]
    pub preset: Option<Preset>,

    /// Files in train/ (default 8, or the preset's)
    #[arg(long)]
    pub files_train: Option<u64>,

    /// Files in valid/ (default 0; valid/ exists even when empty)
    #[arg(long)]
    pub files_valid: Option<u64>,

    /// Samples per file (default 1, or the preset's)
    #[arg(long)]
    pub samples_per_file: Option<u64>,

    /// Mean bytes of one sample, e.g. 146600628 or 1MiB (default 1MiB, or the preset's)
    #[arg(long, value_parser = parse_size)]
    pub record_length: Option<u64>,

    /// Standard deviation of the bytes of one sample (default 0, or the preset's)
    #[arg(long, value_parser = parse_size)]
    pub record_length_stdev: Option<u64>,

    /// Subfolders of train/: file i lives in train/<i mod S>/ (default none)
    #[arg(long)]
    pub subfolders: Option<u64>,
}

impl DatasetArgs {
    /// The DLIO dataset these flags describe, or `None` for a plain tree.
    pub fn to_spec(&self, seed: u64) -> Result<Option<DlioSpec>> {
        let request = DlioRequest {
            format: self.format,
            layout: self.layout,
            preset: self.preset,
            files_train: self.files_train,
            files_valid: self.files_valid,
            samples_per_file: self.samples_per_file,
            record_length: self.record_length,
            record_length_stdev: self.record_length_stdev,
            subfolders: self.subfolders,
        };
        Ok(request.resolve(seed)?)
    }
}
