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
