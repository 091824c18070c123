//! The header every messaging object starts with, and making or opening
//! one: what services, queues (and any later kind) do the same way, with
//! only their settings and layout told apart by [`Format`].
//!
//! ```text
//! offset 0   magic (u64)       stored last by the creator (Release)
//!        8   version (u32), header size (u32)
//!       16   settings          the kind's own, fixed at creation
//!        …   payload types     what the object carries
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::{PayloadType, SETUP_WAIT};
use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys;
use crate::sys::CreateSpec;
use crate::types::{Access, Lifetime};

/// The first bytes of a messaging object: `S` its settings, `P` the
/// record of what it carries (one [`PayloadType`], or a request's and a
/// response's).
#[repr(C)]
pub(crate) struct Header<S, P = PayloadType> {
    pub(crate) magic: AtomicU64,
    pub(crate) version: u32,
    pub(crate) header_size: u32,
    pub(crate) settings: S,
    pub(crate) payload: P,
}

/// One kind of messaging object, implemented by its options: its marks,
/// its settings and how they lay it out.
pub(crate) trait Format {
    /// The kind, for names and errors.
    const KIND: ObjectKind;
    /// The first word of a finished object of this kind.
    const MAGIC: u64;
    /// The layout version; another is an `Incompatible` error.
    const VERSION: u32;
    /// The settings, stored in the header.
    type Settings: Copy;
    /// What the object carries, stored in the header after the settings.
    type Payload: Copy + PartialEq + std::fmt::Display;
    /// Where everything lies, worked out from the settings.
    type Layout: ObjectLayout<Settings = Self::Settings, Payload = Self::Payload>;

    /// The settings a new object gets from these options.
    fn resolve(&self, payload: &Self::Payload) -> Self::Settings;
    /// Compares what these options chose with an existing object's
    /// settings; `Err` says every difference.
    fn check(
        &self,
        existing: &Self::Settings,
        payload: &Self::Payload,
    ) -> std::result::Result<(), String>;
    /// Whether a joiner takes the object whatever its payload type.
    fn any_payload(&self) -> bool;
    /// The permission bits of a new object.
    fn mode(&self) -> u32;
}

/// The layout of one kind of messaging object.
pub(crate) trait ObjectLayout: Sized {
    /// The settings it is worked out from.
    type Settings;
    /// What the object carries.
    type Payload;
    /// Lays out an object with `settings`; an error names `name` and `op`.
    fn lay_out(
        settings: Self::Settings,
        payload: &Self::Payload,
        name: &str,
        op: Operation,
    ) -> Result<Self>;
    /// The object's whole size in bytes.
    fn total(&self) -> u64;
    /// The size of its control part (header, tables, rings), which comes
    /// first; the payload data follows.
    fn control_len(&self) -> u64;
}

/// The control part of a messaging object, mapped: typed access to its
/// words, at offsets its layout gives.
pub(crate) struct Control<L> {
    map: sys::Mapping,
    layout: L,
}

impl<L: ObjectLayout> Control<L> {
    /// Maps the control part of the object `handle` refers to, laid out as
    /// `layout` (writable for participants, read-only for inspectors).
    pub(crate) fn map(
        handle: &sys::Handle,
        layout: L,
        writable: bool,
        op: Operation,
    ) -> Result<Self> {
        let map = handle
            .map(0, layout.control_len() as usize, writable)
            .map_err(|e| e.reframe(op))?;
        Ok(Control { map, layout })
    }

    pub(crate) fn layout(&self) -> &L {
        &self.layout
    }

    /// The `A` at `offset` in the control part.
    pub(crate) fn at<A>(&self, offset: u64) -> &A {
        debug_assert!(offset + std::mem::size_of::<A>() as u64 <= self.layout.control_len());
        debug_assert_eq!(offset % std::mem::align_of::<A>() as u64, 0);
        // SAFETY: every offset passed here comes from the layout, lies inside
        // the control part (which `map` keeps mapped as long as `self`
        // lives) and is aligned for `A` (lines are 64-byte aligned from a
        // page-aligned base; words are 8-byte aligned within them). The types used are atomics (or structs of atomics), valid
        // for any bit pattern and accessed only atomically by every
        // process; a read-only mapping is only ever loaded from.
        unsafe { &*self.map.as_ptr().add(offset as usize).cast::<A>() }
    }
}

/// The magics of every messaging kind, to name a wrong one.
const KINDS: [(u64, &str); 3] = [
    (crate::pubsub::MAGIC, "a pub/sub service"),
    (crate::queue::MAGIC, "a work queue"),
    (crate::reqresp::MAGIC, "a request/response service"),
];

/// An object found or made, with its layout.
pub(crate) struct Opened<F: Format> {
    pub(crate) handle: sys::Handle,
    pub(crate) name: Name,
    pub(crate) layout: F::Layout,
    /// What the object carries, as its creator recorded it.
    pub(crate) payload: F::Payload,
}

/// Makes the object `name` with the caller's settings, or joins it when
/// it exists, checking its payload type and every setting the caller
/// chose explicitly.
pub(crate) fn connect<F: Format>(
    name: &str,
    options: &F,
    payload: F::Payload,
) -> Result<Opened<F>> {
    let op = Operation::Connect;
    let parsed = Name::parse(name, op, F::KIND)?;
    sys::messaging_supported(&parsed)?;
    let settings = options.resolve(&payload);
    let layout = F::Layout::lay_out(settings, &payload, name, op)?;
    let spec = CreateSpec {
        size: layout.total(),
        lifetime: Lifetime::LastHandle,
        mode: options.mode(),
        reserve: true,
    };
    let mut init = |mapping: &sys::Mapping| {
        write_header::<F>(mapping, settings, &payload);
        Ok(())
    };
    let (handle, created) = create_or_open(&parsed, F::KIND, &spec, &mut init)?;
    if created {
        return Ok(Opened {
            handle,
            name: parsed,
            layout,
            payload,
        });
    }
    read_layout(handle, parsed, op, |existing, found| {
        if *found != payload && !options.any_payload() {
            return Err(format!(
                "the payload type here is {payload}, the {} carries {found}",
                F::KIND
            ));
        }
        options.check(existing, found)
    })
}

/// Opens the object `name` read-only to look at it.
pub(crate) fn inspect<F: Format>(name: &str) -> Result<Opened<F>> {
    let op = Operation::Inspect;
    let parsed = Name::parse(name, op, F::KIND)?;
    sys::messaging_supported(&parsed)?;
    let handle =
        sys::Handle::open(&parsed, F::KIND, Access::ReadOnly).map_err(|e| e.reframe(op))?;
    read_layout(handle, parsed, op, |_, _| Ok(()))
}

/// Makes the object `name` with `init` writing its header, or opens it
/// when it exists; the handle and whether this call made it.
fn create_or_open(
    name: &Name,
    kind: ObjectKind,
    spec: &CreateSpec,
    init: &mut dyn FnMut(&sys::Mapping) -> Result<()>,
) -> Result<(sys::Handle, bool)> {
    let op = Operation::Connect;
    // Each failure below means another process won a race since the
    // last step; the bound only guards against a livelock.
    for _ in 0..1000 {
        match sys::Handle::create_with(name, kind, spec, init) {
            Ok(handle) => return Ok((handle, true)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.reframe(op)),
        }
        match sys::Handle::open(name, kind, Access::ReadWrite) {
            Ok(handle) => return Ok((handle, false)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.reframe(op)),
        }
    }
    Err(Error::new(op, kind, name.given(), ErrorKind::AlreadyExists)
        .with_detail(format!("the {kind} kept being made and removed by others")))
}

/// The creator's set-up: the header, then the magic that says it is done.
fn write_header<F: Format>(mapping: &sys::Mapping, settings: F::Settings, payload: &F::Payload) {
    let header = mapping.as_ptr().cast::<Header<F::Settings, F::Payload>>();
    // SAFETY: the mapping is the whole new object (at least the header's
    // size, page-aligned, so aligned for the header) and nobody else uses
    // it yet: on Linux it has no name; on Windows joiners wait for the
    // magic, which is stored last, before they read anything else.
    unsafe {
        std::ptr::addr_of_mut!((*header).version).write(F::VERSION);
        std::ptr::addr_of_mut!((*header).header_size)
            .write(std::mem::size_of::<Header<F::Settings, F::Payload>>() as u32);
        std::ptr::addr_of_mut!((*header).settings).write(settings);
        std::ptr::addr_of_mut!((*header).payload).write(*payload);
        // Release: pairs with the joiner's Acquire load of the magic (in
        // `await_magic`); the fields above are visible once it is.
        (*header).magic.store(F::MAGIC, Ordering::Release);
    }
}

/// Reads an existing object's header, lets `expect` refuse its settings
/// or payload (a joiner's expectations), and lays it out.
fn read_layout<F: Format>(
    handle: sys::Handle,
    name: Name,
    op: Operation,
    expect: impl FnOnce(&F::Settings, &F::Payload) -> std::result::Result<(), String>,
) -> Result<Opened<F>> {
    let kind = F::KIND;
    let incompatible =
        |why: String| Error::new(op, kind, name.given(), ErrorKind::Incompatible).with_detail(why);
    let header_len = std::mem::size_of::<Header<F::Settings, F::Payload>>();
    if handle.size() < header_len as u64 {
        return Err(incompatible(format!(
            "it is {} bytes, too small for a {kind} header",
            handle.size()
        )));
    }
    let map = handle
        .map(0, header_len, false)
        .map_err(|e| e.reframe(op))?;
    let header = map.as_ptr().cast::<Header<F::Settings, F::Payload>>();
    // SAFETY: the mapping holds a whole header, page-aligned; the magic is
    // an atomic, read atomically.
    let magic = unsafe { &(*header).magic };
    if let Err(why) = await_magic(magic, F::MAGIC, kind) {
        // Where objects carry no kind of their own (Windows sections),
        // another messaging object shows by its magic.
        let found = magic.load(Ordering::Relaxed);
        if let Some(&(_, what)) = KINDS.iter().find(|&&(m, _)| m == found) {
            return Err(Error::new(op, kind, name.given(), ErrorKind::WrongKind)
                .with_detail(format!("it is {what}")));
        }
        return Err(incompatible(why));
    }
    // SAFETY: after the magic, the header's plain fields are written and
    // never change again; read them by copy.
    let (version, settings, payload) = unsafe {
        (
            std::ptr::addr_of!((*header).version).read(),
            std::ptr::addr_of!((*header).settings).read(),
            std::ptr::addr_of!((*header).payload).read(),
        )
    };
    if version != F::VERSION {
        return Err(incompatible(format!(
            "its layout is version {version}; this memlink reads version {}",
            F::VERSION
        )));
    }
    expect(&settings, &payload).map_err(incompatible)?;
    let layout = F::Layout::lay_out(settings, &payload, name.given(), op)
        .map_err(|e| incompatible(format!("its settings are unusable ({e})")))?;
    if handle.size() < layout.total() {
        return Err(incompatible(format!(
            "it is {} bytes, its settings need {}",
            handle.size(),
            layout.total()
        )));
    }
    drop(map);
    Ok(Opened {
        handle,
        name,
        layout,
        payload,
    })
}

/// Waits (a bounded while) for the creator's Release store of `expected`
/// in `magic`; `Err` says why the object is not a usable `kind`.
fn await_magic(
    magic: &AtomicU64,
    expected: u64,
    kind: ObjectKind,
) -> std::result::Result<(), String> {
    let deadline = Instant::now() + SETUP_WAIT;
    loop {
        // Acquire: pairs with the creator's Release store of the magic.
        match magic.load(Ordering::Acquire) {
            m if m == expected => return Ok(()),
            0 if Instant::now() < deadline => std::thread::yield_now(),
            0 => {
                return Err(
                    "its creator never finished setting it up (it may have died doing so)".into(),
                )
            }
            other => {
                return Err(format!(
                    "it is not a memlink {kind} (its first word is {other:#018x})"
                ))
            }
        }
    }
}
