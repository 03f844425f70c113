//! Native half of the `dgen_py` Python module, imported as `dgen_py._native`.
//!
//! The public API, its docstrings and its type stubs live in `python/dgen_py/`; this crate
//! only binds the dgenfs content engine (and, in `mount`, the FUSE mount) for it. Every long
//! call releases the GIL, every argument error becomes a built-in Python exception, and a Rust
//! panic becomes a `RuntimeError` instead of unwinding into the interpreter.

mod args;
mod buffer;
mod generator;
mod mount;
mod oneshot;
mod threads;
mod view;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<generator::PyGenerator>()?;
    m.add_class::<view::BytesView>()?;
    m.add_class::<mount::PyMountHandle>()?;
    m.add_function(wrap_pyfunction!(mount::mount, m)?)?;
    m.add_function(wrap_pyfunction!(oneshot::generate_buffer, m)?)?;
    m.add_function(wrap_pyfunction!(oneshot::generate_into_buffer, m)?)?;
    m.add_function(wrap_pyfunction!(oneshot::create_bytearrays, m)?)?;
    m.add("CONTENT_VERSION", dgenfs::CONTENT_VERSION)?;
    Ok(())
}

/// Runs `work`, turning a panic into a `RuntimeError` that says what was being done.
///
/// pyo3 would raise `PanicException`, which derives from `BaseException` and so escapes
/// `except Exception`; a bug here should look like any other failed call instead.
fn no_panic<T>(doing: &str, work: impl FnOnce() -> T) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        PyRuntimeError::new_err(format!("internal error while {doing}: {message}"))
    })
}
