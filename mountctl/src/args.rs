//! Command-line flags shared by subcommands, parsed with the library's own validators.

use clap::Args;
use dgenfs::spec::{self, ContentSpec};

/// Flags that define the content of a stream.
#[derive(Debug, Clone, Args)]
pub struct ContentArgs {
    /// Target compress ratio (1 = incompressible, up to 64)
    #[arg(long, default_value = "1", allow_negative_numbers = true, value_parser = parse_compress)]
    pub compress: f64,

    /// Target dedup ratio: units written / distinct units (1 = no duplicates, up to 1000)
    #[arg(long, default_value = "1", allow_negative_numbers = true, value_parser = parse_dedup)]
    pub dedup: f64,

    /// Dedup unit: a power of two from 512 to 1M
    #[arg(long, default_value = "4K", value_parser = spec::parse_dedup_unit)]
    pub dedup_unit: u64,

    /// Seed; when absent a random one is picked and printed so the run can be repeated
    #[arg(long, allow_negative_numbers = true, value_parser = spec::parse_seed)]
    pub seed: Option<u64>,
}

impl ContentArgs {
    /// The content spec these flags describe, drawing a seed when none was given.
    pub fn to_spec(&self) -> ContentSpec {
        ContentSpec {
            seed: self.seed.unwrap_or_else(spec::random_seed),
            compress: self.compress,
            dedup: self.dedup,
            dedup_unit: self.dedup_unit,
        }
    }
}

fn parse_compress(text: &str) -> Result<f64, dgenfs::SpecError> {
    spec::parse_ratio("compress", text, 1.0, spec::MAX_COMPRESS)
}

fn parse_dedup(text: &str) -> Result<f64, dgenfs::SpecError> {
    spec::parse_ratio("dedup", text, 1.0, spec::MAX_DEDUP)
}

/// Parses a size flag (`--size`, `--offset`, ...).
pub fn parse_size(text: &str) -> Result<u64, dgenfs::SpecError> {
    spec::parse_size("size", text)
}
