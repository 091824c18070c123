//! `memlink.Region` and `memlink.View`: named shared memory, mapped views
//! exported through the buffer protocol.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

use memlink::{Access, Disposition, Lifetime, RegionOptions};
use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::errors::{exported, IntoPyResult};

/// A named shared-memory region: a handle to it.
///
/// The name exists while some process holds a handle (unless the region
/// was created with ``persistent=True``) and goes away with the last one,
/// even when the holders crash or are killed: nothing is left behind in
/// ``/dev/shm``.  The bytes are the plain OS object with no header, so
/// ``multiprocessing.shared_memory.SharedMemory(name)`` and C programs
/// using ``shm_open`` see the same memory.
///
/// Map views of it with :meth:`map`; a view keeps its memory mapped even
/// after the region is closed.  Use it as a context manager to close it::
///
///     with memlink.Region.create("frames", 1 << 20) as region:
///         view = region.map()
///         memoryview(view)[:5] = b"hello"
#[pyclass(module = "memlink", name = "Region")]
pub struct PyRegion {
    region: Option<memlink::Region>,
    name: String,
    readonly: bool,
    created: bool,
}

impl PyRegion {
    fn region(&self) -> PyResult<&memlink::Region> {
        self.region
            .as_ref()
            .ok_or_else(|| PyValueError::new_err(format!("region \"{}\" is closed", self.name)))
    }
}

fn region_options(persistent: bool, mode: u32, reserve: bool) -> RegionOptions {
    let lifetime = if persistent {
        Lifetime::Persistent
    } else {
        Lifetime::LastHandle
    };
    RegionOptions::new()
        .lifetime(lifetime)
        .mode(mode)
        .reserve(reserve)
}

#[pymethods]
impl PyRegion {
    /// Creates a region of ``size`` bytes, zero-filled.
    ///
    /// Raises :class:`AlreadyExists` if the name is taken,
    /// :class:`InvalidArgument` for a size of 0, :class:`InvalidName` for
    /// a bad name.  ``persistent=True`` keeps it until
    /// :func:`memlink.remove` (POSIX rules; not on Windows); ``mode`` is
    /// who may open it (Unix permission bits); ``reserve=False`` does not
    /// reserve the memory up front.
    #[classmethod]
    #[pyo3(signature = (name, size, *, persistent = false, mode = 0o600, reserve = true))]
    fn create(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        name: &str,
        size: u64,
        persistent: bool,
        mode: u32,
        reserve: bool,
    ) -> PyResult<PyRegion> {
        let options = region_options(persistent, mode, reserve);
        let region = py.detach(|| options.create(name, size)).py_err()?;
        Ok(PyRegion {
            region: Some(region),
            name: name.to_owned(),
            readonly: false,
            created: true,
        })
    }

    /// Opens an existing region; read-only with ``readonly=True``.
    ///
    /// Raises :class:`NotFound` if there is no region of that name.
    #[classmethod]
    #[pyo3(signature = (name, *, readonly = false))]
    fn open(_cls: &Bound<'_, PyType>, name: &str, readonly: bool) -> PyResult<PyRegion> {
        let access = if readonly {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        };
        let region = memlink::Region::open(name, access).py_err()?;
        Ok(PyRegion {
            region: Some(region),
            name: name.to_owned(),
            readonly,
            created: false,
        })
    }

    /// Creates the region, or opens it read-write if it exists (its size is
    /// then the existing one).  :attr:`created` says which happened.
    #[classmethod]
    #[pyo3(signature = (name, size, *, persistent = false, mode = 0o600, reserve = true))]
    fn create_or_open(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        name: &str,
        size: u64,
        persistent: bool,
        mode: u32,
        reserve: bool,
    ) -> PyResult<PyRegion> {
        let options = region_options(persistent, mode, reserve);
        let (region, disposition) = py.detach(|| options.create_or_open(name, size)).py_err()?;
        Ok(PyRegion {
            region: Some(region),
            name: name.to_owned(),
            readonly: false,
            created: disposition == Disposition::Created,
        })
    }

    /// The name the region was created or opened with.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The size in bytes, as the OS reports it.
    #[getter]
    fn size(&self) -> PyResult<u64> {
        Ok(self.region()?.size())
    }

    /// Whether this handle was opened read-only.
    #[getter]
    fn readonly(&self) -> bool {
        self.readonly
    }

    /// Whether this handle created the region (rather than opening it).
    #[getter]
    fn created(&self) -> bool {
        self.created
    }

    /// Whether :meth:`close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.region.is_none()
    }

    /// Maps a view of ``length`` bytes at ``offset`` (the rest of the
    /// region when ``length`` is None).
    ///
    /// The view is writable when the handle is, unless ``writable=False``;
    /// ``writable=True`` on a read-only handle raises :class:`ReadOnly`.
    /// Offsets need no alignment.  The view supports the buffer protocol:
    /// ``memoryview(view)``, ``bytes(view)`` and
    /// ``numpy.frombuffer(view, dtype=...)`` use the shared memory itself.
    #[pyo3(signature = (offset = 0, length = None, *, writable = None))]
    fn map(&self, offset: u64, length: Option<u64>, writable: Option<bool>) -> PyResult<PyView> {
        let region = self.region()?;
        let end = match length {
            Some(length) => offset.checked_add(length).ok_or_else(|| {
                PyValueError::new_err(format!("offset {offset} + length {length} overflows"))
            })?,
            None => region.size(),
        };
        let mapped = if writable.unwrap_or(!self.readonly) {
            Mapped::Writable(region.map_mut(offset..end).py_err()?)
        } else {
            Mapped::ReadOnly(region.map(offset..end).py_err()?)
        };
        Ok(PyView {
            region: self.name.clone(),
            offset,
            len: mapped.len(),
            readonly: matches!(mapped, Mapped::ReadOnly(_)),
            mapped: Some(mapped),
            exports: AtomicUsize::new(0),
        })
    }

    /// Closes this handle.  Views already mapped stay valid.  The last
    /// handle anywhere removes the name (unless the region is persistent).
    /// Closing twice does nothing.
    fn close(&mut self) {
        self.region = None;
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.close();
    }

    fn __repr__(&self) -> String {
        match &self.region {
            Some(region) => format!(
                "<memlink.Region {:?} size={} {}>",
                self.name,
                region.size(),
                if self.readonly {
                    "read-only"
                } else {
                    "read-write"
                }
            ),
            None => format!("<memlink.Region {:?} closed>", self.name),
        }
    }
}

enum Mapped {
    ReadOnly(memlink::View),
    Writable(memlink::ViewMut),
}

impl Mapped {
    fn len(&self) -> usize {
        match self {
            Mapped::ReadOnly(v) => v.len(),
            Mapped::Writable(v) => v.len(),
        }
    }

    fn ptr(&self) -> *mut u8 {
        match self {
            Mapped::ReadOnly(v) => v.as_ptr().cast_mut(),
            Mapped::Writable(v) => v.as_ptr().cast_mut(),
        }
    }
}

/// A mapped view of a region, exported through the buffer protocol.
///
/// ``memoryview(view)``, ``bytes(view)``, ``numpy.frombuffer(view,
/// dtype=...)`` and ``numpy.ndarray(shape, dtype, buffer=view)`` read and
/// write the shared memory itself, with no copy.  A read-only view exports
/// read-only buffers and refuses writable ones.  The bytes are shared with
/// every process that maps the region and may change at any time: guard
/// them with a :class:`Mutex` or another sync object.
///
/// :meth:`close` unmaps the view; it raises ``BufferError`` while buffers
/// exported from it still exist (release the memoryviews, delete the numpy
/// arrays first), so no pointer into unmapped memory can remain.
#[pyclass(module = "memlink", name = "View")]
pub struct PyView {
    mapped: Option<Mapped>,
    region: String,
    offset: u64,
    len: usize,
    readonly: bool,
    /// Buffers handed out and not yet released. Every change happens with
    /// the object borrowed through PyO3 (under the GIL or the object's
    /// critical section), so Relaxed suffices; the atomic is for `Sync`.
    exports: AtomicUsize,
}

#[pymethods]
impl PyView {
    /// The name of the region this view maps.
    #[getter]
    fn region(&self) -> &str {
        &self.region
    }

    /// Where the view starts in the region.
    #[getter]
    fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether the view is read-only.
    #[getter]
    fn readonly(&self) -> bool {
        self.readonly
    }

    /// Whether :meth:`close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.mapped.is_none()
    }

    /// How many exported buffers still use the view.
    #[getter]
    fn exports(&self) -> usize {
        self.exports.load(Ordering::Relaxed)
    }

    fn __len__(&self) -> usize {
        self.len
    }

    /// Unmaps the view.  Raises ``BufferError`` while buffers exported
    /// from it (memoryviews, numpy arrays) exist.  Closing twice does
    /// nothing.
    fn close(&mut self) -> PyResult<()> {
        match self.exports.load(Ordering::Relaxed) {
            0 => {
                self.mapped = None;
                Ok(())
            }
            n => Err(exported(&format!("the view of \"{}\"", self.region), n)),
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.close()
    }

    fn __repr__(&self) -> String {
        format!(
            "<memlink.View of {:?} offset={} len={} {}{}>",
            self.region,
            self.offset,
            self.len,
            if self.readonly {
                "read-only"
            } else {
                "writable"
            },
            if self.mapped.is_none() { " closed" } else { "" }
        )
    }

    /// Exports the mapped bytes: a one-dimensional buffer of unsigned bytes.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.borrow();
        let Some(mapped) = &this.mapped else {
            return Err(PyValueError::new_err(format!(
                "the view of \"{}\" is closed",
                this.region
            )));
        };
        // SAFETY: `view` is the buffer struct CPython passes to fill; the
        // pointer is `len` mapped bytes, which stay mapped while the export
        // count is non-zero (`close` refuses then) and the exporter lives
        // (the buffer holds a reference to `slf`, taken by FillInfo).
        // FillInfo refuses PyBUF_WRITABLE when `readonly` is 1.
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                mapped.ptr().cast::<c_void>(),
                this.len as ffi::Py_ssize_t,
                c_int::from(this.readonly),
                flags,
            )
        };
        if rc != 0 {
            return Err(PyErr::take(slf.py())
                .unwrap_or_else(|| PyBufferError::new_err("cannot export the view")));
        }
        this.exports.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.exports.fetch_sub(1, Ordering::Relaxed);
    }
}
