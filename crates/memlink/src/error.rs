//! The one error type of the crate.

use std::fmt;
use std::io;

/// What kind of object an operation was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A shared-memory region.
    Region,
    /// A named mutex.
    Mutex,
    /// A named semaphore.
    Semaphore,
    /// A named event.
    Event,
    /// A publish/subscribe service: one region holding its participants,
    /// slots and rings.
    Service,
    /// A work queue: one region holding its participants, cells and
    /// slots.
    Queue,
    /// A request/response service: one region holding its server's and
    /// clients' places, request slots and response rings.
    RequestResponse,
}

impl ObjectKind {
    /// The lower-case word for this kind, as used in messages and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Region => "region",
            ObjectKind::Mutex => "mutex",
            ObjectKind::Semaphore => "semaphore",
            ObjectKind::Event => "event",
            ObjectKind::Service => "service",
            ObjectKind::Queue => "queue",
            ObjectKind::RequestResponse => "rpc",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Creating a new object.
    Create,
    /// Opening an existing object.
    Open,
    /// Creating an object or opening it if it exists.
    CreateOrOpen,
    /// Mapping a view of a region.
    Map,
    /// Removing a name.
    Remove,
    /// Listing objects.
    List,
    /// Reaping stale objects.
    Reap,
    /// Inspecting one object.
    Inspect,
    /// Closing a handle.
    Close,
    /// Locking a mutex.
    Lock,
    /// Waiting on a semaphore or event.
    Wait,
    /// Releasing a semaphore.
    Release,
    /// Reading from a view.
    Read,
    /// Writing into a view.
    Write,
    /// Setting an event.
    Set,
    /// Resetting an event.
    Reset,
    /// Joining a service as a publisher or subscriber.
    Connect,
    /// Loaning a sample from a service's slot pool.
    Loan,
    /// Publishing a sample.
    Send,
    /// Receiving a sample.
    Receive,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Create => "create",
            Operation::Open => "open",
            Operation::CreateOrOpen => "create or open",
            Operation::Map => "map",
            Operation::Remove => "remove",
            Operation::List => "list",
            Operation::Reap => "reap",
            Operation::Inspect => "inspect",
            Operation::Close => "close",
            Operation::Lock => "lock",
            Operation::Wait => "wait on",
            Operation::Release => "release",
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Set => "set",
            Operation::Reset => "reset",
            Operation::Connect => "connect to",
            Operation::Loan => "loan a sample from",
            Operation::Send => "send on",
            Operation::Receive => "receive from",
        })
    }
}

/// The category of an [`Error`], for callers that act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No object of that name exists (the seeds' "cannot open the mapping").
    NotFound,
    /// An object of that name exists already (`ERROR_ALREADY_EXISTS`).
    AlreadyExists,
    /// The name is not a valid object name.
    InvalidName,
    /// An argument is out of range: a size of 0, a range past the end.
    InvalidArgument,
    /// The OS refused access.
    PermissionDenied,
    /// Not enough shared memory (or address space) for the request.
    OutOfMemory,
    /// A writable view was asked of a read-only handle.
    ReadOnly,
    /// The name belongs to an object of another kind.
    WrongKind,
    /// The platform does not support what was asked.
    Unsupported,
    /// A wait with a timeout gave up.
    Timeout,
    /// Live processes hold the object (a removal that must not take it
    /// from them).
    InUse,
    /// The calling thread already holds the mutex it tried to lock.
    WouldDeadlock,
    /// A participant's payload type or settings differ from the service's
    /// (the message says both), or the service was made by an
    /// incompatible version of memlink.
    Incompatible,
    /// A fixed limit of the object is reached: every participant place of
    /// a service is taken, or too many samples are loaned or held.
    LimitReached,
    /// The peer a call depends on is gone: the server of a request/response
    /// service closed or died before it answered.
    PeerGone,
    /// Any other OS error.
    Os,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::InvalidName => "invalid name",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::OutOfMemory => "not enough shared memory",
            ErrorKind::ReadOnly => "the handle is read-only",
            ErrorKind::WrongKind => "the name belongs to another kind of object",
            ErrorKind::Unsupported => "not supported on this platform",
            ErrorKind::Timeout => "timed out",
            ErrorKind::InUse => "live processes hold it",
            ErrorKind::WouldDeadlock => "this thread already holds it",
            ErrorKind::Incompatible => "incompatible",
            ErrorKind::LimitReached => "limit reached",
            ErrorKind::PeerGone => "the peer is gone",
            ErrorKind::Os => "system error",
        }
    }
}

/// An error from memlink: says what was done, to which object, and why.
///
/// ```
/// use memlink::{Access, ErrorKind, Region};
/// let err = Region::open("memlink-doc-no-such-region", Access::ReadOnly).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// assert_eq!(
///     err.to_string(),
///     "cannot open region \"memlink-doc-no-such-region\": not found"
/// );
/// ```
#[derive(Debug)]
pub struct Error {
    operation: Operation,
    /// `None` for an operation on a name whose object's kind is not known.
    object: Option<ObjectKind>,
    name: String,
    kind: ErrorKind,
    detail: Option<String>,
    source: Option<io::Error>,
}

impl Error {
    pub(crate) fn new(
        operation: Operation,
        object: ObjectKind,
        name: &str,
        kind: ErrorKind,
    ) -> Error {
        Error {
            operation,
            object: Some(object),
            name: name.to_owned(),
            kind,
            detail: None,
            source: None,
        }
    }

    /// An error from the OS, classified by its code.
    pub(crate) fn os(
        operation: Operation,
        object: ObjectKind,
        name: &str,
        source: io::Error,
    ) -> Error {
        let kind = classify(&source);
        Error {
            source: Some(source),
            ..Error::new(operation, object, name, kind)
        }
    }

    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Error {
        self.detail = Some(detail.into());
        self
    }

    /// The same error, about whatever object has the name: for operations
    /// on names (inspect, remove) before the object's kind is known.
    pub(crate) fn of_any_kind(mut self) -> Error {
        self.object = None;
        self
    }

    /// The same error, about an object of `kind`.
    pub(crate) fn of_kind(mut self, kind: Option<ObjectKind>) -> Error {
        self.object = kind;
        self
    }

    /// The same error, reported as part of `operation`.
    pub(crate) fn reframe(mut self, operation: Operation) -> Error {
        self.operation = operation;
        self
    }

    /// The category of the error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The operation that failed.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The kind of object the operation was about; `None` when the
    /// operation was on a name whose object's kind is not known (an
    /// [`inspect`](crate::inspect) or [`remove`](crate::remove) of a name
    /// that holds no object, or something else than an object).
    pub fn object_kind(&self) -> Option<ObjectKind> {
        self.object
    }

    /// The name of the object, as the caller gave it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OS error behind this one, if any.
    pub fn os_error(&self) -> Option<&io::Error> {
        self.source.as_ref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.operation {
            Operation::List | Operation::Reap if self.name.is_empty() => {
                write!(f, "cannot {} objects: ", self.operation)?
            }
            _ => write!(
                f,
                "cannot {} {} \"{}\": ",
                self.operation,
                self.object.map_or("object", ObjectKind::as_str),
                Printable(&self.name)
            )?,
        }
        f.write_str(self.kind.describe())?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        if let Some(source) = &self.source {
            if self.kind == ErrorKind::Os || self.detail.is_some() {
                write!(f, " ({source})")?;
            }
        }
        Ok(())
    }
}

/// A name as it can be shown: control characters (a NUL, a newline) as
/// escapes such as `\0`, the rest as it is.
struct Printable<'a>(&'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\0' => f.write_str("\\0")?,
                c if c.is_control() => write!(f, "{}", c.escape_default())?,
                c => write!(f, "{c}")?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match err.kind {
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            ErrorKind::AlreadyExists => io::ErrorKind::AlreadyExists,
            ErrorKind::InvalidName | ErrorKind::InvalidArgument => io::ErrorKind::InvalidInput,
            ErrorKind::PermissionDenied | ErrorKind::ReadOnly => io::ErrorKind::PermissionDenied,
            ErrorKind::OutOfMemory => io::ErrorKind::OutOfMemory,
            ErrorKind::Unsupported => io::ErrorKind::Unsupported,
            ErrorKind::Timeout => io::ErrorKind::TimedOut,
            ErrorKind::WouldDeadlock => io::ErrorKind::Deadlock,
            ErrorKind::InUse => io::ErrorKind::ResourceBusy,
            ErrorKind::PeerGone => io::ErrorKind::BrokenPipe,
            ErrorKind::WrongKind
            | ErrorKind::Incompatible
            | ErrorKind::LimitReached
            | ErrorKind::Os => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}

fn classify(err: &io::Error) -> ErrorKind {
    match err.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
        io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        io::ErrorKind::OutOfMemory | io::ErrorKind::StorageFull => ErrorKind::OutOfMemory,
        io::ErrorKind::Unsupported => ErrorKind::Unsupported,
        io::ErrorKind::InvalidInput => ErrorKind::InvalidArgument,
        _ => ErrorKind::Os,
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_names_are_shown_escaped() {
        let err = Error::new(
            Operation::Open,
            ObjectKind::Region,
            "a\0b\nc\\d",
            ErrorKind::InvalidName,
        );
        assert_eq!(
            err.to_string(),
            "cannot open region \"a\\0b\\nc\\d\": invalid name"
        );
    }
}
