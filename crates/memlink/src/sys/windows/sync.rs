//! Windows: named mutexes, semaphores and events, the native kernel objects.
//!
//! `CreateMutexW`, `CreateSemaphoreW` and `CreateEventW` make them, so any
//! program using the plain calls with the same name (the seeds' C++, .NET's
//! `Mutex`, Python's `win32event`) shares them with memlink. The kernel
//! keeps every rule memlink promises: the name lives while a handle is
//! open, a process that dies closes its handles, creation is atomic (the
//! loser of a race gets `ERROR_ALREADY_EXISTS`), and a mutex whose owner
//! dies is handed to the next waiter with `WAIT_ABANDONED`.
//!
//! Windows mutexes belong to a thread and are reentrant: the thread that
//! holds one may lock it again (and must unlock it as many times). Only
//! that thread may release it, which [`MutexGuard`](crate::MutexGuard)
//! ensures by staying on its thread.
//!
//! Sections, mutexes, semaphores and events share one namespace. A create
//! over a name that another kind of object holds is reported as
//! [`ErrorKind::AlreadyExists`] (the name is taken, as on Linux), with a
//! detail saying what holds it; an open of such a name is
//! [`ErrorKind::WrongKind`].

use std::io;
use std::mem::size_of;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr;
use std::time::Instant;

use windows_sys::core::{BOOL, PCWSTR};
use windows_sys::Win32::Foundation::{
    SetLastError, ERROR_ACCESS_DENIED, ERROR_ALREADY_EXISTS, ERROR_FILE_NOT_FOUND,
    ERROR_INVALID_HANDLE, ERROR_PATH_NOT_FOUND, ERROR_TOO_MANY_POSTS, FALSE, HANDLE, NTSTATUS,
    WAIT_ABANDONED, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;
use windows_sys::Win32::System::Threading::{
    CreateEventW, CreateMutexW, CreateSemaphoreW, OpenEventW, OpenMutexW, OpenSemaphoreW,
    ReleaseMutex, ReleaseSemaphore, ResetEvent, SetEvent, WaitForSingleObject, EVENT_MODIFY_STATE,
    INFINITE, MUTEX_MODIFY_STATE, SEMAPHORE_MODIFY_STATE, SYNCHRONIZATION_SYNCHRONIZE,
};

use super::errors::{held_by_another_user, last_error, name_is_taken, os_error};
use super::names::{kernel_name, open_named, wide, OpenFn};
use super::security::CreationSecurity;
use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys::{CreateSpec, Wait};
use crate::types::EventReset;

/// The right to read a semaphore's counts (`NtQuerySemaphore`); declared
/// by windows-sys only among the WDK's constants.
const SEMAPHORE_QUERY_STATE: u32 = 0x0001;
/// `SemaphoreBasicInformation`, the information class of `NtQuerySemaphore`.
const SEMAPHORE_BASIC_INFORMATION_CLASS: u32 = 0;

/// What `NtQuerySemaphore` returns for `SemaphoreBasicInformation`.
#[repr(C)]
struct SemaphoreBasicInformation {
    current_count: i32,
    maximum_count: i32,
}

// windows-sys does not declare `NtQuerySemaphore`; ntdll has exported it
// since NT 3.1, and Wine implements it.
#[link(name = "ntdll.dll", kind = "raw-dylib", modifiers = "+verbatim")]
extern "system" {
    fn NtQuerySemaphore(
        semaphore: HANDLE,
        class: u32,
        info: *mut std::ffi::c_void,
        len: u32,
        returned: *mut u32,
    ) -> NTSTATUS;
}

const OTHER_KIND: &str = "another kind of kernel object (a section, mutex, event or \
                          semaphore) has that name; all kernel objects share one namespace";

/// Makes a new named object with `create`, which is given the security
/// attributes (null for the default DACL) and the NUL-terminated name, and
/// returns the raw handle. Exclusive: an existing object of that name is an
/// [`ErrorKind::AlreadyExists`] error, another user's too. `open` is the
/// matching `Open*W` call, which tells such an object from a create that is
/// refused outright when `create` is denied access.
fn create_object(
    name: &Name,
    kind: ObjectKind,
    spec: &CreateSpec,
    create: impl FnOnce(*const SECURITY_ATTRIBUTES, PCWSTR) -> HANDLE,
    open: OpenFn,
) -> Result<OwnedHandle> {
    let op = Operation::Create;
    let security = CreationSecurity::new(name, kind, spec)?;
    let attributes_ptr = security.as_ptr();
    let wide_name = wide(&kernel_name(name));
    // SAFETY: clears the calling thread's last-error value, so that
    // ERROR_ALREADY_EXISTS below can only come from `create`.
    unsafe { SetLastError(0) };
    // The attributes, their descriptor and the name outlive the call.
    let raw = create(attributes_ptr, wide_name.as_ptr());
    let code = last_error();
    if raw.is_null() {
        return Err(match code {
            // The name is taken by an object of another kind: as on Linux,
            // a create over a taken name is AlreadyExists, whatever holds it.
            ERROR_INVALID_HANDLE => {
                Error::new(op, kind, name.given(), ErrorKind::AlreadyExists).with_detail(OTHER_KIND)
            }
            // Another user's object of that name, or the creation itself
            // refused: a look-only open tells them apart.
            ERROR_ACCESS_DENIED
                if name_is_taken(open_named(open, &wide_name, SYNCHRONIZATION_SYNCHRONIZE)) =>
            {
                held_by_another_user(op, kind, name)
            }
            code => os_error(op, kind, name, code),
        });
    }
    // SAFETY: `raw` is a fresh, valid handle that nothing else owns.
    let handle = unsafe { OwnedHandle::from_raw_handle(raw) };
    if code == ERROR_ALREADY_EXISTS {
        // `handle` is the existing object's; dropping it closes it.
        return Err(Error::new(op, kind, name.given(), ErrorKind::AlreadyExists));
    }
    Ok(handle)
}

fn open_error(name: &Name, kind: ObjectKind, code: u32) -> Error {
    let op = Operation::Open;
    match code {
        ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND => {
            Error::new(op, kind, name.given(), ErrorKind::NotFound)
        }
        ERROR_INVALID_HANDLE => {
            Error::new(op, kind, name.given(), ErrorKind::WrongKind).with_detail(OTHER_KIND)
        }
        code => os_error(op, kind, name, code),
    }
}

fn open_object(name: &Name, kind: ObjectKind, open: OpenFn, access: u32) -> Result<OwnedHandle> {
    open_named(open, &wide(&kernel_name(name)), access).map_err(|c| open_error(name, kind, c))
}

/// The milliseconds left until `deadline`, rounded up, for
/// `WaitForSingleObject`: `INFINITE` for no deadline, 0 for one that has
/// passed, and never `INFINITE` for one that is merely far away.
pub(super) fn millis_until(deadline: Option<Instant>) -> u32 {
    match deadline {
        None => INFINITE,
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = left.as_nanos().div_ceil(1_000_000);
            u32::try_from(ms).unwrap_or(INFINITE).min(INFINITE - 1)
        }
    }
}

/// Waits for `handle` to be signalled until `deadline` (`None`: forever; a
/// deadline already past: checks once).
fn wait_for(
    handle: &OwnedHandle,
    deadline: Option<Instant>,
    op: Operation,
    kind: ObjectKind,
    name: &Name,
) -> Result<Wait> {
    loop {
        let ms = millis_until(deadline);
        // SAFETY: the handle is valid for the call and has SYNCHRONIZE.
        let outcome = unsafe { WaitForSingleObject(handle.as_raw_handle(), ms) };
        match outcome {
            WAIT_OBJECT_0 => return Ok(Wait::Acquired),
            WAIT_ABANDONED => return Ok(Wait::Abandoned),
            WAIT_TIMEOUT => {
                // A wait capped below INFINITE, or one the timer ended a
                // little early, goes on until the deadline is really past.
                if deadline.is_some_and(|d| Instant::now() < d) {
                    continue;
                }
                return Ok(Wait::TimedOut);
            }
            _ => return Err(os_error(op, kind, name, last_error())),
        }
    }
}

/// A named mutex: a Windows mutex, robust and reentrant.
pub(crate) struct RawMutex {
    handle: OwnedHandle,
    name: Name,
}

impl RawMutex {
    pub(crate) fn create(name: &Name, spec: &CreateSpec) -> Result<RawMutex> {
        let handle = create_object(
            name,
            ObjectKind::Mutex,
            spec,
            |sa, wide_name| {
                // SAFETY: the attributes (or null) and the NUL-terminated name
                // are valid for the call (see `create_object`); not owned.
                unsafe { CreateMutexW(sa, FALSE, wide_name) }
            },
            OpenMutexW,
        )?;
        Ok(RawMutex {
            handle,
            name: name.clone(),
        })
    }

    pub(crate) fn open(name: &Name) -> Result<RawMutex> {
        let access = SYNCHRONIZATION_SYNCHRONIZE | MUTEX_MODIFY_STATE;
        let handle = open_object(name, ObjectKind::Mutex, OpenMutexW, access)?;
        Ok(RawMutex {
            handle,
            name: name.clone(),
        })
    }

    /// Locks, waiting until `deadline` (`None`: forever). Abandoned means
    /// the previous owner died holding it; the caller owns it now either way.
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Result<Wait> {
        wait_for(
            &self.handle,
            deadline,
            Operation::Lock,
            ObjectKind::Mutex,
            &self.name,
        )
    }

    /// Unlocks; the calling thread holds the lock (the guard guarantees it).
    pub(crate) fn unlock(&self) {
        // SAFETY: the handle is valid and has MUTEX_MODIFY_STATE; the
        // calling thread owns the mutex (MutexGuard is !Send and exists only
        // while locked). It cannot fail then, and a guard's drop has no way
        // to report an error anyway.
        let ok = unsafe { ReleaseMutex(self.handle.as_raw_handle()) };
        debug_assert!(ok != 0, "ReleaseMutex: {}", io::Error::last_os_error());
    }
}

/// A named counting semaphore: a Windows semaphore.
pub(crate) struct RawSemaphore {
    handle: OwnedHandle,
    name: Name,
    /// The maximum count, when known (the creator knows it; an opener reads
    /// it if its handle may query), for the error of an over-release.
    max: Option<u32>,
}

impl RawSemaphore {
    pub(crate) fn create(
        name: &Name,
        spec: &CreateSpec,
        initial: u32,
        max: u32,
    ) -> Result<RawSemaphore> {
        let kind = ObjectKind::Semaphore;
        let (Ok(initial_count), Ok(max_count)) = (i32::try_from(initial), i32::try_from(max))
        else {
            return Err(Error::new(
                Operation::Create,
                kind,
                name.given(),
                ErrorKind::InvalidArgument,
            )
            .with_detail(format!(
                "the maximum count {max} is more than Windows allows ({})",
                i32::MAX
            )));
        };
        let handle = create_object(
            name,
            kind,
            spec,
            |sa, wide_name| {
                // SAFETY: the attributes (or null) and the NUL-terminated name
                // are valid for the call (see `create_object`); the counts were
                // checked by the caller (0 <= initial <= max, max >= 1).
                unsafe { CreateSemaphoreW(sa, initial_count, max_count, wide_name) }
            },
            OpenSemaphoreW,
        )?;
        Ok(RawSemaphore {
            handle,
            name: name.clone(),
            max: Some(max),
        })
    }

    pub(crate) fn open(name: &Name) -> Result<RawSemaphore> {
        let kind = ObjectKind::Semaphore;
        let wide_name = wide(&kernel_name(name));
        let access = SYNCHRONIZATION_SYNCHRONIZE | SEMAPHORE_MODIFY_STATE;
        // Ask for the right to read the counts too (for clear errors); an
        // object whose DACL does not grant it is opened without it.
        let handle = open_named(OpenSemaphoreW, &wide_name, access | SEMAPHORE_QUERY_STATE)
            .or_else(|code| match code {
                ERROR_ACCESS_DENIED => open_named(OpenSemaphoreW, &wide_name, access),
                code => Err(code),
            })
            .map_err(|code| open_error(name, kind, code))?;
        let mut semaphore = RawSemaphore {
            handle,
            name: name.clone(),
            max: None,
        };
        semaphore.max = semaphore.counts().map(|(_, max)| max);
        Ok(semaphore)
    }

    /// The current and the maximum count, if this handle may read them.
    fn counts(&self) -> Option<(u32, u32)> {
        let mut info = SemaphoreBasicInformation {
            current_count: 0,
            maximum_count: 0,
        };
        // SAFETY: the handle is valid, `info` is a writable buffer of the
        // size given, and the returned-length pointer may be null.
        let status = unsafe {
            NtQuerySemaphore(
                self.handle.as_raw_handle(),
                SEMAPHORE_BASIC_INFORMATION_CLASS,
                ptr::addr_of_mut!(info).cast(),
                size_of::<SemaphoreBasicInformation>() as u32,
                ptr::null_mut(),
            )
        };
        (status >= 0).then_some((info.current_count as u32, info.maximum_count as u32))
    }

    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Result<Wait> {
        wait_for(
            &self.handle,
            deadline,
            Operation::Wait,
            ObjectKind::Semaphore,
            &self.name,
        )
    }

    /// Adds `n` to the count; returns the count before.
    pub(crate) fn release(&self, n: u32) -> Result<u32> {
        if n == 0 {
            // ReleaseSemaphore refuses 0; adding nothing just reads the count.
            if let Some((current, _)) = self.counts() {
                return Ok(current);
            }
        }
        let Ok(count) = i32::try_from(n) else {
            return Err(self.over_max(n)); // the maximum fits in an i32
        };
        let mut previous = 0i32;
        // SAFETY: the handle is valid and has SEMAPHORE_MODIFY_STATE;
        // `previous` is a writable i32.
        let ok = unsafe { ReleaseSemaphore(self.handle.as_raw_handle(), count, &mut previous) };
        if ok != 0 {
            return Ok(previous as u32);
        }
        Err(match last_error() {
            ERROR_TOO_MANY_POSTS => self.over_max(n),
            code => os_error(Operation::Release, ObjectKind::Semaphore, &self.name, code),
        })
    }

    /// The error of a release past the maximum (which changes nothing), with
    /// as much as is known of the counts.
    fn over_max(&self, n: u32) -> Error {
        let counts = self.counts();
        let detail = match (counts, self.max) {
            (Some((current, max)), _) => {
                format!(
                    "releasing {n} would take the count from {current} past its maximum of {max}"
                )
            }
            (None, Some(max)) => {
                format!("releasing {n} would take the count past its maximum of {max}")
            }
            (None, None) => format!("releasing {n} would take the count past its maximum"),
        };
        Error::new(
            Operation::Release,
            ObjectKind::Semaphore,
            self.name.given(),
            ErrorKind::InvalidArgument,
        )
        .with_detail(detail)
    }
}

/// A named event: a Windows event, manual- or auto-reset.
pub(crate) struct RawEvent {
    handle: OwnedHandle,
    name: Name,
}

impl RawEvent {
    pub(crate) fn create(
        name: &Name,
        spec: &CreateSpec,
        reset: EventReset,
        initially_set: bool,
    ) -> Result<RawEvent> {
        let manual = BOOL::from(reset == EventReset::Manual);
        let initial = BOOL::from(initially_set);
        let handle = create_object(
            name,
            ObjectKind::Event,
            spec,
            |sa, wide_name| {
                // SAFETY: the attributes (or null) and the NUL-terminated name
                // are valid for the call (see `create_object`).
                unsafe { CreateEventW(sa, manual, initial, wide_name) }
            },
            OpenEventW,
        )?;
        Ok(RawEvent {
            handle,
            name: name.clone(),
        })
    }

    pub(crate) fn open(name: &Name) -> Result<RawEvent> {
        let access = SYNCHRONIZATION_SYNCHRONIZE | EVENT_MODIFY_STATE;
        let handle = open_object(name, ObjectKind::Event, OpenEventW, access)?;
        Ok(RawEvent {
            handle,
            name: name.clone(),
        })
    }

    fn check(&self, ok: BOOL, operation: Operation) -> Result<()> {
        if ok != 0 {
            return Ok(());
        }
        Err(os_error(
            operation,
            ObjectKind::Event,
            &self.name,
            last_error(),
        ))
    }

    pub(crate) fn set(&self) -> Result<()> {
        // SAFETY: the handle is valid and has EVENT_MODIFY_STATE.
        let ok = unsafe { SetEvent(self.handle.as_raw_handle()) };
        self.check(ok, Operation::Set)
    }

    pub(crate) fn reset(&self) -> Result<()> {
        // SAFETY: the handle is valid and has EVENT_MODIFY_STATE.
        let ok = unsafe { ResetEvent(self.handle.as_raw_handle()) };
        self.check(ok, Operation::Reset)
    }

    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Result<Wait> {
        wait_for(
            &self.handle,
            deadline,
            Operation::Wait,
            ObjectKind::Event,
            &self.name,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::{Event, Lifetime, Mutex, Semaphore, SyncOptions};

    fn unique(tag: &str) -> String {
        format!("memlink-winsync-{tag}-{}", std::process::id())
    }

    #[test]
    fn millis_round_up_and_stay_below_infinite() {
        assert_eq!(millis_until(None), INFINITE);
        assert_eq!(millis_until(Some(Instant::now())), 0);
        let past = Instant::now().checked_sub(Duration::from_secs(1));
        if let Some(past) = past {
            assert_eq!(millis_until(Some(past)), 0);
        }
        let soon = millis_until(Some(Instant::now() + Duration::from_micros(1500)));
        assert!((1..=2).contains(&soon), "{soon}");
        let far = Instant::now() + Duration::from_secs(100 * 24 * 3600);
        assert_eq!(millis_until(Some(far)), INFINITE - 1);
    }

    #[test]
    fn windows_mutexes_are_reentrant_and_thread_owned() {
        let mutex = Mutex::create(&unique("reentrant")).unwrap();
        let outer = mutex.lock().unwrap();
        let inner = mutex.try_lock().unwrap().expect("the owner may lock again");
        drop(inner);
        std::thread::scope(|s| {
            s.spawn(|| assert!(mutex.try_lock().unwrap().is_none(), "still held"));
        });
        drop(outer);
        std::thread::scope(|s| {
            s.spawn(|| assert!(mutex.try_lock().unwrap().is_some(), "released"));
        });
    }

    #[test]
    fn an_opened_semaphore_knows_its_counts() {
        let name = unique("sem");
        let sem = Semaphore::create(&name, 2, 5).unwrap();
        let opened = Semaphore::open(&name).unwrap();
        assert_eq!(opened.release(0).unwrap(), 2, "release(0) reads the count");
        assert!(sem.try_wait().unwrap());
        let err = opened.release(5).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(
            err.to_string()
                .ends_with("releasing 5 would take the count from 1 past its maximum of 5"),
            "{err}"
        );
        let err = opened.release(u32::MAX).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert_eq!(opened.release(4).unwrap(), 1);
        let err = Semaphore::create(&unique("sem-big"), 0, u32::MAX).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    }

    #[test]
    fn creates_over_taken_names_and_options() {
        let name = unique("taken");
        let _mutex = Mutex::create(&name).unwrap();
        let err = Mutex::create(&name).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(
            err.to_string(),
            format!("cannot create mutex \"{name}\": already exists")
        );
        let err = Event::create(&name, EventReset::Auto, false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("share one namespace"), "{err}");
        let err = Event::open(&name).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongKind, "{err}");
        assert!(Mutex::open(&name).is_ok());

        let err = Mutex::create_with(
            &unique("persistent"),
            &SyncOptions::new().lifetime(Lifetime::Persistent),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");

        let open_name = unique("everyone");
        let event = Event::create_with(
            &open_name,
            EventReset::Manual,
            true,
            &SyncOptions::new().mode(0o666),
        )
        .unwrap();
        assert!(Event::open(&open_name).unwrap().try_wait().unwrap());
        event.reset().unwrap();
        assert!(!event.try_wait().unwrap());
    }

    #[test]
    fn sync_objects_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<RawMutex>();
        check::<RawSemaphore>();
        check::<RawEvent>();
    }
}
