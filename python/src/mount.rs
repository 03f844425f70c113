//! The native side of `dgen_py.mount()`: start a dgenfs FUSE mount in this process and
//! hand Python a handle that unmounts with the GIL released.
//!
//! Temporary directories, `atexit` and the context manager live in Python; this only maps
//! options and errors. Mount failures become `OSError` subclasses carrying the mount point
//! as `filename` (`FileNotFoundError`, `NotADirectoryError`, `PermissionError`, ...); bad
//! values, including a NUMA node the machine lacks, become `ValueError`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use dgenfs::cache::{CacheConfig, CacheError, NumaMode, TopologyError};
use dgenfs::dlio::{DlioRequest, Layout, Preset};
use dgenfs::format::Format;
use dgenfs::mount::{MountError, MountHandle, MountOptions};
use dgenfs::spec::{self, ContentSpec, SpecError};
use dgenfs::tree::{FileSizing, TreeSpec};
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyString};

use crate::args;

/// A live mount; unmounted by `unmount()` or when garbage collected.
#[pyclass(module = "dgen_py._native", name = "MountHandle")]
pub struct PyMountHandle {
    inner: Mutex<Option<MountHandle>>,
    path: PathBuf,
    /// Bytes in all files of the tree as mounted.
    size: u64,
    /// Files in the tree as mounted.
    files: u64,
    spec: ContentSpec,
    tree: TreeSpec,
    cache: CacheConfig,
    numa: NumaMode,
    /// Whether requests come through per-CPU io_uring queues.
    io_uring: bool,
}

fn mount_error(err: MountError, mountpoint: &Path) -> PyErr {
    let message = err.to_string();
    let os = |errno: i32, path: PathBuf| PyOSError::new_err((errno, message.clone(), path));
    match err {
        MountError::Spec(e) => args::value_error(&e.field.replace('-', "_"), &e),
        MountError::NoThreads => PyValueError::new_err(message),
        MountError::MountpointMissing(path) => os(libc::ENOENT, path),
        MountError::NotADirectory(path) => os(libc::ENOTDIR, path),
        MountError::AlreadyMounted(path) => os(libc::EBUSY, path),
        MountError::StaleMount(path) => os(libc::ENOTCONN, path),
        MountError::FuseUnavailable(_) if message.contains("permission denied") => {
            os(libc::EACCES, PathBuf::from("/dev/fuse"))
        }
        MountError::FuseUnavailable(_) => os(libc::ENODEV, PathBuf::from("/dev/fuse")),
        MountError::Cache(e) => cache_error(e, message, mountpoint),
        MountError::Io { path, source, .. } => os(source.raw_os_error().unwrap_or(libc::EIO), path),
        MountError::UringUnavailable => os(libc::EOPNOTSUPP, PathBuf::from("/dev/fuse")),
    }
}

/// Maps a cache that could not be built: a value the caller chose is a `ValueError`; a
/// machine that cannot run the cache is an `OSError` on the mount point.
fn cache_error(err: CacheError, message: String, mountpoint: &Path) -> PyErr {
    let os = |errno: i32| PyOSError::new_err((errno, message.clone(), mountpoint.to_owned()));
    match err {
        CacheError::Topology(TopologyError::BadMode(_)) => PyValueError::new_err(message),
        CacheError::Topology(TopologyError::NoSuchNode { wanted, have }) => PyValueError::new_err(
            format!("invalid numa '{wanted}': this machine has NUMA nodes {have:?}"),
        ),
        // The block size is not a Python parameter; the library default is always valid.
        CacheError::BlockSize(_) => PyValueError::new_err(message),
        // hwloc reads /sys; failing to is the machine's fault, as an unreadable file is.
        CacheError::Topology(TopologyError::Hwloc(_)) => os(libc::EIO),
        // rayon cannot start threads when a thread or memory limit is hit; pthread_create
        // reports that as EAGAIN.
        CacheError::Pool { .. } => os(libc::EAGAIN),
    }
}

/// Reads `numa`: "auto", "uma", or a NUMA node number as an int or a string.
fn numa_mode(value: &Bound<'_, PyAny>) -> PyResult<NumaMode> {
    if let Ok(text) = value.cast::<PyString>() {
        let text = text.to_str()?;
        return text
            .parse()
            .map_err(|e: TopologyError| PyValueError::new_err(e.to_string()));
    }
    if !value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "numa must be 'auto', 'uma' or a NUMA node number, not {}",
            value.get_type().name()?
        )));
    }
    let node = args::count("numa", Some(value))?.unwrap_or_default();
    Ok(NumaMode::Node(node))
}

/// The value of `key` in `dataset`, with `None` counting as absent.
fn item<'py>(dataset: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(dataset.get_item(key)?.filter(|v| !v.is_none()))
}

/// Reads a name such as `format="npz"` with the library's parser for that field.
fn choice<T>(
    dataset: &Bound<'_, PyDict>,
    param: &'static str,
    parse: fn(&str) -> Result<T, SpecError>,
) -> PyResult<Option<T>> {
    let Some(value) = item(dataset, param)? else {
        return Ok(None);
    };
    let Ok(text) = value.cast::<PyString>() else {
        return Err(PyTypeError::new_err(format!(
            "{param} must be a str or None, not {}",
            value.get_type().name()?
        )));
    };
    parse(text.to_str()?)
        .map(Some)
        .map_err(|e| args::value_error(param, &e))
}

/// Reads a count such as `files_train=4`.
fn number(dataset: &Bound<'_, PyDict>, param: &'static str) -> PyResult<Option<u64>> {
    let value = item(dataset, param)?;
    Ok(args::count(param, value.as_ref())?.map(|n| n as u64))
}

/// Reads a byte count such as `record_length="1MiB"`.
fn bytes(dataset: &Bound<'_, PyDict>, param: &'static str) -> PyResult<Option<u64>> {
    item(dataset, param)?
        .map(|v| args::size(param, &v))
        .transpose()
}

/// The DLIO keywords of `mount()`, as the library's request (the CLI's flags, one for one).
fn dlio_request(dataset: &Bound<'_, PyDict>) -> PyResult<DlioRequest> {
    Ok(DlioRequest {
        format: choice(dataset, "format", Format::parse)?,
        layout: choice(dataset, "layout", Layout::parse)?,
        preset: choice(dataset, "preset", Preset::parse)?,
        files_train: number(dataset, "files_train")?,
        files_valid: number(dataset, "files_valid")?,
        samples_per_file: number(dataset, "samples_per_file")?,
        record_length: bytes(dataset, "record_length")?,
        record_length_stdev: bytes(dataset, "record_length_stdev")?,
        subfolders: number(dataset, "subfolders")?,
    })
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
///
/// `dataset` holds the DLIO keywords (`format`, `layout`, `preset`, `files_train`, ...);
/// a missing key or `None` leaves that knob to the preset or DLIO's default.
#[pyfunction]
#[pyo3(signature = (
    mountpoint, size, *, compress, dedup, dedup_unit, seed, file_size, files, threads,
    kernel_cache, cache, numa, io_uring, dataset, auto_unmount,
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
    numa: &Bound<'_, PyAny>,
    io_uring: &str,
    dataset: &Bound<'_, PyDict>,
    auto_unmount: bool,
) -> PyResult<PyMountHandle> {
    let size = args::size("size", size)?;
    let unit = args::size("dedup_unit", dedup_unit)?;
    spec::check_dedup_unit(unit).map_err(|e| args::value_error("dedup_unit", &e))?;
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
    opts.tree.dlio = dlio_request(dataset)?
        .resolve(content.seed)
        .map_err(|e| args::value_error(e.field, &e))?;
    opts.threads = args::count("threads", threads)?;
    opts.kernel_cache = kernel_cache;
    opts.auto_unmount = auto_unmount;
    if let Some(capacity) = cache.map(|c| args::size("cache", c)).transpose()? {
        opts.cache = CacheConfig {
            capacity,
            ..CacheConfig::default()
        };
    }
    opts.numa = numa_mode(numa)?;
    opts.uring = io_uring.parse().map_err(|_| {
        PyValueError::new_err(format!(
            "invalid io_uring '{io_uring}': expected 'auto', 'on' or 'off'"
        ))
    })?;

    let handle = py
        .detach(|| crate::no_panic("mounting", || dgenfs::mount::mount(&opts)))?
        .map_err(|e| mount_error(e, &opts.mountpoint))?;
    Ok(PyMountHandle {
        path: handle.path().to_owned(),
        size: handle.tree().size(),
        files: handle.tree().files(),
        spec: content,
        tree: opts.tree,
        cache: opts.cache,
        numa: opts.numa,
        io_uring: handle.io_uring(),
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
        dict.set_item("size", self.size)?;
        dict.set_item("compress", self.spec.compress)?;
        dict.set_item("dedup", self.spec.dedup)?;
        dict.set_item("dedup_unit", self.spec.dedup_unit)?;
        dict.set_item("seed", self.spec.seed)?;
        dict.set_item("cache", self.cache.capacity)?;
        dict.set_item("numa", self.numa.to_string())?;
        dict.set_item("io_uring", self.io_uring)?;
        dict.set_item("files", self.files)?;
        match &self.tree.dlio {
            Some(dlio) => {
                dict.set_item("layout", "dlio")?;
                dict.set_item("format", dlio.format.name())?;
                dict.set_item("files_train", dlio.files_train)?;
                dict.set_item("files_valid", dlio.files_valid)?;
                dict.set_item("samples_per_file", dlio.samples_per_file)?;
                dict.set_item("record_length", dlio.record_length)?;
                dict.set_item("record_length_stdev", dlio.record_length_stdev)?;
                dict.set_item("subfolders", dlio.subfolders)?;
            }
            None => {
                dict.set_item("layout", "plain")?;
                dict.set_item("format", Format::Raw.name())?;
                if let FileSizing::FileSize(n) = self.tree.sizing {
                    dict.set_item("file_size", n)?;
                }
                dict.set_item("files_per_dir", self.tree.files_per_dir)?;
            }
        }
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
                .map_err(|e| mount_error(e, &self.path)),
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
