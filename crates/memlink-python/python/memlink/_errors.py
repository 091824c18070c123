"""memlink's exception classes: one per kind of error, each also an
instance of the matching built-in exception, so ``except FileNotFoundError``
catches :class:`NotFound`."""

__all__ = [
    "Error", "NotFound", "AlreadyExists", "InvalidName", "InvalidArgument",
    "PermissionDenied", "ReadOnly", "OutOfMemory", "WrongKind", "Unsupported",
    "Timeout", "InUse", "WouldDeadlock", "Incompatible", "LimitReached", "OsError",
]


class Error(Exception):
    """Base class of every memlink error.

    Attributes (set when memlink raises it):

    - ``kind``: the kind, as memlink names it (``"NotFound"``...)
    - ``operation``: what failed (``"open"``, ``"receive from"``...)
    - ``object_kind``: ``"region"``, ``"mutex"``, ``"service"``...
    - ``object_name``: the name as given
    """

    kind = None
    operation = None
    object_kind = None
    object_name = None

    def __str__(self):
        # OSError's own __str__ would show "[Errno ...]" for some
        # argument shapes; the message says everything.
        return str(self.args[0]) if self.args else ""


class NotFound(Error, FileNotFoundError):
    """No object of that name exists."""


class AlreadyExists(Error, FileExistsError):
    """An object of that name exists already."""


class InvalidName(Error, ValueError):
    """The name is not a valid object name."""


class InvalidArgument(Error, ValueError):
    """An argument is out of range: a size of 0, a range past the end..."""


class PermissionDenied(Error, PermissionError):
    """The OS refused access."""


class ReadOnly(PermissionDenied):
    """A writable view was asked of a read-only handle."""


class OutOfMemory(Error, MemoryError):
    """Not enough shared memory (or address space) for the request."""


class WrongKind(Error, TypeError):
    """The name belongs to an object of another kind."""


class Unsupported(Error, NotImplementedError):
    """The platform does not support what was asked."""


class Timeout(Error, TimeoutError):
    """A wait with a timeout gave up."""


class InUse(Error, OSError):
    """Live processes hold the object (a removal that must not take it
    from them)."""


class WouldDeadlock(Error, RuntimeError):
    """The calling thread already holds the mutex it tried to lock."""


class Incompatible(Error):
    """The service's payload type or settings differ from the ones asked
    for, or it was made by an incompatible version of memlink."""


class LimitReached(Error):
    """A fixed limit is reached: every participant place of a service is
    taken, or too many samples are loaned or held."""


class OsError(Error, OSError):
    """Any other error from the operating system (``errno`` says which)."""
