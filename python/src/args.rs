//! Argument parsing shared by every entry point: sizes, ratios, seeds and NUMA options.
//!
//! Each rejected value becomes a `ValueError` (or a `TypeError` for the wrong kind of
//! object) whose message names the Python parameter, repeats the value and says what is
//! allowed, in the same words as the `mountctl` flags.

use dgenfs::spec::{self, ContentSpec, SpecError};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyString};

/// The NUMA modes dgen-py accepts.
const NUMA_MODES: [&str; 3] = ["auto", "force", "disabled"];

/// Turns a spec error into a `ValueError` that names the Python parameter `param`.
pub fn value_error(param: &str, err: &SpecError) -> PyErr {
    PyValueError::new_err(format!("invalid {param} '{}': {}", err.value, err.allowed))
}

/// Reads a size in bytes: a non-negative int, or a string such as "10T", "1.5G" or "4GB".
pub fn size(param: &'static str, value: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(text) = value.cast::<PyString>() {
        let text = text.to_str()?;
        return spec::parse_size(param, text).map_err(|e| value_error(param, &e));
    }
    if value.is_instance_of::<PyInt>() {
        return value.extract::<u64>().map_err(|_| {
            PyValueError::new_err(format!(
                "invalid {param} '{value}': expected a byte count from 0 to 2**64-1 \
                 or a size string such as '512KiB', '1.5G' or '4GB'"
            ))
        });
    }
    Err(PyTypeError::new_err(format!(
        "{param} must be an int or a size string such as '10T', not {}",
        value.get_type().name()?
    )))
}

/// Reads a non-negative integer option such as a thread count or a NUMA node.
pub fn count(param: &'static str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    let Some(value) = value else { return Ok(None) };
    if !value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{param} must be an int or None, not {}",
            value.get_type().name()?
        )));
    }
    value.extract::<usize>().map(Some).map_err(|_| {
        PyValueError::new_err(format!("invalid {param} '{value}': expected an int >= 0"))
    })
}

/// Reads a seed: an int from 0 to 2**64-1, or None for a fresh random seed.
pub fn seed(value: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    let Some(value) = value else {
        return Ok(spec::random_seed());
    };
    if !value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "seed must be an int or None, not {}",
            value.get_type().name()?
        )));
    }
    value.extract::<u64>().map_err(|_| {
        PyValueError::new_err(format!(
            "invalid seed '{value}': expected an int from 0 to 18446744073709551615"
        ))
    })
}

/// Checks `numa_mode`; [`Threads::placed`](crate::threads::Threads::placed) applies it.
pub fn numa_mode(value: &str) -> PyResult<()> {
    if NUMA_MODES.contains(&value) {
        Ok(())
    } else {
        Err(PyValueError::new_err(format!(
            "invalid numa_mode '{value}': expected 'auto', 'force' or 'disabled'"
        )))
    }
}

/// Builds and validates a content spec from the dgen-py style ratio parameters.
pub fn content_spec(
    seed: u64,
    dedup: f64,
    compress: f64,
    unit: Option<u64>,
) -> PyResult<ContentSpec> {
    let spec = ContentSpec {
        seed,
        compress,
        dedup,
        dedup_unit: unit.unwrap_or(spec::DEFAULT_DEDUP_UNIT),
    };
    spec.validate().map_err(|e| {
        let param = match e.field {
            "compress" => "compress_ratio",
            "dedup" => "dedup_ratio",
            // dgen-py's block_size is the granularity of its duplicates: our dedup unit.
            "dedup-unit" => "block_size",
            other => other,
        };
        value_error(param, &e)
    })?;
    Ok(spec)
}
