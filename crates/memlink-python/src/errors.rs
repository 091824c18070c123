//! memlink's errors as the exception classes of `memlink/_errors.py`.

use std::time::Duration;

use memlink::ErrorKind;
use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

/// The exception class for each kind; the classes live in Python because
/// they have two bases (`NotFound(Error, FileNotFoundError)`), which
/// PyO3's `create_exception!` cannot express.
fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "NotFound",
        ErrorKind::AlreadyExists => "AlreadyExists",
        ErrorKind::InvalidName => "InvalidName",
        ErrorKind::InvalidArgument => "InvalidArgument",
        ErrorKind::PermissionDenied => "PermissionDenied",
        ErrorKind::OutOfMemory => "OutOfMemory",
        ErrorKind::ReadOnly => "ReadOnly",
        ErrorKind::WrongKind => "WrongKind",
        ErrorKind::Unsupported => "Unsupported",
        ErrorKind::Timeout => "Timeout",
        ErrorKind::InUse => "InUse",
        ErrorKind::WouldDeadlock => "WouldDeadlock",
        ErrorKind::Incompatible => "Incompatible",
        ErrorKind::LimitReached => "LimitReached",
        // `ErrorKind` is non-exhaustive: a kind added later is still an
        // `Error`, of the OS class until this list names it.
        _ => "OsError",
    }
}

static ERRORS_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// The Python exception for `err`: its class by kind, its message, and
/// the attributes `kind`, `operation`, `object_kind`, `object_name` (plus
/// `errno` and `filename` for the `OSError` subclasses).
pub fn to_py(err: memlink::Error) -> PyErr {
    Python::attach(|py| match build(py, &err) {
        Ok(exc) => exc,
        // Only if `memlink._errors` cannot be imported: still say what failed.
        Err(import_failure) => {
            let exc = PyValueError::new_err(err.to_string());
            exc.set_cause(py, Some(import_failure));
            exc
        }
    })
}

fn build(py: Python<'_>, err: &memlink::Error) -> PyResult<PyErr> {
    let module = ERRORS_MODULE
        .get_or_try_init(py, || py.import("memlink._errors").map(Bound::unbind))?
        .bind(py);
    let class = module.getattr(class_name(err.kind()))?;
    let exc = class.call1((err.to_string(),))?;
    exc.setattr("kind", format!("{:?}", err.kind()))?;
    exc.setattr("operation", err.operation().to_string())?;
    exc.setattr(
        "object_kind",
        err.object_kind().map(memlink::ObjectKind::as_str),
    )?;
    exc.setattr("object_name", err.name())?;
    if exc.is_instance_of::<pyo3::exceptions::PyOSError>() {
        match err.os_error().and_then(std::io::Error::raw_os_error) {
            Some(code) => exc.setattr("errno", code)?,
            // As the built-in subclasses would have it (`FileNotFoundError`
            // has ENOENT...), for errors memlink found without the OS.
            None => {
                let code = match err.kind() {
                    ErrorKind::NotFound => "ENOENT",
                    ErrorKind::AlreadyExists => "EEXIST",
                    ErrorKind::PermissionDenied | ErrorKind::ReadOnly => "EACCES",
                    ErrorKind::Timeout => "ETIMEDOUT",
                    ErrorKind::InUse => "EBUSY",
                    _ => "",
                };
                if !code.is_empty() {
                    exc.setattr("errno", py.import("errno")?.getattr(code)?)?;
                }
            }
        }
        if !err.name().is_empty() {
            exc.setattr("filename", err.name())?;
        }
    }
    Ok(PyErr::from_value(exc))
}

/// A `memlink.Timeout` for a wait that the bindings themselves gave up
/// (memlink reports the others).
pub fn timeout_error(
    py: Python<'_>,
    operation: &str,
    object_kind: &str,
    name: &str,
    why: &str,
) -> PyErr {
    let make = || -> PyResult<PyErr> {
        let module = ERRORS_MODULE
            .get_or_try_init(py, || py.import("memlink._errors").map(Bound::unbind))?
            .bind(py);
        let exc = module.getattr("Timeout")?.call1((format!(
            "cannot {operation} {object_kind} \"{name}\": timed out: {why}"
        ),))?;
        exc.setattr("kind", "Timeout")?;
        exc.setattr("operation", operation)?;
        exc.setattr("object_kind", object_kind)?;
        exc.setattr("object_name", name)?;
        Ok(PyErr::from_value(exc))
    };
    make().unwrap_or_else(|e| e)
}

/// Converts memlink's result into PyO3's.
pub trait IntoPyResult<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for memlink::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// `BufferError` for closing something whose memory Python still uses.
pub fn exported(what: &str, count: usize) -> PyErr {
    PyBufferError::new_err(format!(
        "cannot close {what}: {count} exported buffer(s) (memoryview, numpy array...) still use its memory; release them first"
    ))
}

/// A `timeout` argument in seconds: `None` waits as long as it takes.
pub fn timeout_arg(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) => Duration::try_from_secs_f64(t).map(Some).map_err(|_| {
            PyValueError::new_err(format!(
                "timeout must be a non-negative number of seconds or None, not {t}"
            ))
        }),
    }
}
