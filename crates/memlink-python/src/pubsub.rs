//! `memlink.Publisher`, `memlink.Subscriber`, `memlink.Sample`: byte
//! messages over memlink's publish/subscribe services.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex as StdMutex, MutexGuard as StdGuard};
use std::time::Duration;

use memlink::pubsub::{Overflow, Publisher, Sample, SampleMut, ServiceOptions, Subscriber};
use memlink::ErrorKind;
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::errors::{exported, timeout_arg, timeout_error, IntoPyResult};
use crate::wait::{sliced, Failure};

/// Service settings from keyword arguments; `None` takes the service's (or
/// the default, for a new service).
#[allow(clippy::too_many_arguments)]
fn service_options(
    max_publishers: Option<u32>,
    max_subscribers: Option<u32>,
    capacity: Option<u32>,
    history: Option<u32>,
    max_loans: Option<u32>,
    max_borrowed: Option<u32>,
    overflow: Option<&str>,
    max_size: Option<u64>,
    mode: u32,
) -> PyResult<ServiceOptions> {
    let mut options = ServiceOptions::new().mode(mode);
    if let Some(n) = max_publishers {
        options = options.max_publishers(n);
    }
    if let Some(n) = max_subscribers {
        options = options.max_subscribers(n);
    }
    if let Some(n) = capacity {
        options = options.capacity(n);
    }
    if let Some(n) = history {
        options = options.history(n);
    }
    if let Some(n) = max_loans {
        options = options.max_loans(n);
    }
    if let Some(n) = max_borrowed {
        options = options.max_borrowed(n);
    }
    if let Some(n) = max_size {
        options = options.max_slice_len(n);
    }
    match overflow {
        None => {}
        Some("overwrite") => options = options.overflow(Overflow::Overwrite),
        Some("block") => options = options.overflow(Overflow::Block),
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "overflow must be \"overwrite\" or \"block\", not {other:?}"
            )))
        }
    }
    Ok(options)
}

fn lock<T>(m: &StdMutex<T>) -> StdGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn closed(kind: &str, name: &str) -> PyErr {
    PyValueError::new_err(format!("{kind} of \"{name}\" is closed"))
}

/// A publisher of byte messages on a named service.
///
/// Joins the service ``name`` (making it, for byte messages, if it does
/// not exist; the keyword settings apply to a new service and must match
/// an existing one's when given).  :meth:`send` copies a message into a
/// slot of shared memory and publishes it; subscribers read it in place.
/// ``overflow="block"`` makes a send wait for the slowest subscriber
/// instead of overwriting what it has not read.
#[pyclass(module = "memlink", name = "Publisher", frozen)]
pub struct PyPublisher {
    // Boxed so that loans' borrows of it stay valid; `Publisher` is `Send`
    // but not `Sync`: every use, including a loan's send or drop, goes
    // through this lock.
    inner: StdMutex<Option<Box<Publisher<[u8]>>>>,
    /// Loans alive; changed with `inner` locked, read by `close` with it.
    loans: AtomicUsize,
    name: String,
}

impl PyPublisher {
    fn with<T>(&self, f: impl FnOnce(&Publisher<[u8]>) -> PyResult<T>) -> PyResult<T> {
        let inner = lock(&self.inner);
        f(inner
            .as_deref()
            .ok_or_else(|| closed("publisher", &self.name))?)
    }
}

/// Copies `len` bytes from `src` into a loaned sample and sends it,
/// waiting at most `slice` for room; `Ok(false)` if there was none in
/// time.
///
/// # Safety
///
/// `src` must be `len` readable bytes for the duration of the call.
unsafe fn send_bytes(
    publisher: &Publisher<[u8]>,
    src: *const u8,
    len: usize,
    slice: Duration,
) -> memlink::Result<bool> {
    let mut sample = publisher.loan_slice_uninit(len)?;
    // SAFETY: the caller vouches for `src`; the loaned slot is `len`
    // writable bytes that nobody else uses until it is sent, and it cannot
    // overlap a Python buffer (it is in this service's mapping, which only
    // memlink hands out, read-only, to subscribers).
    unsafe { std::ptr::copy_nonoverlapping(src, sample.as_mut_ptr(), len) };
    match sample.send_timeout(slice) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::Timeout => Ok(false),
        Err(e) => Err(e),
    }
}

#[pymethods]
impl PyPublisher {
    #[new]
    #[pyo3(signature = (
        name, *, max_publishers = None, max_subscribers = None, capacity = None,
        history = None, max_loans = None, max_borrowed = None, overflow = None,
        max_size = None, mode = 0o600,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: &str,
        max_publishers: Option<u32>,
        max_subscribers: Option<u32>,
        capacity: Option<u32>,
        history: Option<u32>,
        max_loans: Option<u32>,
        max_borrowed: Option<u32>,
        overflow: Option<&str>,
        max_size: Option<u64>,
        mode: u32,
    ) -> PyResult<PyPublisher> {
        let options = service_options(
            max_publishers,
            max_subscribers,
            capacity,
            history,
            max_loans,
            max_borrowed,
            overflow,
            max_size,
            mode,
        )?;
        let publisher = py.detach(|| options.publisher::<[u8]>(name)).py_err()?;
        Ok(PyPublisher {
            inner: StdMutex::new(Some(Box::new(publisher))),
            loans: AtomicUsize::new(0),
            name: name.to_owned(),
        })
    }

    /// The service's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The largest message, in bytes.
    #[getter]
    fn max_size(&self) -> PyResult<u64> {
        self.with(|p| Ok(p.max_payload()))
    }

    /// How many subscribers are connected now.
    #[getter]
    fn subscriber_count(&self) -> PyResult<usize> {
        self.with(|p| p.subscriber_count().py_err())
    }

    /// Publishes ``data`` (``bytes`` or any C-contiguous buffer: a
    /// ``bytearray``, ``memoryview``, numpy array...) as one message.
    ///
    /// With ``overflow="block"`` this waits for room at most ``timeout``
    /// seconds (as long as it takes when None), then raises
    /// :class:`Timeout` and the message is not sent.  Raises
    /// :class:`InvalidArgument` for a message larger than
    /// :attr:`max_size`.
    #[pyo3(signature = (data, timeout = None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        let timeout = timeout_arg(timeout)?;
        // Keeps the buffer exported (so its memory stays put) until the
        // copy is done.
        let buffer;
        let (src, len) = if let Ok(bytes) = data.cast::<PyBytes>() {
            let b = bytes.as_bytes();
            (b.as_ptr() as usize, b.len())
        } else {
            buffer = PyUntypedBuffer::get(data)?;
            if !buffer.is_c_contiguous() {
                return Err(PyBufferError::new_err(
                    "send needs a C-contiguous buffer (numpy.ascontiguousarray makes one)",
                ));
            }
            (buffer.buf_ptr() as usize, buffer.len_bytes())
        };
        let sent = sliced(py, timeout, |slice| {
            self.with(|p| {
                // SAFETY: `src` is `len` bytes of a `bytes` object or an
                // exported buffer, both held (by `data` / `buffer`) until
                // this call returns. Another thread may write a mutable
                // buffer meanwhile; the copy then sees some mix of bytes,
                // as any copy of shared data does.
                Ok(unsafe { send_bytes(p, src as *const u8, len, slice) })
            })?
            .map(|sent| sent.then_some(()))
            .map_err(Failure::from)
        })?;
        match sent {
            Some(()) => Ok(()),
            None => Err(timeout_error(
                py,
                "send on",
                "service",
                &self.name,
                "the slowest subscriber left no room",
            )),
        }
    }

    /// Loans a slot of ``size`` bytes (zeroed unless ``zero=False``) to
    /// write a message in place: a writable buffer (``numpy.frombuffer(loan,
    /// dtype=...)`` writes shared memory directly), then
    /// :meth:`Loan.send`.  A publisher has at most ``max_loans`` loans at
    /// once (:class:`LimitReached` past that).
    #[pyo3(signature = (size, *, zero = true))]
    fn loan(slf: &Bound<'_, Self>, size: usize, zero: bool) -> PyResult<PyLoan> {
        let this = slf.get();
        let inner = lock(&this.inner);
        let publisher = inner
            .as_deref()
            .ok_or_else(|| closed("publisher", &this.name))?;
        let loan = if zero {
            publisher.loan_slice(size)
        } else {
            publisher.loan_slice_uninit(size)
        }
        .py_err()?;
        this.loans.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the loan borrows the boxed publisher, which stays where it
        // is until `close` drops it, and `close` refuses while `loans`
        // counts this one; the `PyLoan` keeps this object (so the box)
        // alive and sends or drops the loan under `inner`.
        let mut loan = Loan(unsafe {
            std::mem::transmute::<SampleMut<'_, [u8]>, SampleMut<'static, [u8]>>(loan)
        });
        Ok(PyLoan {
            ptr: loan.0.as_mut_ptr(),
            len: loan.0.len(),
            loan: Some(loan),
            publisher: slf.clone().unbind(),
            exports: AtomicUsize::new(0),
        })
    }

    /// Leaves the service.  Sent messages stay readable while the service
    /// lives.  Raises ``BufferError`` while loans are out.  Closing twice
    /// does nothing.
    fn close(&self) -> PyResult<()> {
        let mut inner = lock(&self.inner);
        match self.loans.load(Ordering::Relaxed) {
            0 => {
                inner.take();
                Ok(())
            }
            n => Err(PyBufferError::new_err(format!(
                "cannot close the publisher of \"{}\": {n} loan(s) still out; send or discard them first",
                self.name
            ))),
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.close()
    }

    fn __repr__(&self) -> String {
        format!("<memlink.Publisher {:?}>", self.name)
    }
}

/// A loaned slot, written in place and then sent.
struct Loan(SampleMut<'static, [u8]>);

impl Loan {
    fn into_sample(self) -> SampleMut<'static, [u8]> {
        self.0
    }
}

// SAFETY: a `Loan` is made, sent and dropped only with its publisher's lock
// held (see `PyPublisher::inner`), so the publisher's unsynchronised state
// it touches is never used by two threads at once; the slot it points at
// is this loan's alone until it is sent.
unsafe impl Send for Loan {}
// SAFETY: shared references to it are never used (only its pointer, taken
// at creation); see `Send`.
unsafe impl Sync for Loan {}

/// A slot of shared memory loaned by :meth:`Publisher.loan`: a writable
/// buffer to fill in place, then :meth:`send` (no copy).  Leaving a
/// ``with`` block without sending, :meth:`discard` or dropping it gives
/// the slot back.  :meth:`send` and :meth:`discard` raise ``BufferError``
/// while buffers exported from it exist (the slot must not change once
/// subscribers read it).
#[pyclass(module = "memlink", name = "Loan")]
pub struct PyLoan {
    loan: Option<Loan>,
    publisher: Py<PyPublisher>,
    ptr: *mut u8,
    len: usize,
    /// Buffers exported and not yet released; changed only with the
    /// object borrowed through PyO3, so Relaxed suffices.
    exports: AtomicUsize,
}

// SAFETY: `ptr` is the loan's slot, this object's alone while `loan` is
// held (see `Loan`); writing it from any thread is the caller's business,
// as with any writable buffer.
unsafe impl Send for PyLoan {}
// SAFETY: as for `Send`.
unsafe impl Sync for PyLoan {}

impl PyLoan {
    fn check_unexported(&self, what: &str) -> PyResult<()> {
        match self.exports.load(Ordering::Relaxed) {
            0 => Ok(()),
            n => Err(PyBufferError::new_err(format!(
                "cannot {what} the loan: {n} exported buffer(s) (memoryview, numpy array...) still use it; release them first"
            ))),
        }
    }

    fn drop_loan(&mut self) {
        if let Some(loan) = self.loan.take() {
            let publisher = self.publisher.get();
            let _inner = lock(&publisher.inner);
            drop(loan);
            publisher.loans.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for PyLoan {
    fn drop(&mut self) {
        self.drop_loan();
    }
}

#[pymethods]
impl PyLoan {
    fn __len__(&self) -> usize {
        self.len
    }

    /// Whether it was sent or discarded.
    #[getter]
    fn done(&self) -> bool {
        self.loan.is_none()
    }

    /// Publishes the slot as it is, without copying it.  With
    /// ``overflow="block"`` this waits for room at most ``timeout`` seconds
    /// (as long as it takes when None; this wait does not wake for
    /// Ctrl-C), then raises :class:`Timeout` and the message is dropped.
    #[pyo3(signature = (timeout = None))]
    fn send(&mut self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let timeout = timeout_arg(timeout)?;
        self.check_unexported("send")?;
        let Some(loan) = self.loan.take() else {
            return Err(PyValueError::new_err(
                "the loan was sent or discarded already",
            ));
        };
        let publisher = self.publisher.get();
        let sent = py.detach(move || {
            // A method call moves the whole `Loan` in (it is `Send`; its
            // field is not, and a pattern would capture just the field).
            let sample = loan.into_sample();
            let _inner = lock(&publisher.inner);
            let sent = match timeout {
                None => sample.send(),
                Some(t) => sample.send_timeout(t),
            };
            publisher.loans.fetch_sub(1, Ordering::Relaxed);
            sent
        });
        sent.py_err()
    }

    /// Gives the slot back unsent.  Doing it twice does nothing.
    fn discard(&mut self, py: Python<'_>) -> PyResult<()> {
        self.check_unexported("discard")?;
        py.detach(|| self.drop_loan());
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.discard(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "<memlink.Loan len={}{}>",
            self.len,
            if self.loan.is_none() { " done" } else { "" }
        )
    }

    /// Exports the slot: a writable one-dimensional buffer of bytes.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.borrow();
        if this.loan.is_none() {
            return Err(PyValueError::new_err("the loan was sent or discarded"));
        }
        // SAFETY: `view` is the struct CPython passes to fill; `ptr` is
        // `len` writable bytes while the loan is held, which `send` and
        // `discard` refuse to end while exports exist, and the buffer keeps
        // this object alive (FillInfo takes a reference).
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                this.ptr.cast::<c_void>(),
                this.len as ffi::Py_ssize_t,
                0,
                flags,
            )
        };
        if rc != 0 {
            return Err(PyErr::take(slf.py())
                .unwrap_or_else(|| PyBufferError::new_err("cannot export the loan")));
        }
        this.exports.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.exports.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A received message, held in place in shared memory until released.
struct Held(Sample<'static, [u8]>);

// SAFETY: a `Held` is made, and dropped, only with its subscriber's lock
// held (see `PySubscriber::inner`), so the subscriber's unsynchronised
// state it touches on drop is never used by two threads at once; the
// payload it points at is read-only shared memory, fine from any thread.
unsafe impl Send for Held {}
// SAFETY: shared references to it are never used (only its pointer, taken
// at creation, is read); see `Send`.
unsafe impl Sync for Held {}

/// A subscriber of byte messages on a named service.
///
/// Joins the service ``name`` whatever its payload type (messages are
/// their bytes), making it for byte messages if it does not exist (the
/// keyword settings as for :class:`Publisher`).  :meth:`recv` returns a
/// :class:`Sample`: the message in place in shared memory, exported
/// read-only through the buffer protocol.  A subscriber holds at most
/// ``max_borrowed`` samples at once (2 by default): release them
/// (``with``, :meth:`Sample.release`, or dropping the last reference).
#[pyclass(module = "memlink", name = "Subscriber", frozen)]
pub struct PySubscriber {
    // Boxed so that the samples' borrows of it stay valid; `Subscriber` is
    // `Send` but not `Sync`: every use, including dropping a sample, goes
    // through this lock.
    inner: StdMutex<Option<Box<Subscriber<[u8]>>>>,
    /// Samples alive. Changed with `inner` locked (which orders it), read
    /// by `close` with `inner` locked.
    samples: AtomicUsize,
    name: String,
}

#[pymethods]
impl PySubscriber {
    #[new]
    #[pyo3(signature = (
        name, *, max_publishers = None, max_subscribers = None, capacity = None,
        history = None, max_loans = None, max_borrowed = None, overflow = None,
        max_size = None, mode = 0o600,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: &str,
        max_publishers: Option<u32>,
        max_subscribers: Option<u32>,
        capacity: Option<u32>,
        history: Option<u32>,
        max_loans: Option<u32>,
        max_borrowed: Option<u32>,
        overflow: Option<&str>,
        max_size: Option<u64>,
        mode: u32,
    ) -> PyResult<PySubscriber> {
        let options = service_options(
            max_publishers,
            max_subscribers,
            capacity,
            history,
            max_loans,
            max_borrowed,
            overflow,
            max_size,
            mode,
        )?;
        let subscriber = py
            .detach(|| Subscriber::connect_any(name, &options))
            .py_err()?;
        Ok(PySubscriber {
            inner: StdMutex::new(Some(Box::new(subscriber))),
            samples: AtomicUsize::new(0),
            name: name.to_owned(),
        })
    }

    /// The service's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Messages lost so far because a publisher overwrote them first.
    #[getter]
    fn missed(&self) -> PyResult<u64> {
        let inner = lock(&self.inner);
        let sub = inner
            .as_ref()
            .ok_or_else(|| closed("subscriber", &self.name))?;
        Ok(sub.missed())
    }

    /// How many publishers are connected now (0: all closed or dead).
    #[getter]
    fn publisher_count(&self) -> PyResult<usize> {
        let inner = lock(&self.inner);
        let sub = inner
            .as_ref()
            .ok_or_else(|| closed("subscriber", &self.name))?;
        sub.publisher_count().py_err()
    }

    /// The next message, waiting at most ``timeout`` seconds (as long as it
    /// takes when None); raises :class:`Timeout` if none came.  The wait
    /// releases the GIL and is interrupted by Ctrl-C.
    #[pyo3(signature = (timeout = None))]
    fn recv(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<PySample> {
        let timeout = timeout_arg(timeout)?;
        let this = slf.get();
        let held = sliced(slf.py(), timeout, |slice| this.take(slice))?;
        match held {
            Some(held) => Ok(PySample::new(slf, held)),
            None => Err(timeout_error(
                slf.py(),
                "receive from",
                "service",
                &this.name,
                "no sample came in time",
            )),
        }
    }

    /// The next message if one is waiting, else None.  Never blocks.
    fn try_recv(slf: &Bound<'_, Self>) -> PyResult<Option<PySample>> {
        let held = slf.get().take(Duration::ZERO).map_err(PyErr::from)?;
        Ok(held.map(|held| PySample::new(slf, held)))
    }

    /// Leaves the service.  Raises ``BufferError`` while samples are
    /// held.  Closing twice does nothing.
    fn close(&self) -> PyResult<()> {
        let mut inner = lock(&self.inner);
        match self.samples.load(Ordering::Relaxed) {
            0 => {
                inner.take();
                Ok(())
            }
            n => Err(PyBufferError::new_err(format!(
                "cannot close the subscriber of \"{}\": {n} sample(s) still held; release them first",
                self.name
            ))),
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.close()
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Iterating waits for each next message, as long as it takes.
    fn __next__(slf: &Bound<'_, Self>) -> PyResult<PySample> {
        PySubscriber::recv(slf, None)
    }

    fn __repr__(&self) -> String {
        format!("<memlink.Subscriber {:?}>", self.name)
    }
}

impl PySubscriber {
    /// Takes the next sample, waiting at most `wait` (not at all for zero).
    fn take(&self, wait: Duration) -> Result<Option<Held>, Failure> {
        let inner = lock(&self.inner);
        let sub = inner
            .as_ref()
            .ok_or_else(|| closed("subscriber", &self.name))?;
        let sample = if wait.is_zero() {
            sub.try_recv()?
        } else {
            match sub.recv_timeout(wait) {
                Ok(sample) => Some(sample),
                Err(e) if e.kind() == ErrorKind::Timeout => None,
                Err(e) => return Err(e.into()),
            }
        };
        Ok(sample.map(|sample| {
            self.samples.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the sample borrows the boxed subscriber, which stays
            // where it is until `close` drops it, and `close` refuses
            // while `samples` counts this one; the `PySample` keeps this
            // object (so the box) alive and drops the sample under `inner`.
            Held(unsafe { std::mem::transmute::<Sample<'_, [u8]>, Sample<'static, [u8]>>(sample) })
        }))
    }
}

/// One received message, in place in shared memory: a read-only buffer.
///
/// ``bytes(sample)``, ``memoryview(sample)`` and ``numpy.frombuffer(sample,
/// dtype=...)`` read the publisher's slot itself, with no copy; nobody
/// writes it until the sample is released.  Release it with
/// :meth:`release`, by leaving a ``with`` block, or by dropping the last
/// reference; :meth:`release` raises ``BufferError`` while buffers exported
/// from it still exist.
#[pyclass(module = "memlink", name = "Sample")]
pub struct PySample {
    held: Option<Held>,
    subscriber: Py<PySubscriber>,
    ptr: *const u8,
    len: usize,
    publisher_index: u32,
    sequence: u64,
    /// Buffers exported and not yet released; changed only with the
    /// object borrowed through PyO3, so Relaxed suffices.
    exports: AtomicUsize,
}

// SAFETY: `ptr` points into the subscriber's read-only mapping, valid
// while `held` is (see `Held`); reading it from any thread is fine.
unsafe impl Send for PySample {}
// SAFETY: as for `Send`; shared access only reads `ptr`'s bytes.
unsafe impl Sync for PySample {}

impl PySample {
    fn new(subscriber: &Bound<'_, PySubscriber>, held: Held) -> PySample {
        PySample {
            ptr: held.0.as_ptr(),
            len: held.0.len(),
            publisher_index: held.0.publisher_index(),
            sequence: held.0.sequence(),
            held: Some(held),
            subscriber: subscriber.clone().unbind(),
            exports: AtomicUsize::new(0),
        }
    }

    fn drop_held(&mut self) {
        if let Some(held) = self.held.take() {
            let subscriber = self.subscriber.get();
            let _inner = lock(&subscriber.inner);
            drop(held);
            subscriber.samples.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for PySample {
    fn drop(&mut self) {
        self.drop_held();
    }
}

#[pymethods]
impl PySample {
    /// The place of the publisher that sent it.
    #[getter]
    fn publisher_index(&self) -> u32 {
        self.publisher_index
    }

    /// Its number in its publisher's sequence.
    #[getter]
    fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Whether it was released.
    #[getter]
    fn released(&self) -> bool {
        self.held.is_none()
    }

    fn __len__(&self) -> usize {
        self.len
    }

    /// Gives the slot back to the publisher.  Raises ``BufferError`` while
    /// buffers exported from the sample exist.  Releasing twice does
    /// nothing.
    fn release(&mut self, py: Python<'_>) -> PyResult<()> {
        match self.exports.load(Ordering::Relaxed) {
            0 => {
                // The subscriber's lock may be held by a thread waiting in
                // `recv` without the GIL: wait for it without the GIL too.
                py.detach(|| self.drop_held());
                Ok(())
            }
            n => Err(exported("the sample", n)),
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "<memlink.Sample publisher={} sequence={} len={}{}>",
            self.publisher_index,
            self.sequence,
            self.len,
            if self.held.is_none() { " released" } else { "" }
        )
    }

    /// Exports the message: a read-only one-dimensional buffer of bytes.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.borrow();
        if this.held.is_none() {
            return Err(PyValueError::new_err("the sample is released"));
        }
        // SAFETY: `view` is the struct CPython passes to fill; `ptr` is
        // `len` readable bytes while the sample is held, which `release`
        // refuses to end while exports exist, and the buffer keeps this
        // object alive (FillInfo takes a reference). Read-only: FillInfo
        // refuses PyBUF_WRITABLE.
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                this.ptr.cast_mut().cast::<c_void>(),
                this.len as ffi::Py_ssize_t,
                1,
                flags,
            )
        };
        if rc != 0 {
            return Err(PyErr::take(slf.py())
                .unwrap_or_else(|| PyBufferError::new_err("cannot export the sample")));
        }
        this.exports.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.exports.fetch_sub(1, Ordering::Relaxed);
    }
}
