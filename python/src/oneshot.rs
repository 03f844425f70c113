//! One-shot helpers of dgen-py: `generate_buffer`, `generate_into_buffer` and
//! `create_bytearrays`.

use std::ptr;
use std::sync::Arc;

use dgenfs::Generator;
use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::args;
use crate::buffer::WritableBuffer;
use crate::threads::Threads;
use crate::view::BytesView;

struct OneShot {
    generator: Arc<Generator>,
    threads: Threads,
}

#[allow(clippy::too_many_arguments)]
fn one_shot(
    dedup_ratio: f64,
    compress_ratio: f64,
    numa_mode: &str,
    max_threads: Option<&Bound<'_, PyAny>>,
    numa_node: Option<&Bound<'_, PyAny>>,
    seed: Option<&Bound<'_, PyAny>>,
) -> PyResult<OneShot> {
    args::numa_mode(numa_mode)?;
    let numa_node = args::count("numa_node", numa_node)?;
    let spec = args::content_spec(args::seed(seed)?, dedup_ratio, compress_ratio, None)?;
    let generator = Generator::new(&spec).map_err(|e| args::value_error(e.field, &e))?;
    let max_threads = args::count("max_threads", max_threads)?;
    Ok(OneShot {
        generator: Arc::new(generator),
        threads: Threads::placed(numa_mode, numa_node, max_threads)?,
    })
}

#[pyfunction]
#[pyo3(signature = (
    size,
    dedup_ratio = 1.0,
    compress_ratio = 1.0,
    numa_mode = "auto",
    max_threads = None,
    numa_node = None,
    seed = None,
))]
#[allow(clippy::too_many_arguments)]
pub fn generate_buffer(
    py: Python<'_>,
    size: &Bound<'_, PyAny>,
    dedup_ratio: f64,
    compress_ratio: f64,
    numa_mode: &str,
    max_threads: Option<&Bound<'_, PyAny>>,
    numa_node: Option<&Bound<'_, PyAny>>,
    seed: Option<&Bound<'_, PyAny>>,
) -> PyResult<BytesView> {
    let size = args::size("size", size)?;
    let len = usize::try_from(size)
        .map_err(|_| PyValueError::new_err(format!("invalid size '{size}': too large")))?;
    let shot = one_shot(
        dedup_ratio,
        compress_ratio,
        numa_mode,
        max_threads,
        numa_node,
        seed,
    )?;
    let data = py.detach(|| {
        let mut data = vec![0u8; len];
        shot.threads
            .fill(&shot.generator, 0, &mut data)
            .map(|()| data)
    })?;
    Ok(BytesView::new(data))
}

#[pyfunction]
#[pyo3(signature = (
    buffer,
    dedup_ratio = 1.0,
    compress_ratio = 1.0,
    numa_mode = "auto",
    max_threads = None,
    numa_node = None,
    seed = None,
))]
#[allow(clippy::too_many_arguments)]
pub fn generate_into_buffer(
    py: Python<'_>,
    buffer: &Bound<'_, PyAny>,
    dedup_ratio: f64,
    compress_ratio: f64,
    numa_mode: &str,
    max_threads: Option<&Bound<'_, PyAny>>,
    numa_node: Option<&Bound<'_, PyAny>>,
    seed: Option<&Bound<'_, PyAny>>,
) -> PyResult<usize> {
    let buf = WritableBuffer::get(buffer, "generate_into_buffer()")?;
    let shot = one_shot(
        dedup_ratio,
        compress_ratio,
        numa_mode,
        max_threads,
        numa_node,
        seed,
    )?;
    let len = buf.len();
    py.detach(|| buf.with_prefix(len, |out| shot.threads.fill(&shot.generator, 0, out)))?;
    Ok(len)
}

/// Makes `count` bytearrays of `size` bytes each, with unspecified contents.
///
/// As in dgen-py, the bytes are not zeroed: the buffers exist to be filled, and zeroing
/// would write every page twice (`bytearray(size)` does), which is what makes a list
/// comprehension slow for large buffers. Large buffers come from mmap and are zero pages
/// until written; small ones may hold bytes this process freed earlier.
#[pyfunction]
pub fn create_bytearrays<'py>(
    py: Python<'py>,
    count: &Bound<'py, PyAny>,
    size: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let count = args::count("count", Some(count))?.unwrap_or_default();
    let size = args::size("size", size)?;
    let len = ffi::Py_ssize_t::try_from(size)
        .map_err(|_| PyValueError::new_err(format!("invalid size '{size}': too large")))?;
    let list = PyList::empty(py);
    for _ in 0..count {
        // SAFETY: a null source asks CPython for an uninitialized bytearray of `len` bytes;
        // the call returns a new reference or null with an exception set.
        let array = unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyByteArray_FromStringAndSize(ptr::null(), len))?
        };
        list.append(array)?;
    }
    Ok(list)
}
