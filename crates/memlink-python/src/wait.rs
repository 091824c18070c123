//! Blocking waits that release the GIL and still honour Ctrl-C.

use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// How long one wait runs without the GIL before Python gets to run its
/// signal handlers (a Ctrl-C shows up within this long).
const SLICE: Duration = Duration::from_millis(50);

/// A value made on one thread and handed back to the same thread.
///
/// `Python::detach` wants a `Send` result because in general the closure
/// could move things across threads; it runs the closure on the calling
/// thread, though, so a `!Send` value (a mutex guard, a sample that borrows
/// its subscriber) comes back to the thread that made it.
pub struct SameThread<T>(pub T);

// SAFETY: only constructed inside a `Python::detach` closure and unwrapped
// right after it returns, on the same thread (see above).
unsafe impl<T> Send for SameThread<T> {}

/// Why a sliced wait failed. memlink's errors become Python exceptions
/// only after the wait, with the GIL: making them needs it, and taking it
/// while holding a lock that a GIL holder may wait for would deadlock.
pub enum Failure {
    Memlink(memlink::Error),
    Python(PyErr),
}

impl From<memlink::Error> for Failure {
    fn from(e: memlink::Error) -> Failure {
        Failure::Memlink(e)
    }
}

impl From<PyErr> for Failure {
    fn from(e: PyErr) -> Failure {
        Failure::Python(e)
    }
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> PyErr {
        match f {
            Failure::Memlink(e) => crate::errors::to_py(e),
            Failure::Python(e) => e,
        }
    }
}

/// Calls `attempt` with slices of `timeout` (forever when `None`) until it
/// returns `Some`, without the GIL, checking for signals between slices.
/// `None` means the whole timeout passed. `attempt` gets the slice to wait
/// (zero for a single try) and must return `Ok(None)` when its own wait
/// timed out. It must not make Python exceptions from memlink's errors
/// itself (see [`Failure`]); plain PyO3 exceptions are fine (they are
/// made lazily, without the GIL).
pub fn sliced<T>(
    py: Python<'_>,
    timeout: Option<Duration>,
    attempt: impl Fn(Duration) -> Result<Option<T>, Failure> + Send + Sync,
) -> PyResult<Option<T>> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let slice = match (timeout, deadline) {
            (None, _) | (Some(_), None) => SLICE,
            (Some(_), Some(deadline)) => deadline
                .saturating_duration_since(Instant::now())
                .min(SLICE),
        };
        let outcome = py.detach(|| attempt(slice).map(|v| v.map(SameThread)))?;
        if let Some(SameThread(value)) = outcome {
            return Ok(Some(value));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        py.check_signals()?;
    }
}
