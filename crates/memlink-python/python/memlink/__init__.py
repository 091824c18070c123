"""memlink: named shared memory, sync objects and publish/subscribe
between processes, with Windows lifetime rules on Linux too.

A name exists while some process holds a handle to it and goes away with
the last one, even when the holders crash or are killed: nothing is left
behind in ``/dev/shm`` (unlike ``multiprocessing.shared_memory``).

- :class:`Region`: a named shared-memory region; :meth:`Region.map` gives a
  :class:`View` that ``memoryview``, ``bytes`` and ``numpy.frombuffer`` use
  without copying.
- :class:`Mutex`, :class:`Semaphore`, :class:`Event`: named sync objects,
  robust against crashed holders.
- :class:`Publisher`, :class:`Subscriber`: byte messages through shared
  memory; a received :class:`Sample` is a read-only buffer over the
  message in place.
- :func:`list`, :func:`inspect`, :func:`reap`, :func:`remove`,
  :func:`inspect_service`: the objects on the machine.

Errors are :class:`Error` subclasses that are also the matching built-in
exceptions (:class:`NotFound` is a ``FileNotFoundError``, :class:`Timeout`
a ``TimeoutError``...).
"""

from ._errors import (
    AlreadyExists,
    Error,
    Incompatible,
    InUse,
    InvalidArgument,
    InvalidName,
    LimitReached,
    NotFound,
    OsError,
    OutOfMemory,
    PermissionDenied,
    ReadOnly,
    Timeout,
    Unsupported,
    WouldDeadlock,
    WrongKind,
)
from ._memlink import (
    MAX_NAME_LEN,
    Event,
    Loan,
    Mutex,
    ObjectInfo,
    ParticipantInfo,
    Publisher,
    Region,
    Sample,
    Semaphore,
    ServiceInfo,
    Subscriber,
    View,
    inspect,
    inspect_service,
    list,
    reap,
    remove,
)

__all__ = [
    "Region", "View", "Mutex", "Semaphore", "Event",
    "Publisher", "Subscriber", "Sample", "Loan",
    "ObjectInfo", "ServiceInfo", "ParticipantInfo",
    "list", "inspect", "reap", "remove", "inspect_service", "MAX_NAME_LEN",
    "Error", "NotFound", "AlreadyExists", "InvalidName", "InvalidArgument",
    "PermissionDenied", "ReadOnly", "OutOfMemory", "WrongKind", "Unsupported",
    "Timeout", "InUse", "WouldDeadlock", "Incompatible", "LimitReached", "OsError",
]
