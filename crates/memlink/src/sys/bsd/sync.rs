//! Named sync objects are not built for these platforms yet: neither has
//! the shared futex the Linux ones rest on, and macOS has no robust
//! mutexes. Each call is a clear `Unsupported` error.

use std::time::Instant;

use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys::{CreateSpec, Wait};
use crate::types::EventReset;

fn unsupported<T>(op: Operation, kind: ObjectKind, name: &Name) -> Result<T> {
    Err(Error::new(op, kind, name.given(), ErrorKind::Unsupported)
        .with_detail("named sync objects exist on Linux and Windows only"))
}

/// Never constructed: every constructor fails.
pub(crate) enum Never {}

pub(crate) struct RawMutex(Never);
pub(crate) struct RawSemaphore(Never);
pub(crate) struct RawEvent(Never);

impl RawMutex {
    pub(crate) fn create(name: &Name, _: &CreateSpec) -> Result<RawMutex> {
        unsupported(Operation::Create, ObjectKind::Mutex, name)
    }
    pub(crate) fn open(name: &Name) -> Result<RawMutex> {
        unsupported(Operation::Open, ObjectKind::Mutex, name)
    }
    pub(crate) fn lock(&self, _: Option<Instant>) -> Result<Wait> {
        match self.0 {}
    }
    pub(crate) fn unlock(&self) {
        match self.0 {}
    }
}

impl RawSemaphore {
    pub(crate) fn create(name: &Name, _: &CreateSpec, _: u32, _: u32) -> Result<RawSemaphore> {
        unsupported(Operation::Create, ObjectKind::Semaphore, name)
    }
    pub(crate) fn open(name: &Name) -> Result<RawSemaphore> {
        unsupported(Operation::Open, ObjectKind::Semaphore, name)
    }
    pub(crate) fn wait(&self, _: Option<Instant>) -> Result<Wait> {
        match self.0 {}
    }
    pub(crate) fn release(&self, _: u32) -> Result<u32> {
        match self.0 {}
    }
}

impl RawEvent {
    pub(crate) fn create(name: &Name, _: &CreateSpec, _: EventReset, _: bool) -> Result<RawEvent> {
        unsupported(Operation::Create, ObjectKind::Event, name)
    }
    pub(crate) fn open(name: &Name) -> Result<RawEvent> {
        unsupported(Operation::Open, ObjectKind::Event, name)
    }
    pub(crate) fn set(&self) -> Result<()> {
        match self.0 {}
    }
    pub(crate) fn reset(&self) -> Result<()> {
        match self.0 {}
    }
    pub(crate) fn wait(&self, _: Option<Instant>) -> Result<Wait> {
        match self.0 {}
    }
}
