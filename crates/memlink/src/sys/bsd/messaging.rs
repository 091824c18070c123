//! macOS and FreeBSD: no messaging yet. Participant places need a lock
//! per byte that belongs to an open file description (Linux's `F_OFD_*`),
//! and doorbells a futex; neither exists in the same form there. Every
//! entry point answers with an `Unsupported` error naming the service.

use crate::sys::layout::Bell;
use std::time::Instant;

use super::Handle;
use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys::CreateSpec;
use crate::sys::Mapping;

fn unsupported<T>(kind: ObjectKind, name: &Name) -> Result<T> {
    Err(Error::new(
        Operation::Connect,
        kind,
        name.given(),
        ErrorKind::Unsupported,
    )
    .with_detail("messaging exists on Linux and Windows only"))
}

/// Never constructed: every constructor fails.
#[derive(Debug)]
pub(crate) enum Never {}

/// A claimed participant place (never made here).
#[derive(Debug)]
pub(crate) struct Claim(Never);

/// A participant's doorbell (never made here).
#[derive(Debug)]
pub(crate) struct Doorbell(Never);

/// Whether messaging works on this platform: it does not, here.
pub(crate) fn messaging_supported(name: &Name) -> Result<()> {
    unsupported(ObjectKind::Service, name)
}

impl Handle {
    /// Unsupported here: see the module docs.
    pub(crate) fn create_with(
        name: &Name,
        kind: ObjectKind,
        _spec: &CreateSpec,
        _init: &mut dyn FnMut(&Mapping) -> Result<()>,
    ) -> Result<Handle> {
        unsupported(kind, name)
    }

    /// Unsupported here: never reached, [`messaging_supported`] says no
    /// before any handle is asked.
    pub(crate) fn claim(&self, _index: u32) -> Result<Option<Claim>> {
        Err(Error::new(
            Operation::Connect,
            ObjectKind::Service,
            "",
            ErrorKind::Unsupported,
        ))
    }

    /// Unsupported here, as [`Handle::claim`].
    pub(crate) fn is_claimed(&self, _index: u32) -> Result<bool> {
        Err(Error::new(
            Operation::Connect,
            ObjectKind::Service,
            "",
            ErrorKind::Unsupported,
        ))
    }
}

impl Doorbell {
    /// Unsupported here, as [`Handle::claim`].
    pub(crate) fn new(_handle: &Handle, _index: u32) -> Result<Doorbell> {
        Err(Error::new(
            Operation::Connect,
            ObjectKind::Service,
            "",
            ErrorKind::Unsupported,
        ))
    }

    pub(crate) fn wait(&self, _bell: &Bell, _seen: u32, _deadline: Option<Instant>) -> bool {
        match self.0 {}
    }

    pub(crate) fn ring(&self, _bell: &Bell) {
        match self.0 {}
    }

    pub(crate) fn object(&self) -> (ObjectKind, &str) {
        match self.0 {}
    }

    pub(crate) fn waiters(&self) -> &crate::sys::Waiters {
        match self.0 {}
    }

    pub(crate) fn wait_any(
        members: &[crate::sys::Armed<'_>],
        _deadline: Option<Instant>,
    ) -> Result<()> {
        match members.first() {
            Some(m) => match m.doorbell.0 {},
            None => Ok(()),
        }
    }

    #[cfg(any(feature = "tokio", feature = "async-io"))]
    pub(crate) async fn rung(
        &self,
        _bell: &Bell,
        _seen: u32,
        _recheck: std::time::Duration,
    ) -> Result<()> {
        match self.0 {}
    }
}

/// No doorbells here, so no limit that matters.
pub(crate) const WAIT_ANY_MAX: usize = 64;
