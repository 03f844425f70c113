//! Access to a caller's writable buffer without copying it.
//!
//! Any object exporting a writable, C-contiguous buffer works: bytearray, memoryview,
//! numpy arrays of any dtype, mmap, array.array. The item format is ignored: fills write
//! bytes. A read-only or non-contiguous buffer is a `TypeError`, as for `file.readinto`.

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

/// A writable, C-contiguous buffer exported by a Python object, held until dropped.
pub struct WritableBuffer {
    buf: PyUntypedBuffer,
}

impl WritableBuffer {
    /// Takes a buffer export from `obj`; `what` names the call in error messages.
    pub fn get(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        let kind = obj.get_type().name()?;
        let buf = PyUntypedBuffer::get(obj).map_err(|e| {
            PyTypeError::new_err(format!(
                "{what} needs a writable buffer (bytearray, memoryview, numpy array, mmap), \
                 not {kind}: {e}"
            ))
        })?;
        if buf.readonly() {
            return Err(PyTypeError::new_err(format!(
                "{what} needs a writable buffer, but this {kind} is read-only"
            )));
        }
        if !buf.is_c_contiguous() {
            return Err(PyTypeError::new_err(format!(
                "{what} needs a C-contiguous buffer, but this {kind} is strided"
            )));
        }
        Ok(WritableBuffer { buf })
    }

    /// Length of the buffer in bytes.
    pub fn len(&self) -> usize {
        self.buf.len_bytes()
    }

    /// Runs `fill` on the first `n` bytes of the buffer; `n` is clamped to its length.
    pub fn with_prefix<T>(&self, n: usize, fill: impl FnOnce(&mut [u8]) -> T) -> T {
        let n = n.min(self.len());
        if n == 0 {
            return fill(&mut []);
        }
        // SAFETY: the export is held by `self.buf` for the whole call, so the memory stays
        // allocated and the exporter cannot resize it (bytearray and mmap refuse to while an
        // export exists). The buffer is C-contiguous and not read-only, so its `len_bytes()`
        // bytes starting at `buf_ptr()` are one writable region, and `n` is within it.
        // Python code racing on the same memory from another thread sees torn bytes but
        // cannot make this write unsound for us: we never read the region back.
        let slice = unsafe { std::slice::from_raw_parts_mut(self.buf.buf_ptr().cast::<u8>(), n) };
        fill(slice)
    }
}
