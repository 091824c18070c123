//! The native part of the Python package `memlink` (`memlink._memlink`):
//! PyO3 classes over the memlink crate. The package's `__init__.py`
//! re-exports them beside the exception classes of `_errors.py`.

mod errors;
mod pubsub;
mod region;
mod sync;
mod wait;

use pyo3::prelude::*;

use errors::IntoPyResult;

/// What is known about one named object (from :func:`list` or
/// :func:`inspect`).
#[pyclass(module = "memlink", name = "ObjectInfo", frozen, get_all)]
struct ObjectInfo {
    /// The object's name.
    name: String,
    /// ``"region"``, ``"mutex"``, ``"semaphore"``, ``"event"``,
    /// ``"service"``; None for a foreign object (made by another program)
    /// or one whose kind cannot be read.
    kind: Option<&'static str>,
    /// ``"memlink"``, ``"foreign"`` or ``"unknown"``: who made it.
    origin: &'static str,
    /// Its size in bytes.
    size: u64,
    /// ``"last-handle"`` or ``"persistent"``.
    lifetime: &'static str,
    /// ``"alive"``, ``"stale"`` (its holders all died) or ``"unknown"``.
    state: &'static str,
    /// The ids of the processes holding it, where the platform tells.
    holders: Vec<u32>,
    /// Whether :attr:`holders` is known (False where the platform does not
    /// tell, or for another user's object).
    holders_known: bool,
    /// Where the object lives in the file system (``/dev/shm/NAME`` on
    /// Linux), where it has such a path.
    path: Option<String>,
    /// Unix permission bits, where the platform has them.
    mode: Option<u32>,
    /// The state of a sync object, in words (``"unlocked"``...).
    detail: Option<String>,
}

#[pymethods]
impl ObjectInfo {
    fn __repr__(&self) -> String {
        format!(
            "ObjectInfo(name={:?}, kind={}, size={}, lifetime={:?}, state={:?}, holders={:?})",
            self.name,
            self.kind.map_or("None".to_owned(), |k| format!("{k:?}")),
            self.size,
            self.lifetime,
            self.state,
            self.holders
        )
    }
}

impl From<memlink::ObjectInfo> for ObjectInfo {
    fn from(info: memlink::ObjectInfo) -> ObjectInfo {
        ObjectInfo {
            kind: info.kind.map(memlink::ObjectKind::as_str),
            origin: info.origin.as_str(),
            holders_known: info.holders_known,
            path: info.path,
            size: info.size,
            lifetime: info.lifetime.as_str(),
            state: info.state.as_str(),
            holders: info.holders,
            mode: info.mode,
            detail: info.detail,
            name: info.name,
        }
    }
}

/// Lists the named shared-memory objects on this machine: memlink's (of
/// every kind) and foreign ones, sorted by name.  Removes nothing.
#[pyfunction]
fn list(py: Python<'_>) -> PyResult<Vec<ObjectInfo>> {
    let objects = py.detach(memlink::list).py_err()?;
    Ok(objects.into_iter().map(ObjectInfo::from).collect())
}

/// What is known about the object called ``name``; raises
/// :class:`NotFound` if there is none.
#[pyfunction]
fn inspect(name: &str) -> PyResult<ObjectInfo> {
    Ok(memlink::inspect(name).py_err()?.into())
}

/// Removes the stale objects that processes which died left behind;
/// returns what it removed.  Never touches objects memlink did not make;
/// stale objects it may not remove (another user's) are left in place.
#[pyfunction]
fn reap(py: Python<'_>) -> PyResult<Vec<ObjectInfo>> {
    let report = py.detach(memlink::reap).py_err()?;
    Ok(report.removed.into_iter().map(ObjectInfo::from).collect())
}

/// Removes the name ``name`` whoever holds it (as ``shm_unlink`` does):
/// holders keep their handles and views, new opens raise
/// :class:`NotFound`.
#[pyfunction]
fn remove(name: &str) -> PyResult<()> {
    memlink::remove(name).py_err()
}

/// One live participant of a service.
#[pyclass(module = "memlink", name = "ParticipantInfo", frozen, get_all)]
struct ParticipantInfo {
    /// Its place in the service.
    index: u32,
    /// Its process id.
    pid: u32,
    /// Samples sent (publishers) or received (subscribers).
    samples: u64,
    /// Samples a subscriber missed.
    missed: u64,
}

#[pymethods]
impl ParticipantInfo {
    fn __repr__(&self) -> String {
        format!(
            "ParticipantInfo(index={}, pid={}, samples={}, missed={})",
            self.index, self.pid, self.samples, self.missed
        )
    }
}

/// What :func:`inspect_service` found out about a service.
#[pyclass(module = "memlink", name = "ServiceInfo", frozen, get_all)]
struct ServiceInfo {
    /// The service's name.
    name: String,
    /// The payload type, as its creator's compiler named it.
    payload_type: String,
    /// Size of the payload type (of one element, for slices), in bytes.
    payload_size: u64,
    /// The largest sample in bytes.
    max_payload: u64,
    /// Whether samples are slices.
    slices: bool,
    /// How many publishers may connect.
    max_publishers: u32,
    /// How many subscribers may connect.
    max_subscribers: u32,
    /// Samples kept per publisher.
    capacity: u32,
    /// Samples a late subscriber receives.
    history: u32,
    /// ``"overwrite"`` or ``"block"``.
    overflow: &'static str,
    /// Slots in the pool.
    slots: u64,
    /// Slots held by subscribers now.
    slots_held: u64,
    /// The live publishers.
    publishers: Vec<Py<ParticipantInfo>>,
    /// The live subscribers.
    subscribers: Vec<Py<ParticipantInfo>>,
}

#[pymethods]
impl ServiceInfo {
    fn __repr__(&self) -> String {
        format!(
            "ServiceInfo(name={:?}, payload_type={:?}, max_payload={}, publishers={}, subscribers={})",
            self.name,
            self.payload_type,
            self.max_payload,
            self.publishers.len(),
            self.subscribers.len()
        )
    }
}

/// Looks at a publish/subscribe service without joining it.
#[pyfunction]
fn inspect_service(py: Python<'_>, name: &str) -> PyResult<ServiceInfo> {
    let info = memlink::pubsub::inspect_service(name).py_err()?;
    let people = |list: Vec<memlink::pubsub::ParticipantInfo>| {
        list.into_iter()
            .map(|p| {
                Py::new(
                    py,
                    ParticipantInfo {
                        index: p.index,
                        pid: p.pid,
                        samples: p.samples,
                        missed: p.missed,
                    },
                )
            })
            .collect::<PyResult<Vec<_>>>()
    };
    Ok(ServiceInfo {
        overflow: match info.overflow {
            memlink::pubsub::Overflow::Block => "block",
            _ => "overwrite",
        },
        publishers: people(info.publishers)?,
        subscribers: people(info.subscribers)?,
        name: info.name,
        payload_type: info.payload_type,
        payload_size: info.payload_size,
        max_payload: info.max_payload,
        slices: info.slices,
        max_publishers: info.max_publishers,
        max_subscribers: info.max_subscribers,
        capacity: info.capacity,
        history: info.history,
        slots: info.slots,
        slots_held: info.slots_held,
    })
}

#[pymodule]
fn _memlink(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<region::PyRegion>()?;
    m.add_class::<region::PyView>()?;
    m.add_class::<sync::PyMutex>()?;
    m.add_class::<sync::PySemaphore>()?;
    m.add_class::<sync::PyEvent>()?;
    m.add_class::<pubsub::PyPublisher>()?;
    m.add_class::<pubsub::PySubscriber>()?;
    m.add_class::<pubsub::PySample>()?;
    m.add_class::<pubsub::PyLoan>()?;
    m.add_class::<ObjectInfo>()?;
    m.add_class::<ServiceInfo>()?;
    m.add_class::<ParticipantInfo>()?;
    m.add_function(wrap_pyfunction!(list, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(reap, m)?)?;
    m.add_function(wrap_pyfunction!(remove, m)?)?;
    m.add_function(wrap_pyfunction!(inspect_service, m)?)?;
    m.add("MAX_NAME_LEN", memlink::MAX_NAME_LEN)?;
    Ok(())
}
