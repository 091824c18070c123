//! `memlink.Mutex`, `memlink.Semaphore`, `memlink.Event`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::thread::ThreadId;
use std::time::Duration;

use memlink::{Disposition, ErrorKind, EventReset, Lifetime, SyncOptions};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};

use crate::errors::{timeout_arg, IntoPyResult};
use crate::wait::{sliced, Failure};

fn sync_options(persistent: bool, mode: u32) -> SyncOptions {
    let lifetime = if persistent {
        Lifetime::Persistent
    } else {
        Lifetime::LastHandle
    };
    SyncOptions::new().lifetime(lifetime).mode(mode)
}

/// `blocking` and `timeout` as in `threading.Lock.acquire`: how long to
/// wait, `None` for as long as it takes.
fn acquire_timeout(blocking: bool, timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match (blocking, timeout) {
        (false, Some(_)) => Err(PyValueError::new_err(
            "cannot give a timeout for a non-blocking acquire",
        )),
        (false, None) => Ok(Some(Duration::ZERO)),
        (true, timeout) => timeout_arg(timeout),
    }
}

/// `Ok(None)` for memlink's timeout, so that waits can be sliced.
fn timed_out_as_none<T>(result: memlink::Result<T>) -> Result<Option<T>, Failure> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == ErrorKind::Timeout => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn closed(kind: &str, name: &str) -> PyErr {
    PyValueError::new_err(format!("{kind} \"{name}\" is closed"))
}

/// The lock a `Mutex` holds, and the thread that locked it.
struct Held {
    // Borrows `mutex`: declared first, so dropped (unlocked) first.
    guard: memlink::MutexGuard<'static>,
    _mutex: Arc<memlink::Mutex>,
    thread: ThreadId,
}

// SAFETY: the guard is only dropped (unlocked) on `thread`, the thread that
// locked it, as the OS requires: `release` checks the thread, and `Drop`
// forgets a guard it finds on another thread instead of unlocking it.
// Between lock and unlock it is only stored, never used.
unsafe impl Send for Held {}

/// A named mutex, shared between processes; robust: when a holder dies
/// holding it, the next locker gets it and :attr:`abandoned` is True (the
/// data it protects may be half-updated).
///
/// Use it as ``threading.Lock``: ``with mutex: ...``, or
/// :meth:`acquire` / :meth:`release` on the same thread.  Waits release
/// the GIL and are interrupted by Ctrl-C.  Not reentrant.
#[pyclass(module = "memlink", name = "Mutex", frozen)]
pub struct PyMutex {
    held: StdMutex<Option<Held>>,
    mutex: StdMutex<Option<Arc<memlink::Mutex>>>,
    abandoned: AtomicBool,
    name: String,
}

impl PyMutex {
    fn new(mutex: memlink::Mutex) -> PyMutex {
        PyMutex {
            name: mutex.name().to_owned(),
            held: StdMutex::new(None),
            mutex: StdMutex::new(Some(Arc::new(mutex))),
            abandoned: AtomicBool::new(false),
        }
    }

    fn raw(&self) -> PyResult<Arc<memlink::Mutex>> {
        let mutex = self.mutex.lock().unwrap_or_else(|p| p.into_inner());
        mutex.clone().ok_or_else(|| closed("mutex", &self.name))
    }
}

#[pymethods]
impl PyMutex {
    /// Creates a mutex, unlocked; raises :class:`AlreadyExists` if the
    /// name is taken.
    #[classmethod]
    #[pyo3(signature = (name, *, persistent = false, mode = 0o600))]
    fn create(
        _cls: &Bound<'_, PyType>,
        name: &str,
        persistent: bool,
        mode: u32,
    ) -> PyResult<PyMutex> {
        let mutex = memlink::Mutex::create_with(name, &sync_options(persistent, mode)).py_err()?;
        Ok(PyMutex::new(mutex))
    }

    /// Opens an existing mutex; raises :class:`NotFound` if there is none.
    #[classmethod]
    fn open(_cls: &Bound<'_, PyType>, name: &str) -> PyResult<PyMutex> {
        Ok(PyMutex::new(memlink::Mutex::open(name).py_err()?))
    }

    /// Creates the mutex or opens it if it exists.
    #[classmethod]
    fn create_or_open(_cls: &Bound<'_, PyType>, name: &str) -> PyResult<PyMutex> {
        let (mutex, _) = memlink::Mutex::create_or_open(name).py_err()?;
        Ok(PyMutex::new(mutex))
    }

    /// The mutex's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Whether the last :meth:`acquire` found the mutex abandoned: its
    /// previous holder died holding it.
    #[getter]
    fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// Locks the mutex, as ``threading.Lock.acquire``: waits at most
    /// ``timeout`` seconds (as long as it takes when None; not at all with
    /// ``blocking=False``) and returns whether it locked.  Raises
    /// :class:`WouldDeadlock` if this thread holds it already.
    #[pyo3(signature = (blocking = true, timeout = None))]
    fn acquire(&self, py: Python<'_>, blocking: bool, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = acquire_timeout(blocking, timeout)?;
        let mutex = self.raw()?;
        let guard = sliced(py, timeout, |slice| {
            // A Python thread that holds it and locks again would wait
            // forever on Windows (reentrant there) or fail on Linux:
            // refuse it the same way everywhere.
            let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            if held
                .as_ref()
                .is_some_and(|h| h.thread == std::thread::current().id())
            {
                return Err(PyRuntimeError::new_err(format!(
                    "cannot lock mutex \"{}\": this thread holds it already",
                    self.name
                ))
                .into());
            }
            drop(held);
            let guard = timed_out_as_none(mutex.lock_timeout(slice))?;
            // SAFETY: the guard borrows the mutex in `mutex`, an `Arc` that
            // `Held` keeps beside it and drops after it.
            Ok(guard.map(|g| unsafe {
                std::mem::transmute::<memlink::MutexGuard<'_>, memlink::MutexGuard<'static>>(g)
            }))
        })?;
        let Some(guard) = guard else {
            return Ok(false);
        };
        // Relaxed: read by the same thread after `acquire` returns, or
        // racily as information; it orders nothing.
        self.abandoned
            .store(guard.was_abandoned(), Ordering::Relaxed);
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some(Held {
            guard,
            _mutex: Arc::clone(&mutex),
            thread: std::thread::current().id(),
        });
        Ok(true)
    }

    /// Unlocks the mutex.  Only the thread that locked it may unlock it
    /// (``RuntimeError`` otherwise, and when it is not locked).
    fn release(&self) -> PyResult<()> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match held.as_ref() {
            Some(h) if h.thread == std::thread::current().id() => {
                drop(held.take());
                Ok(())
            }
            Some(_) => Err(PyRuntimeError::new_err(format!(
                "cannot release mutex \"{}\": another thread holds it",
                self.name
            ))),
            None => Err(PyRuntimeError::new_err(format!(
                "cannot release mutex \"{}\": it is not locked by this object",
                self.name
            ))),
        }
    }

    /// Whether this object holds the lock (on any of its threads).
    fn locked(&self) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Closes the handle.  Raises ``RuntimeError`` while it is locked.
    fn close(&self) -> PyResult<()> {
        if self.locked() {
            return Err(PyRuntimeError::new_err(format!(
                "cannot close mutex \"{}\" while it is locked; release it first",
                self.name
            )));
        }
        self.mutex.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(())
    }

    fn __enter__<'py>(slf: Bound<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, Self>> {
        slf.get().acquire(py, true, None)?;
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release()
    }

    fn __repr__(&self) -> String {
        format!(
            "<memlink.Mutex {:?}{}>",
            self.name,
            if self.locked() { " locked" } else { "" }
        )
    }
}

impl Drop for PyMutex {
    fn drop(&mut self) {
        let held = self
            .held
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(held) = held {
            if held.thread != std::thread::current().id() {
                // Unlocking from a thread that does not hold it is not
                // allowed; the lock stays held until that thread exits
                // (then it is abandoned, and the next locker is told).
                std::mem::forget(held.guard);
            }
            // Otherwise `held` drops here: the guard unlocks, then its Arc.
        }
    }
}

/// A named counting semaphore, shared between processes.
///
/// ``with sem:`` takes one unit and gives it back; :meth:`acquire` and
/// :meth:`release` work as in ``threading.Semaphore`` (but any thread or
/// process may release).  Waits release the GIL and are interrupted by
/// Ctrl-C.
#[pyclass(module = "memlink", name = "Semaphore", frozen)]
pub struct PySemaphore {
    sem: StdMutex<Option<Arc<memlink::Semaphore>>>,
    name: String,
}

impl PySemaphore {
    fn new(sem: memlink::Semaphore) -> PySemaphore {
        PySemaphore {
            name: sem.name().to_owned(),
            sem: StdMutex::new(Some(Arc::new(sem))),
        }
    }

    fn raw(&self) -> PyResult<Arc<memlink::Semaphore>> {
        let sem = self.sem.lock().unwrap_or_else(|p| p.into_inner());
        sem.clone().ok_or_else(|| closed("semaphore", &self.name))
    }
}

#[pymethods]
impl PySemaphore {
    /// Creates a semaphore with count ``initial`` and at most ``maximum``.
    #[classmethod]
    #[pyo3(signature = (name, initial = 0, maximum = 1, *, persistent = false, mode = 0o600))]
    fn create(
        _cls: &Bound<'_, PyType>,
        name: &str,
        initial: u32,
        maximum: u32,
        persistent: bool,
        mode: u32,
    ) -> PyResult<PySemaphore> {
        let sem = memlink::Semaphore::create_with(
            name,
            initial,
            maximum,
            &sync_options(persistent, mode),
        )
        .py_err()?;
        Ok(PySemaphore::new(sem))
    }

    /// Opens an existing semaphore.
    #[classmethod]
    fn open(_cls: &Bound<'_, PyType>, name: &str) -> PyResult<PySemaphore> {
        Ok(PySemaphore::new(memlink::Semaphore::open(name).py_err()?))
    }

    /// Creates the semaphore, or opens it (keeping its counts) if it exists.
    #[classmethod]
    #[pyo3(signature = (name, initial = 0, maximum = 1))]
    fn create_or_open(
        _cls: &Bound<'_, PyType>,
        name: &str,
        initial: u32,
        maximum: u32,
    ) -> PyResult<PySemaphore> {
        let (sem, _) = memlink::Semaphore::create_or_open(name, initial, maximum).py_err()?;
        Ok(PySemaphore::new(sem))
    }

    /// The semaphore's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Takes one unit: waits at most ``timeout`` seconds (as long as it
    /// takes when None, not at all with ``blocking=False``); returns
    /// whether it took one.
    #[pyo3(signature = (blocking = true, timeout = None))]
    fn acquire(&self, py: Python<'_>, blocking: bool, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = acquire_timeout(blocking, timeout)?;
        let sem = self.raw()?;
        let taken = sliced(py, timeout, |slice| {
            if slice.is_zero() {
                return Ok(sem.try_wait()?.then_some(()));
            }
            timed_out_as_none(sem.wait_timeout(slice))
        })?;
        Ok(taken.is_some())
    }

    /// Adds ``n`` units, waking as many waiters; returns the count before.
    /// Going past the maximum raises :class:`InvalidArgument` and changes
    /// nothing.
    #[pyo3(signature = (n = 1))]
    fn release(&self, n: u32) -> PyResult<u32> {
        self.raw()?.release(n).py_err()
    }

    /// Closes the handle.
    fn close(&self) {
        self.sem.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn __enter__<'py>(slf: Bound<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, Self>> {
        slf.get().acquire(py, true, None)?;
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release(1).map(drop)
    }

    fn __repr__(&self) -> String {
        format!("<memlink.Semaphore {:?}>", self.name)
    }
}

/// A named event, shared between processes: manual-reset (stays set,
/// releasing every waiter, until :meth:`reset`) or auto-reset (each
/// :meth:`set` releases exactly one waiter).  No set is lost: a set that
/// races a wait releases it.  Waits release the GIL and are interrupted
/// by Ctrl-C.
#[pyclass(module = "memlink", name = "Event", frozen)]
pub struct PyEvent {
    event: StdMutex<Option<Arc<memlink::Event>>>,
    name: String,
}

impl PyEvent {
    fn new(event: memlink::Event) -> PyEvent {
        PyEvent {
            name: event.name().to_owned(),
            event: StdMutex::new(Some(Arc::new(event))),
        }
    }

    fn raw(&self) -> PyResult<Arc<memlink::Event>> {
        let event = self.event.lock().unwrap_or_else(|p| p.into_inner());
        event.clone().ok_or_else(|| closed("event", &self.name))
    }
}

fn reset_kind(manual_reset: bool) -> EventReset {
    if manual_reset {
        EventReset::Manual
    } else {
        EventReset::Auto
    }
}

#[pymethods]
impl PyEvent {
    /// Creates an event: auto-reset unless ``manual_reset=True``, set if
    /// ``initially_set=True``.
    #[classmethod]
    #[pyo3(signature = (name, *, manual_reset = false, initially_set = false, persistent = false, mode = 0o600))]
    fn create(
        _cls: &Bound<'_, PyType>,
        name: &str,
        manual_reset: bool,
        initially_set: bool,
        persistent: bool,
        mode: u32,
    ) -> PyResult<PyEvent> {
        let event = memlink::Event::create_with(
            name,
            reset_kind(manual_reset),
            initially_set,
            &sync_options(persistent, mode),
        )
        .py_err()?;
        Ok(PyEvent::new(event))
    }

    /// Opens an existing event.
    #[classmethod]
    fn open(_cls: &Bound<'_, PyType>, name: &str) -> PyResult<PyEvent> {
        Ok(PyEvent::new(memlink::Event::open(name).py_err()?))
    }

    /// Creates the event, or opens it (keeping its kind and state) if it
    /// exists.
    #[classmethod]
    #[pyo3(signature = (name, *, manual_reset = false, initially_set = false))]
    fn create_or_open(
        _cls: &Bound<'_, PyType>,
        name: &str,
        manual_reset: bool,
        initially_set: bool,
    ) -> PyResult<PyEvent> {
        let (event, disposition) =
            memlink::Event::create_or_open(name, reset_kind(manual_reset), initially_set)
                .py_err()?;
        let _: Disposition = disposition;
        Ok(PyEvent::new(event))
    }

    /// The event's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Sets the event.
    fn set(&self) -> PyResult<()> {
        self.raw()?.set().py_err()
    }

    /// Resets the event.
    fn reset(&self) -> PyResult<()> {
        self.raw()?.reset().py_err()
    }

    /// Waits until the event is set, at most ``timeout`` seconds (as long
    /// as it takes when None); returns whether it was set.  For an
    /// auto-reset event this takes the signal.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = timeout_arg(timeout)?;
        let event = self.raw()?;
        let set = sliced(py, timeout, |slice| {
            if slice.is_zero() {
                return Ok(event.try_wait()?.then_some(()));
            }
            timed_out_as_none(event.wait_timeout(slice))
        })?;
        Ok(set.is_some())
    }

    /// Closes the handle.
    fn close(&self) {
        self.event.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) {
        self.close();
    }

    fn __repr__(&self) -> String {
        format!("<memlink.Event {:?}>", self.name)
    }
}
