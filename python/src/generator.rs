//! `dgen_py.Generator`: the dgen-py 0.3.0 streaming generator over a dgenfs stream.
//!
//! Two counters: `position` counts the bytes handed out toward `size` (what `position()`,
//! `is_complete()` and `fill_chunk`'s return value are about), and `stream_base` is the
//! position at which the current seed's stream started. The next byte is byte
//! `position - stream_base` of the stream, so `set_seed` rewinds to the start of the new
//! seed's stream as dgen-py documents, while without `set_seed` the byte at position `p`
//! is byte `p` of `mountctl generate` for the same spec.

use std::sync::Arc;

use dgenfs::{ContentSpec, Generator};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::args;
use crate::buffer::WritableBuffer;
use crate::threads::Threads;
use crate::view::BytesView;

/// Default `chunk_size`, as in dgen-py: 32 MiB.
const DEFAULT_CHUNK: usize = 32 << 20;

/// The streaming generator.
#[pyclass(module = "dgen_py", name = "Generator")]
pub struct PyGenerator {
    generator: Arc<Generator>,
    threads: Threads,
    size: u64,
    position: u64,
    stream_base: u64,
    chunk_size: usize,
    numa_mode: String,
    numa_node: Option<usize>,
}

/// One fill, taken under the object's lock and run without the GIL.
struct Job {
    generator: Arc<Generator>,
    threads: Threads,
    offset: u64,
    len: usize,
}

impl Job {
    fn run(&self, out: &mut [u8]) -> PyResult<()> {
        self.threads
            .fill(&self.generator, self.offset, &mut out[..self.len])
    }
}

impl PyGenerator {
    /// Reserves the next `want` bytes (fewer at the end) and advances the position.
    fn take(&mut self, want: usize) -> Job {
        let left = self.size.saturating_sub(self.position);
        let len = (want as u64).min(left) as usize;
        let job = Job {
            generator: self.generator.clone(),
            threads: self.threads.clone(),
            offset: self.position - self.stream_base,
            len,
        };
        self.position += len as u64;
        job
    }

    fn rebuild(&mut self, spec: &ContentSpec) -> PyResult<()> {
        let generator = Generator::new(spec).map_err(|e| args::value_error(e.field, &e))?;
        self.generator = Arc::new(generator);
        Ok(())
    }
}

#[pymethods]
impl PyGenerator {
    #[new]
    #[pyo3(signature = (
        size,
        dedup_ratio = 1.0,
        compress_ratio = 1.0,
        numa_mode = "auto",
        max_threads = None,
        numa_node = None,
        chunk_size = None,
        block_size = None,
        seed = None,
        method = "parallel",
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        size: &Bound<'_, PyAny>,
        dedup_ratio: f64,
        compress_ratio: f64,
        numa_mode: &str,
        max_threads: Option<&Bound<'_, PyAny>>,
        numa_node: Option<&Bound<'_, PyAny>>,
        chunk_size: Option<&Bound<'_, PyAny>>,
        block_size: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        method: &str,
    ) -> PyResult<Self> {
        let size = args::size("size", size)?;
        args::numa_mode(numa_mode)?;
        let numa_node = args::count("numa_node", numa_node)?;
        let unit = block_size
            .map(|b| args::size("block_size", b))
            .transpose()?;
        let spec = args::content_spec(args::seed(seed)?, dedup_ratio, compress_ratio, unit)?;
        let chunk_size = match args::count("chunk_size", chunk_size)? {
            None | Some(0) => DEFAULT_CHUNK,
            Some(n) => n,
        };
        let threads = match method {
            "parallel" => Threads::placed(
                numa_mode,
                numa_node,
                args::count("max_threads", max_threads)?,
            )?,
            "sequential" => Threads::placed(numa_mode, numa_node, Some(1))?,
            other => {
                return Err(PyValueError::new_err(format!(
                    "invalid method '{other}': expected 'parallel' or 'sequential'"
                )))
            }
        };
        Ok(PyGenerator {
            generator: Arc::new(Generator::new(&spec).map_err(|e| args::value_error(e.field, &e))?),
            threads,
            size,
            position: 0,
            stream_base: 0,
            chunk_size,
            numa_mode: numa_mode.to_string(),
            numa_node,
        })
    }

    #[getter]
    fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    #[getter]
    fn seed(&self) -> u64 {
        self.generator.spec().seed
    }

    #[getter]
    fn compress_ratio(&self) -> f64 {
        self.generator.spec().compress
    }

    #[getter]
    fn dedup_ratio(&self) -> f64 {
        self.generator.spec().dedup
    }

    #[getter]
    fn block_size(&self) -> u64 {
        self.generator.spec().dedup_unit
    }

    #[getter]
    fn numa_mode(&self) -> &str {
        &self.numa_mode
    }

    #[getter]
    fn numa_node(&self) -> Option<usize> {
        self.numa_node
    }

    fn fill_chunk(slf: &Bound<'_, Self>, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let buf = WritableBuffer::get(buffer, "fill_chunk()")?;
        let job = slf.borrow_mut().take(buf.len());
        slf.py()
            .detach(|| buf.with_prefix(job.len, |out| job.run(out)))?;
        Ok(job.len)
    }

    #[pyo3(signature = (chunk_size))]
    fn get_chunk(
        slf: &Bound<'_, Self>,
        chunk_size: &Bound<'_, PyAny>,
    ) -> PyResult<Option<BytesView>> {
        let want = args::count("chunk_size", Some(chunk_size))?.unwrap_or_default();
        let job = {
            let mut me = slf.borrow_mut();
            if me.position >= me.size {
                return Ok(None);
            }
            me.take(want)
        };
        let data = slf.py().detach(|| {
            let mut data = vec![0u8; job.len];
            job.run(&mut data).map(|()| data)
        })?;
        Ok(Some(BytesView::new(data)))
    }

    fn read_at(
        slf: &Bound<'_, Self>,
        buffer: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let offset = args::size("offset", offset)?;
        let buf = WritableBuffer::get(buffer, "read_at()")?;
        let job = {
            let me = slf.borrow();
            let left = me.size.saturating_sub(offset);
            Job {
                generator: me.generator.clone(),
                threads: me.threads.clone(),
                offset,
                len: (buf.len() as u64).min(left) as usize,
            }
        };
        slf.py()
            .detach(|| buf.with_prefix(job.len, |out| job.run(out)))?;
        Ok(job.len)
    }

    fn seek(&mut self, offset: &Bound<'_, PyAny>) -> PyResult<()> {
        let offset = args::size("offset", offset)?;
        if offset > self.size {
            return Err(PyValueError::new_err(format!(
                "invalid offset '{offset}': expected 0 to size ({})",
                self.size
            )));
        }
        self.position = offset;
        self.stream_base = 0;
        Ok(())
    }

    fn reset(&mut self) {
        self.position = 0;
        self.stream_base = 0;
    }

    #[pyo3(signature = (seed))]
    fn set_seed(&mut self, seed: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let spec = ContentSpec {
            seed: args::seed(seed)?,
            ..*self.generator.spec()
        };
        self.rebuild(&spec)?;
        self.stream_base = self.position;
        Ok(())
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn total_size(&self) -> u64 {
        self.size
    }

    fn is_complete(&self) -> bool {
        self.position >= self.size
    }

    fn __repr__(&self) -> String {
        let spec = self.generator.spec();
        format!(
            "dgen_py.Generator(size={}, dedup_ratio={}, compress_ratio={}, block_size={}, \
             seed={}, position={})",
            self.size, spec.dedup, spec.compress, spec.dedup_unit, spec.seed, self.position
        )
    }
}
