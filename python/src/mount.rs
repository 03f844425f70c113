//! The native side of `dgen_py.mount()`: start a dgenfs FUSE mount in this process and
//! hand Python a handle that unmounts with the GIL released.
//!
//! Temporary directories, `atexit` and the context manager live in Python; this only maps
//! options and errors. Mount failures become `OSError` subclasses carrying the mount point
//! as `filename` (`FileNotFoundError`, `NotADirectoryError`, `PermissionError`, ...).

use std::path::PathBuf;
use std::sync::Mutex;

use dgenfs::mount::{MountError, MountHandle, MountOptions};
use dgenfs::spec::{self, ContentSpec};
use dgenfs::tree::{FileSizing, TreeSpec};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args;

/// A live mount; unmounted by `unmount()` or when garbage collected.
#[pyclass(module = "dgen_py._native", name = "MountHandle")]
pub struct PyMountHandle {
    inner: Mutex<Option<MountHandle>>,
    path: PathBuf,
    spec: ContentSpec,
    tree: TreeSpec,
}

fn mount_error(err: MountError) -> PyErr {
    let message = err.to_string();
    let os = |errno: i32, path: PathBuf| PyOSError::new_err((errno, message.clone(), path));
    match err {
        MountError::Spec(e) => args::value_error(e.field, &e),
        MountError::NoThreads => PyValueError::new_err(message),
        MountError::MountpointMissing(path) => os(libc::ENOENT, path),
        MountError::NotADirectory(path) => os(libc::ENOTDIR, path),
        MountError::AlreadyMounted(path) => os(libc::EBUSY, path),
        MountError::StaleMount(path) => os(libc::ENOTCONN, path),
        MountError::FuseUnavailable(_) if message.contains("permission denied") => {
            os(libc::EACCES, PathBuf::from("/dev/fuse"))
        }
        MountError::FuseUnavailable(_) => os(libc::ENODEV, PathBuf::from("/dev/fuse")),
        MountError::Io { path, source, .. } => os(source.raw_os_error().unwrap_or(libc::EIO), path),
    }
}

fn tree_spec(
    size: u64,
    file_size: Option<&Bound<'_, PyAny>>,
    files: Option<&Bound<'_, PyAny>>,
) -> PyResult<TreeSpec> {
    let mut tree = TreeSpec {
        size,
        ..TreeSpec::default()
    };
    if let Some(n) = file_size.map(|f| args::size("file_size", f)).transpose()? {
        tree.sizing = FileSizing::FileSize(n);
    }
    if let Some(n) = args::count("files", files)? {
        tree.sizing = FileSizing::Files(n as u64);
    }
    Ok(tree)
}

/// Mounts a tree; the Python wrapper has already checked the options it owns.
#[pyfunction]
#[pyo3(signature = (
    mountpoint, size, *, compress, dedup, dedup_unit, seed, file_size, files, threads,
    kernel_cache, cache, auto_unmount,
))]
#[allow(clippy::too_many_arguments)]
pub fn mount(
    py: Python<'_>,
    mountpoint: PathBuf,
    size: &Bound<'_, PyAny>,
    compress: f64,
    dedup: f64,
    dedup_unit: &Bound<'_, PyAny>,
    seed: Option<&Bound<'_, PyAny>>,
    file_size: Option<&Bound<'_, PyAny>>,
    files: Option<&Bound<'_, PyAny>>,
    threads: Option<&Bound<'_, PyAny>>,
    kernel_cache: bool,
    cache: Option<&Bound<'_, PyAny>>,
    auto_unmount: bool,
) -> PyResult<PyMountHandle> {
    let size = args::size("size", size)?;
    let unit = args::size("dedup_unit", dedup_unit)?;
    spec::check_dedup_unit(unit).map_err(|e| args::value_error("dedup_unit", &e))?;
    // TODO: the block cache has no size knob in the mount yet; `cache` is validated and
    // reported in `Mount.spec` so that scripts can pass it today.
    cache.map(|c| args::size("cache", c)).transpose()?;
    let content = ContentSpec {
        seed: args::seed(seed)?,
        compress,
        dedup,
        dedup_unit: unit,
    };
    content
        .validate()
        .map_err(|e| args::value_error(e.field, &e))?;
    let mut opts = MountOptions::new(mountpoint, content);
    opts.tree = tree_spec(size, file_size, files)?;
    opts.threads = args::count("threads", threads)?;
    opts.kernel_cache = kernel_cache;
    opts.auto_unmount = auto_unmount;

    let handle = py
        .detach(|| crate::no_panic("mounting", || dgenfs::mount::mount(&opts)))?
        .map_err(mount_error)?;
    Ok(PyMountHandle {
        path: handle.path().to_owned(),
        spec: content,
        tree: opts.tree,
        inner: Mutex::new(Some(handle)),
    })
}

#[pymethods]
impl PyMountHandle {
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    fn is_mounted(&self) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.as_ref().is_some_and(MountHandle::is_mounted)
    }

    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("size", self.tree.size)?;
        dict.set_item("compress", self.spec.compress)?;
        dict.set_item("dedup", self.spec.dedup)?;
        dict.set_item("dedup_unit", self.spec.dedup_unit)?;
        dict.set_item("seed", self.spec.seed)?;
        match self.tree.sizing {
            FileSizing::FileSize(n) => dict.set_item("file_size", n)?,
            FileSizing::Files(n) => dict.set_item("files", n)?,
        }
        dict.set_item("files_per_dir", self.tree.files_per_dir)?;
        dict.set_item("content_version", dgenfs::CONTENT_VERSION)?;
        Ok(dict)
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(handle) = inner.as_ref() else {
            return Ok(dict);
        };
        let stats = handle.stats();
        dict.set_item("bytes_read", stats.bytes_read)?;
        dict.set_item("reads", stats.reads)?;
        dict.set_item("opens", stats.opens)?;
        dict.set_item("uptime", stats.uptime.as_secs_f64())?;
        dict.set_item("recent_bytes_per_sec", stats.recent_bytes_per_sec)?;
        dict.set_item("files", handle.tree().files())?;
        Ok(dict)
    }

    /// Unmounts and joins the session threads; a second call does nothing.
    fn unmount(&self, py: Python<'_>) -> PyResult<()> {
        let handle = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        match handle {
            Some(handle) => py
                .detach(|| crate::no_panic("unmounting", || handle.unmount()))?
                .map_err(mount_error),
            None => Ok(()),
        }
    }
}

impl Drop for PyMountHandle {
    fn drop(&mut self) {
        let handle = self
            .inner
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(handle);
    }
}
