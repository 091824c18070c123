//! Joining a service: making or opening its region, checking that it is
//! the service the caller expects, and claiming a participant place.

use std::sync::atomic::Ordering;

use super::layout::{
    Control, Layout, PayloadType, Settings, ACTIVE, FLAG_BRIDGE, FREE, MAGIC, MAX_HEAD, VERSION,
};
use super::{Overflow, ServiceOptions};
use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::messaging::{self, Format, Opened};
use crate::name::Name;
use crate::sys;

const KIND: ObjectKind = ObjectKind::Service;

/// Which kind of participant a place is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Publisher,
    Subscriber,
}

/// The doorbells of the other role's places, opened when first rung. The
/// lock is taken only to ring, which happens only when someone sleeps.
#[derive(Default)]
pub(super) struct Bells(crate::messaging::Bells);

impl Bells {
    /// Wakes whoever sleeps on place `index` of `role` through its
    /// doorbell (which bumps the place's bell count first; see
    /// `sys::Doorbell::ring`).
    pub(super) fn ring(&self, service: &Service, role: Role, index: u32) {
        let c = &service.control;
        let bell = match role {
            Role::Publisher => &c.publisher(index).bell,
            Role::Subscriber => &c.subscriber(index).bell,
        };
        self.0
            .ring(&service.handle, service.place(role, index), bell);
    }
}

/// What a new participant gets from [`Service::join`].
pub(super) struct Joined {
    pub(super) service: Service,
    /// The participant's place among those of its role.
    pub(super) index: u32,
    pub(super) claim: sys::Claim,
    pub(super) data: sys::Mapping,
    pub(super) doorbell: sys::Doorbell,
}

/// One participant's connection to a service: its own handle (so its own
/// claim and liveness) and the control part mapped.
///
/// A handle may claim a place it already holds (Linux's OFD locks do not
/// conflict with their own), so a participant only ever looks at or claims
/// places of the other role once it holds its own: publishers reap dead
/// subscribers, subscribers reap before they claim.
pub(super) struct Service {
    pub(super) control: Control,
    pub(super) handle: sys::Handle,
    pub(super) name: Name,
}

impl Service {
    /// Makes the service or joins it, checking the payload type and every
    /// setting the caller chose explicitly.
    pub(super) fn connect(
        name: &str,
        options: &ServiceOptions,
        payload: PayloadType,
    ) -> Result<Service> {
        let opened = messaging::connect(name, options, payload)?;
        Service::map(opened.handle, opened.name, opened.layout)
    }

    fn map(handle: sys::Handle, name: Name, layout: Layout) -> Result<Service> {
        let control = Control::map(&handle, layout, true, Operation::Connect)?;
        Ok(Service {
            control,
            handle,
            name,
        })
    }

    /// Connects as a `role` participant: makes or opens the service,
    /// reaps dead subscribers (what they held comes back now, not when the
    /// pool runs dry), claims a place and maps the data the role uses: the
    /// publisher its own partition, writable; the subscriber all of it,
    /// read-only.
    pub(super) fn join(
        name: &str,
        options: &ServiceOptions,
        payload: PayloadType,
        role: Role,
    ) -> Result<Joined> {
        let service = Service::connect(name, options, payload)?;
        service.reap_dead_subscribers()?;
        let (index, claim) = service.claim_place(role)?;
        // Relaxed: published with the entry's ACTIVE store, and before any
        // sample this participant sends (whose ring entry is a SeqCst store
        // that subscribers load with Acquire before they read the flags).
        // The flags are this participant's own from the start, never the
        // previous holder's. The place's previous holder may have died
        // listening: its count of async waiters is not ours.
        let (flags, bell) = match role {
            Role::Publisher => {
                let e = service.control.publisher(index);
                (&e.flags, &e.bell)
            }
            Role::Subscriber => {
                let e = service.control.subscriber(index);
                (&e.flags, &e.bell)
            }
        };
        flags.store(options.participant_flags, Ordering::Relaxed);
        bell.listening.store(0, Ordering::Relaxed);
        let l = service.layout();
        let (offset, len, writable) = match role {
            Role::Publisher => (l.data + l.partition(index), l.partition_size, true),
            Role::Subscriber => (
                l.data,
                l.partition_size * u64::from(l.settings.max_publishers),
                false,
            ),
        };
        let data = service
            .handle
            .map(offset, len as usize, writable)
            .map_err(|e| e.reframe(Operation::Connect))?;
        let doorbell = sys::Doorbell::new(&service.handle, service.place(role, index))?;
        Ok(Joined {
            service,
            index,
            claim,
            data,
            doorbell,
        })
    }

    pub(super) fn layout(&self) -> &Layout {
        self.control.layout()
    }

    pub(super) fn error(&self, op: Operation, kind: ErrorKind) -> Error {
        Error::new(op, KIND, self.name.given(), kind)
    }

    /// The lock index of place `index` of `role`.
    pub(super) fn place(&self, role: Role, index: u32) -> u32 {
        match role {
            Role::Publisher => index,
            Role::Subscriber => self.layout().settings.max_publishers + index,
        }
    }

    /// Claims a free place for `role`; the index within the role's places.
    pub(super) fn claim_place(&self, role: Role) -> Result<(u32, sys::Claim)> {
        let s = &self.layout().settings;
        let (count, what) = match role {
            Role::Publisher => (s.max_publishers, "publisher"),
            Role::Subscriber => (s.max_subscribers, "subscriber"),
        };
        if let Some(claimed) = messaging::claim_first(&self.handle, self.place(role, 0), count)? {
            return Ok(claimed);
        }
        Err(self
            .error(Operation::Connect, ErrorKind::LimitReached)
            .with_detail(format!(
                "all {count} {what} places are taken (a setting of the service: max_{what}s)"
            )))
    }

    /// Clears what subscriber `i` left: its holder bits on every slot and
    /// its sleeping bit. The caller holds place `i`'s claim, so subscriber
    /// `i` is dead or is the caller itself, before it starts.
    pub(super) fn clear_subscriber(&self, i: u32) {
        let c = &self.control;
        let l = self.layout();
        let (w, bit) = (u64::from(i) / 64, 1u64 << (i % 64));
        for p in 0..l.settings.max_publishers {
            for slot in 0..l.slots {
                // Release: pairs with the publisher's SeqCst load of the
                // holders before it reuses the slot.
                c.holders(p, slot, w).fetch_and(!bit, Ordering::Release);
            }
        }
        c.sleepers(w).fetch_and(!bit, Ordering::Relaxed);
        // Release: a reaper's Acquire load of FREE sees the cleared bits.
        c.subscriber(i).state.store(FREE, Ordering::Release);
    }

    /// Frees the places of subscribers that died, so their slots and their
    /// place in the flow control come back. Returns how many were found.
    pub(super) fn reap_dead_subscribers(&self) -> Result<usize> {
        let mut reaped = 0;
        for i in 0..self.layout().settings.max_subscribers {
            // Acquire: pairs with the subscriber's Release store of ACTIVE,
            // so a live one's entry is not mistaken for a free one.
            if self.control.subscriber(i).state.load(Ordering::Acquire) != ACTIVE {
                continue;
            }
            let place = self.place(Role::Subscriber, i);
            // The look is one call; the claim that proves death takes more.
            if self.handle.is_claimed(place)? {
                continue;
            }
            if let Some(_claim) = self.handle.claim(place)? {
                self.clear_subscriber(i);
                reaped += 1;
            }
        }
        Ok(reaped)
    }

    /// The head of publisher place `p`, refused when it is out of reach of
    /// any real publisher (someone wrote over the service).
    pub(super) fn head(&self, p: u32) -> Result<u64> {
        // Acquire: pairs with the publisher's Release store of its head.
        let head = self.control.publisher(p).head.load(Ordering::Acquire);
        if head > MAX_HEAD {
            return Err(self
                .error(Operation::Connect, ErrorKind::Incompatible)
                .with_detail(format!(
                    "publisher place {p} says it sent {head} samples: the service is corrupted"
                )));
        }
        Ok(head)
    }

    /// Who holds the places: `(index, pid)` of each live participant of
    /// `role`.
    pub(super) fn participants(&self, role: Role) -> Result<Vec<(u32, u32)>> {
        participants(&self.control, &self.handle, role)
    }
}

fn participants(control: &Control, handle: &sys::Handle, role: Role) -> Result<Vec<(u32, u32)>> {
    let s = control.layout().settings;
    let mut live = Vec::new();
    let (count, base) = match role {
        Role::Publisher => (s.max_publishers, 0),
        Role::Subscriber => (s.max_subscribers, s.max_publishers),
    };
    for index in 0..count {
        let (state, pid) = match role {
            Role::Publisher => {
                let e = control.publisher(index);
                (
                    e.state.load(Ordering::Acquire),
                    e.pid.load(Ordering::Relaxed),
                )
            }
            Role::Subscriber => {
                let e = control.subscriber(index);
                (
                    e.state.load(Ordering::Acquire),
                    e.pid.load(Ordering::Relaxed),
                )
            }
        };
        if state == ACTIVE && handle.is_claimed(base + index)? {
            live.push((index, pid));
        }
    }
    Ok(live)
}

/// What [`inspect_service`] found out about a service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceInfo {
    /// The service's name.
    pub name: String,
    /// The payload type, as the creator's compiler named it, and whether
    /// samples are slices of it.
    pub payload_type: String,
    /// Size of the payload type (of one element, for slices), in bytes.
    pub payload_size: u64,
    /// The largest sample in bytes.
    pub max_payload: u64,
    /// Whether samples are slices.
    pub slices: bool,
    /// The service's limits.
    pub max_publishers: u32,
    /// The service's limits.
    pub max_subscribers: u32,
    /// Samples kept per publisher.
    pub capacity: u32,
    /// Samples a late subscriber receives.
    pub history: u32,
    /// What happens to a slow subscriber.
    pub overflow: Overflow,
    /// Slots in the pool, over all publishers.
    pub slots: u64,
    /// Slots held by subscribers now.
    pub slots_held: u64,
    /// The live publishers.
    pub publishers: Vec<ParticipantInfo>,
    /// The live subscribers.
    pub subscribers: Vec<ParticipantInfo>,
}

/// One live participant of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParticipantInfo {
    /// Its place in the service.
    pub index: u32,
    /// Its process (informational: liveness comes from the kernel, not
    /// from the pid).
    pub pid: u32,
    /// Samples sent (publishers) or received (subscribers).
    pub samples: u64,
    /// Samples a subscriber missed because the publisher overwrote them.
    pub missed: u64,
    /// Whether its sleeping mark is set: it waits (or a waiter left the
    /// mark for a peer to clear with a needless ring).
    pub sleeping: bool,
    /// How many async tasks of its process wait through its pollable
    /// doorbell now.
    pub listening: u32,
    /// Whether it is a bridge to another machine (`memlink-bridge`):
    /// a bridge's publisher sends what came from the network, its
    /// subscriber sends what local publishers send to the network.
    pub bridge: bool,
}

/// Looks at a service without joining it: its settings, its live
/// participants and its counters.
///
/// ```
/// use memlink::pubsub::{inspect_service, Publisher};
/// # let name = format!("memlink-doc-inspect-{}", std::process::id());
/// let publisher = Publisher::<u64>::connect(&name)?;
/// publisher.send_copy(&7)?;
/// let info = inspect_service(&name)?;
/// assert_eq!(info.publishers.len(), 1);
/// assert_eq!(info.publishers[0].samples, 1);
/// # Ok::<(), memlink::Error>(())
/// ```
pub fn inspect_service(name: &str) -> Result<ServiceInfo> {
    let Opened {
        handle,
        layout,
        payload,
        ..
    } = messaging::inspect::<ServiceOptions>(name)?;
    let control = Control::map(&handle, layout, false, Operation::Inspect)?;
    let s = layout.settings;
    let mut slots_held = 0;
    for p in 0..s.max_publishers {
        for slot in 0..layout.slots {
            if (0..layout.words).any(|w| control.holders(p, slot, w).load(Ordering::Relaxed) != 0) {
                slots_held += 1;
            }
        }
    }
    let publishers = participants(&control, &handle, Role::Publisher)?
        .into_iter()
        .map(|(index, pid)| {
            let e = control.publisher(index);
            ParticipantInfo {
                index,
                pid,
                samples: e.sent.load(Ordering::Relaxed),
                missed: 0,
                sleeping: control.space_sleepers().load(Ordering::Relaxed) & (1 << index) != 0,
                listening: e.bell.listening.load(Ordering::Relaxed),
                bridge: e.flags.load(Ordering::Relaxed) & FLAG_BRIDGE != 0,
            }
        })
        .collect();
    let subscribers = participants(&control, &handle, Role::Subscriber)?
        .into_iter()
        .map(|(index, pid)| {
            let e = control.subscriber(index);
            let (w, bit) = super::bit_of(index);
            ParticipantInfo {
                index,
                pid,
                samples: e.received.load(Ordering::Relaxed),
                missed: e.missed.load(Ordering::Relaxed),
                sleeping: control.sleepers(w).load(Ordering::Relaxed) & bit != 0,
                listening: e.bell.listening.load(Ordering::Relaxed),
                bridge: e.flags.load(Ordering::Relaxed) & FLAG_BRIDGE != 0,
            }
        })
        .collect();
    Ok(ServiceInfo {
        name: name.to_owned(),
        payload_type: payload.type_name().to_owned(),
        payload_size: payload.size,
        max_payload: s.max_payload,
        slices: payload.slice == 1,
        max_publishers: s.max_publishers,
        max_subscribers: s.max_subscribers,
        capacity: s.capacity,
        history: s.history,
        overflow: if s.overflow == 1 {
            Overflow::Block
        } else {
            Overflow::Overwrite
        },
        slots: layout.slots * u64::from(s.max_publishers),
        slots_held,
        publishers,
        subscribers,
    })
}

impl Format for ServiceOptions {
    const KIND: ObjectKind = KIND;
    const MAGIC: u64 = MAGIC;
    const VERSION: u32 = VERSION;
    type Settings = Settings;
    type Payload = PayloadType;
    type Layout = Layout;

    fn any_payload(&self) -> bool {
        self.any_payload
    }

    fn mode(&self) -> u32 {
        self.mode
    }

    /// The settings a new service gets: the caller's, defaults for the rest.
    fn resolve(&self, payload: &PayloadType) -> Settings {
        let max_payload = payload.max_payload(self.max_slice_len, super::DEFAULT_SLICE_BYTES);
        Settings {
            max_publishers: self.max_publishers.unwrap_or(super::DEFAULT_PUBLISHERS),
            max_subscribers: self.max_subscribers.unwrap_or(super::DEFAULT_SUBSCRIBERS),
            capacity: self.capacity.unwrap_or(super::DEFAULT_CAPACITY),
            history: self.history.unwrap_or(0),
            max_loans: self.max_loans.unwrap_or(super::DEFAULT_LOANS),
            max_borrowed: self.max_borrowed.unwrap_or(super::DEFAULT_BORROWED),
            overflow: match self.overflow.unwrap_or_default() {
                Overflow::Overwrite => 0,
                Overflow::Block => 1,
            },
            _reserved: 0,
            max_payload,
        }
    }

    /// Compares the settings the caller chose with an existing service's;
    /// the error says both values.
    fn check(&self, existing: &Settings, payload: &PayloadType) -> std::result::Result<(), String> {
        let asked = self.resolve(payload);
        let chosen = [
            (
                "max_publishers",
                self.max_publishers.is_some(),
                asked.max_publishers,
                existing.max_publishers,
            ),
            (
                "max_subscribers",
                self.max_subscribers.is_some(),
                asked.max_subscribers,
                existing.max_subscribers,
            ),
            (
                "capacity",
                self.capacity.is_some(),
                asked.capacity,
                existing.capacity,
            ),
            (
                "history",
                self.history.is_some(),
                asked.history,
                existing.history,
            ),
            (
                "max_loans",
                self.max_loans.is_some(),
                asked.max_loans,
                existing.max_loans,
            ),
            (
                "max_borrowed",
                self.max_borrowed.is_some(),
                asked.max_borrowed,
                existing.max_borrowed,
            ),
        ];
        let mut diffs: Vec<String> = chosen
            .into_iter()
            .filter(|&(_, chosen, mine, theirs)| chosen && mine != theirs)
            .map(|(what, _, mine, theirs)| format!("{what} {mine} here, {theirs} in the service"))
            .collect();
        if self.max_slice_len.is_some() && asked.max_payload != existing.max_payload {
            diffs.push(format!(
                "largest payload {} bytes here, {} in the service",
                asked.max_payload, existing.max_payload
            ));
        }
        if self.overflow.is_some() && asked.overflow != existing.overflow {
            let word = |o: u32| if o == 1 { "block" } else { "overwrite" };
            diffs.push(format!(
                "overflow {} here, {} in the service",
                word(asked.overflow),
                word(existing.overflow)
            ));
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(diffs.join("; "))
        }
    }
}
