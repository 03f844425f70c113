//! dgenfs: synthetic data of exact compressibility and duplication, computed on read.
//!
//! Every byte is a pure function of (spec, offset): [`spec`] validates the parameters and
//! [`content`] computes the bytes. Nothing here touches a disk.

#![deny(missing_docs)]

pub mod cache;
pub mod content;
pub mod dlio;
pub mod format;
pub mod fs;
pub mod mount;
pub mod spec;
pub mod tree;

pub use content::{ContentId, Generator, UnitIndex, CONTENT_VERSION};
pub use spec::{ContentSpec, SpecError};
