//! A value of a plain-old-data type in a named region, guarded by a named
//! mutex: the usual way to share a small struct between processes.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytemuck::Pod;

use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::region::{Region, ViewMut};
use crate::sync::{Mutex, MutexGuard};
use crate::types::{Access, Disposition};

/// A `T` shared between processes: kept in the region `NAME` and guarded by
/// the mutex `NAME.lock` (which may exceed [`MAX_NAME_LEN`] by its suffix,
/// so that any valid name works). A new value starts as all zero bytes,
/// which [`Pod`] guarantees is a valid `T`.
///
/// [`MAX_NAME_LEN`]: crate::MAX_NAME_LEN
///
/// ```
/// use memlink::Shared;
/// # let name = format!("memlink-doc-shared-{}", std::process::id());
/// let (counter, _) = Shared::<u64>::create_or_open(&name)?;
/// {
///     let mut value = counter.lock()?;
///     if value.was_abandoned() {
///         // a process died while holding it: check the value here
///     }
///     *value += 1;
/// }
/// assert_eq!(*counter.lock()?, 1);
/// # Ok::<(), memlink::Error>(())
/// ```
pub struct Shared<T: Pod> {
    mutex: Mutex,
    /// The thread holding the lock through this handle (`thread_token`),
    /// or 0. Windows mutexes are reentrant, and a second guard on the same
    /// thread would be a second `&mut T`; this refuses it everywhere.
    holder: AtomicUsize,
    view: ViewMut,
    _region: Region,
    _type: PhantomData<T>,
}

/// Access to a [`Shared`] value while its mutex is held.
pub struct SharedGuard<'a, T: Pod> {
    guard: MutexGuard<'a>,
    holder: &'a AtomicUsize,
    value: *mut T,
}

/// A number that tells the calling thread from every other live thread:
/// the address of one of its thread-locals.
fn thread_token() -> usize {
    thread_local!(static TOKEN: u8 = const { 0 });
    TOKEN.with(|t| t as *const u8 as usize)
}

impl<T: Pod> Shared<T> {
    /// Creates the value (zeroed), or opens it if it exists; says which
    /// happened.
    pub fn create_or_open(name: &str) -> Result<(Shared<T>, Disposition)> {
        let parsed = Name::parse(name, Operation::CreateOrOpen, ObjectKind::Region)?;
        // The mutex first: whoever finds the region also finds its mutex.
        let (mutex, _) = Mutex::create_or_open_named(&lock_name(&parsed))?;
        let (region, how) = Region::create_or_open(name, size_of::<T>().max(1) as u64)?;
        Ok((
            Shared::wrap(name, mutex, region, Operation::CreateOrOpen)?,
            how,
        ))
    }

    /// Opens an existing value.
    pub fn open(name: &str) -> Result<Shared<T>> {
        let parsed = Name::parse_existing(name, Operation::Open, ObjectKind::Region)?;
        let mutex = Mutex::open_named(&lock_name(&parsed))?;
        let region = Region::open(name, Access::ReadWrite)?;
        Shared::wrap(name, mutex, region, Operation::Open)
    }

    fn wrap(name: &str, mutex: Mutex, region: Region, op: Operation) -> Result<Shared<T>> {
        let needed = size_of::<T>() as u64;
        if region.size() < needed {
            return Err(
                Error::new(op, ObjectKind::Region, name, ErrorKind::InvalidArgument).with_detail(
                    format!(
                        "it holds {} bytes; a {} needs {needed}",
                        region.size(),
                        std::any::type_name::<T>()
                    ),
                ),
            );
        }
        let view = region.map_mut(..needed.max(1))?;
        // Views start on a page boundary, which suits any Pod alignment
        // below a page; check rather than assume.
        if view.as_ptr().align_offset(align_of::<T>()) != 0 {
            return Err(
                Error::new(op, ObjectKind::Region, name, ErrorKind::Unsupported)
                    .with_detail("the type's alignment exceeds the page size"),
            );
        }
        Ok(Shared {
            mutex,
            holder: AtomicUsize::new(0),
            view,
            _region: region,
            _type: PhantomData,
        })
    }

    /// Locks the value, waiting as long as it takes. Locking it again
    /// through this handle on the thread that holds it is an
    /// [`ErrorKind::WouldDeadlock`] error. (Two `Shared` handles of one name
    /// in one process are two doors to the same value: lock only one at a
    /// time per thread, since Windows mutexes let the same thread in twice.)
    pub fn lock(&self) -> Result<SharedGuard<'_, T>> {
        self.refuse_nested()?;
        Ok(self.guard(self.mutex.lock()?))
    }

    /// Locks the value, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<SharedGuard<'_, T>> {
        self.refuse_nested()?;
        Ok(self.guard(self.mutex.lock_timeout(timeout)?))
    }

    /// Locks the value if nobody holds it.
    pub fn try_lock(&self) -> Result<Option<SharedGuard<'_, T>>> {
        self.refuse_nested()?;
        Ok(self.mutex.try_lock()?.map(|guard| self.guard(guard)))
    }

    fn refuse_nested(&self) -> Result<()> {
        // Relaxed: only this thread ever stores its own token, so seeing
        // it means this thread holds the lock; any other value means not.
        if self.holder.load(Ordering::Relaxed) == thread_token() {
            return Err(Error::new(
                Operation::Lock,
                ObjectKind::Mutex,
                self.mutex.name(),
                ErrorKind::WouldDeadlock,
            ));
        }
        Ok(())
    }

    fn guard<'a>(&'a self, guard: MutexGuard<'a>) -> SharedGuard<'a, T> {
        // Relaxed: read back only by this thread (see `refuse_nested`); the
        // mutex orders the value's bytes.
        self.holder.store(thread_token(), Ordering::Relaxed);
        SharedGuard {
            guard,
            holder: &self.holder,
            value: self.view.as_ptr().cast::<T>().cast_mut(),
        }
    }
}

/// The mutex beside the value `name`: `NAME.lock`, which may be longer
/// than a name memlink creates otherwise, so that every valid name works.
fn lock_name(name: &Name) -> Name {
    name.with_suffix(".lock")
}

impl<T: Pod> Drop for SharedGuard<'_, T> {
    fn drop(&mut self) {
        // Before the mutex is unlocked (the `guard` field drops after this).
        self.holder.store(0, Ordering::Relaxed);
    }
}

impl<T: Pod> SharedGuard<'_, T> {
    /// Whether the previous holder died holding the lock: the value may be
    /// half-updated.
    pub fn was_abandoned(&self) -> bool {
        self.guard.was_abandoned()
    }
}

impl<T: Pod> Deref for SharedGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: `value` points at size_of::<T>() mapped, suitably aligned
        // bytes (checked in `wrap`) that live as long as the `Shared`; any
        // bytes are a valid T (Pod); the named mutex, held by this guard,
        // keeps every cooperating process from writing meanwhile.
        unsafe { &*self.value }
    }
}

impl<T: Pod> DerefMut for SharedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the view is writable, and holding the
        // mutex through `&mut self` makes this the only access.
        unsafe { &mut *self.value }
    }
}

impl<T: Pod> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("mutex", &self.mutex)
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for SharedGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedGuard")
            .field("value", &**self)
            .field("abandoned", &self.was_abandoned())
            .finish()
    }
}
