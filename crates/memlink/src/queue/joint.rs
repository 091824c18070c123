//! Joining a queue: making or opening its region, checking that it is the
//! queue the caller expects, claiming a participant place; and what every
//! participant does for the others: waking them, and reaping the places of
//! consumers that died.

use std::sync::atomic::Ordering;

use super::layout::{
    cell, Control, Header, Layout, PayloadType, Settings, ACTIVE, FREE, MAGIC, VERSION,
};
use super::{OnConsumerDeath, QueueOptions, KIND};
use crate::error::{Error, ErrorKind, Operation, Result};
use crate::messaging::{self, Bells};
use crate::name::Name;
use crate::sys;
use crate::sys::CreateSpec;
use crate::types::{Access, Lifetime};

/// Which kind of participant a place is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Producer,
    Consumer,
}

/// What a new participant gets from [`Queue::join`].
pub(super) struct Joined {
    pub(super) queue: Queue,
    pub(super) index: u32,
    pub(super) claim: sys::Claim,
    pub(super) data: sys::Mapping,
    pub(super) doorbell: sys::Doorbell,
}

/// One participant's connection to a queue: its own handle (so its own
/// claim and liveness), the control part mapped, and the doorbells of the
/// others it has rung.
///
/// A handle may claim a place it already holds (Linux's OFD locks do not
/// conflict with their own), so a participant never reaps its own place
/// through [`Queue::reap_dead_consumers`].
pub(super) struct Queue {
    pub(super) control: Control,
    // Dropped after `control`, which points into it.
    _control_map: sys::Mapping,
    pub(super) handle: sys::Handle,
    pub(super) name: Name,
    bells: Bells,
}

impl Queue {
    fn connect(name: &str, options: &QueueOptions, payload: PayloadType) -> Result<Queue> {
        let op = Operation::Connect;
        let parsed = Name::parse(name, op, KIND)?;
        sys::messaging_supported(&parsed)?;
        let settings = options.resolve(&payload);
        let layout = Layout::new(settings, &payload, name, op)?;
        let spec = CreateSpec {
            size: layout.total,
            lifetime: Lifetime::LastHandle,
            mode: options.mode,
            reserve: true,
        };
        let mut init = |mapping: &sys::Mapping| {
            write_header(mapping, &layout, &payload);
            Ok(())
        };
        let (handle, created) = messaging::create_or_open(&parsed, KIND, &spec, &mut init)?;
        let layout = if created {
            layout
        } else {
            read_layout(&handle, &parsed, Some((options, &payload)))?
        };
        let map = handle
            .map(0, layout.data as usize, true)
            .map_err(|e| e.reframe(op))?;
        // SAFETY: the mapping covers the control part (`layout.data` bytes),
        // starts at offset 0 (page-aligned), and is kept in the same struct,
        // dropped after `control`.
        let control = unsafe { Control::new(map.as_ptr(), layout) };
        Ok(Queue {
            control,
            _control_map: map,
            handle,
            name: parsed,
            bells: Bells::default(),
        })
    }

    /// Connects as a `role` participant: makes or opens the queue, reaps
    /// dead consumers (their messages follow the queue's rule now, not when
    /// someone idles), claims a place and maps the data the role uses: the
    /// producer its own partition, writable; the consumer all of it,
    /// read-only.
    pub(super) fn join(
        name: &str,
        options: &QueueOptions,
        payload: PayloadType,
        role: Role,
    ) -> Result<Joined> {
        let queue = Queue::connect(name, options, payload)?;
        queue.reap_dead_consumers(None)?;
        let s = queue.layout().settings;
        let (count, what) = match role {
            Role::Producer => (s.max_producers, "producer"),
            Role::Consumer => (s.max_consumers, "consumer"),
        };
        let Some((index, claim)) =
            messaging::claim_first(&queue.handle, queue.place(role, 0), count)?
        else {
            return Err(queue
                .error(Operation::Connect, ErrorKind::LimitReached)
                .with_detail(format!(
                    "all {count} {what} places are taken (a setting of the queue: max_{what}s)"
                )));
        };
        if role == Role::Consumer {
            // What a dead holder of this place left follows the rule: the
            // place is ours, so it is dead.
            queue.settle_consumer(index);
        }
        let l = queue.layout();
        let (offset, len, writable) = match role {
            Role::Producer => (l.data + l.partition(index), l.partition_size, true),
            Role::Consumer => (
                l.data,
                l.partition_size * u64::from(l.settings.max_producers),
                false,
            ),
        };
        let data = queue
            .handle
            .map(offset, len as usize, writable)
            .map_err(|e| e.reframe(Operation::Connect))?;
        let doorbell = sys::Doorbell::new(&queue.handle, queue.place(role, index))?;
        Ok(Joined {
            queue,
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
            Role::Producer => index,
            Role::Consumer => self.layout().settings.max_producers + index,
        }
    }

    /// Wakes one sleeping consumer, if any sleeps: each message needs one.
    pub(super) fn wake_a_consumer(&self) {
        let c = &self.control;
        let l = self.layout();
        let places = u64::from(l.settings.max_consumers);
        for w in 0..l.words {
            // SeqCst: pairs with the consumer's SeqCst bit set and re-check
            // of the cells (see `Consumer::arm`), against the SeqCst store of
            // the cell made READY before this call: either the consumer sees
            // the cell, or this load sees its bit.
            let mut bits = c.sleepers(w).load(Ordering::SeqCst) & messaging::valid_bits(places, w);
            while bits != 0 {
                let bit = bits & bits.wrapping_neg();
                // Claims this wake-up, so that two senders wake two
                // consumers, not one twice.
                if c.sleepers(w).fetch_and(!bit, Ordering::AcqRel) & bit != 0 {
                    let i = (w * 64) as u32 + bit.trailing_zeros();
                    self.ring(Role::Consumer, i);
                    return;
                }
                bits &= !bit;
            }
        }
    }

    /// Wakes producer `p` if it waits for room.
    pub(super) fn wake_producer(&self, p: u32) {
        let counters = self.control.counters();
        let bit = 1u64 << p;
        // SeqCst: pairs with the producer's SeqCst bit set and re-check of
        // its cell, against the SeqCst store that freed a cell before.
        if counters.space_sleepers.load(Ordering::SeqCst) & bit == 0 {
            return;
        }
        if counters.space_sleepers.fetch_and(!bit, Ordering::AcqRel) & bit != 0 {
            self.ring(Role::Producer, p);
        }
    }

    fn ring(&self, role: Role, index: u32) {
        let c = &self.control;
        let bell = match role {
            Role::Producer => &c.producer(index).bell,
            Role::Consumer => &c.consumer(index).bell,
        };
        self.bells.ring(&self.handle, self.place(role, index), bell);
    }

    /// Applies the queue's rule to every message consumer `i` holds, and
    /// frees its place's entry. The caller holds place `i`'s claim, so
    /// consumer `i` is dead, or is the caller itself before it starts.
    pub(super) fn settle_consumer(&self, i: u32) {
        let c = &self.control;
        let l = self.layout();
        let redeliver = l.settings.on_consumer_death == 0;
        let (w, bit) = messaging::bit_of(i);
        c.sleepers(w).fetch_and(!bit, Ordering::Relaxed);
        for p in 0..l.settings.max_producers {
            for k in 0..l.capacity() {
                let cell = c.cell(p, k);
                // Acquire: pairs with the consumer's AcqRel take, so the
                // word read is the one it wrote.
                let word = cell.load(Ordering::Acquire);
                if cell::state(word) != cell::TAKEN || cell::holder(word) != i {
                    continue;
                }
                let next = if redeliver {
                    cell::with_state(word, cell::READY) | cell::REDELIVERED
                } else {
                    cell::with_state(word, cell::FREE)
                };
                // Nobody else writes a cell TAKEN by `i` while we hold its
                // place, but a CAS keeps a stray word from being counted.
                // SeqCst: as the sends and acknowledgements it stands for
                // (it pairs with sleepers' bit sets; see `wake_a_consumer`,
                // `wake_producer`).
                if cell
                    .compare_exchange(word, next, Ordering::SeqCst, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                let counters = c.counters();
                if redeliver {
                    counters.redelivered.fetch_add(1, Ordering::Relaxed);
                    self.wake_a_consumer();
                } else {
                    counters.lost.fetch_add(1, Ordering::Relaxed);
                    self.wake_producer(p);
                }
            }
        }
        // Release: a reaper's Acquire load of FREE sees the cells settled.
        c.consumer(i).state.store(FREE, Ordering::Release);
    }

    /// Settles the places of consumers that died (see [`settle_consumer`]).
    /// Returns how many were found.
    ///
    /// [`settle_consumer`]: Queue::settle_consumer
    /// `own` is the caller's own consumer place, never reaped: its handle
    /// could claim it again.
    pub(super) fn reap_dead_consumers(&self, own: Option<u32>) -> Result<usize> {
        let mut reaped = 0;
        for i in 0..self.layout().settings.max_consumers {
            if Some(i) == own {
                continue;
            }
            // Acquire: pairs with the consumer's Release store of ACTIVE.
            if self.control.consumer(i).state.load(Ordering::Acquire) != ACTIVE {
                continue;
            }
            let place = self.place(Role::Consumer, i);
            // The look is one call; the claim that proves death takes more.
            if self.handle.is_claimed(place)? {
                continue;
            }
            // Held while settling, so no new consumer takes the place (and
            // cells under its index) meanwhile.
            if let Some(_claim) = self.handle.claim(place)? {
                self.settle_consumer(i);
                reaped += 1;
            }
        }
        Ok(reaped)
    }

    /// Who holds the places: `(index, pid)` of each live participant of
    /// `role`.
    pub(super) fn participants(&self, role: Role) -> Result<Vec<(u32, u32)>> {
        participants(&self.control, &self.handle, role)
    }
}

fn participants(control: &Control, handle: &sys::Handle, role: Role) -> Result<Vec<(u32, u32)>> {
    let s = control.layout().settings;
    let (count, base) = match role {
        Role::Producer => (s.max_producers, 0),
        Role::Consumer => (s.max_consumers, s.max_producers),
    };
    let mut live = Vec::new();
    for index in 0..count {
        // Acquire: pairs with the holder's Release store of ACTIVE.
        let (state, pid) = match role {
            Role::Producer => {
                let e = control.producer(index);
                (
                    e.state.load(Ordering::Acquire),
                    e.pid.load(Ordering::Relaxed),
                )
            }
            Role::Consumer => {
                let e = control.consumer(index);
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

/// The creator's set-up: the header, then the magic that says it is done.
fn write_header(mapping: &sys::Mapping, layout: &Layout, payload: &PayloadType) {
    let header = mapping.as_ptr().cast::<Header>();
    // SAFETY: the mapping is the whole new object (at least the header's
    // size, page-aligned, so aligned for Header) and nobody else uses it
    // yet: on Linux it has no name; on Windows joiners wait for the magic,
    // which is stored last, before they read anything else.
    unsafe {
        std::ptr::addr_of_mut!((*header).version).write(VERSION);
        std::ptr::addr_of_mut!((*header).header_size).write(std::mem::size_of::<Header>() as u32);
        std::ptr::addr_of_mut!((*header).settings).write(layout.settings);
        std::ptr::addr_of_mut!((*header).payload).write(*payload);
        // Release: pairs with the joiner's Acquire load of the magic.
        (*header).magic.store(MAGIC, Ordering::Release);
    }
}

/// Reads a queue's header and lays it out. With `expected`, checks it
/// against what a joiner asked for.
fn read_layout(
    handle: &sys::Handle,
    name: &Name,
    expected: Option<(&QueueOptions, &PayloadType)>,
) -> Result<Layout> {
    let op = if expected.is_some() {
        Operation::Connect
    } else {
        Operation::Inspect
    };
    let incompatible =
        |why: String| Error::new(op, KIND, name.given(), ErrorKind::Incompatible).with_detail(why);
    let header_len = std::mem::size_of::<Header>();
    if handle.size() < header_len as u64 {
        return Err(incompatible(format!(
            "it is {} bytes, too small for a queue header",
            handle.size()
        )));
    }
    let map = handle
        .map(0, header_len, false)
        .map_err(|e| e.reframe(op))?;
    let header = map.as_ptr().cast::<Header>();
    // SAFETY: the mapping holds a whole Header, page-aligned; the magic is
    // an atomic, read atomically.
    let magic = unsafe { &(*header).magic };
    if let Err(why) = messaging::await_magic(magic, MAGIC, "queue") {
        // Where objects carry no kind (Windows sections), another
        // messaging object shows by its magic.
        if magic.load(Ordering::Relaxed) == crate::pubsub::MAGIC {
            return Err(Error::new(op, KIND, name.given(), ErrorKind::WrongKind)
                .with_detail("it is a pub/sub service"));
        }
        if magic.load(Ordering::Relaxed) == crate::reqresp::MAGIC {
            return Err(Error::new(op, KIND, name.given(), ErrorKind::WrongKind)
                .with_detail("it is a request/response service"));
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
    if version != VERSION {
        return Err(incompatible(format!(
            "its layout is version {version}; this memlink reads version {VERSION}"
        )));
    }
    if let Some((options, wanted)) = expected {
        if payload != *wanted && !options.any_payload {
            return Err(incompatible(format!(
                "the payload type here is {wanted}, the queue carries {payload}"
            )));
        }
        options.check(&settings, &payload).map_err(incompatible)?;
    }
    let layout = Layout::new(settings, &payload, name.given(), op)
        .map_err(|e| incompatible(format!("its settings are unusable ({e})")))?;
    if handle.size() < layout.total {
        return Err(incompatible(format!(
            "it is {} bytes, its settings need {}",
            handle.size(),
            layout.total
        )));
    }
    Ok(layout)
}

/// What [`inspect_queue`] found out about a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueInfo {
    /// The queue's name.
    pub name: String,
    /// The payload type, as the creator's compiler named it.
    pub payload_type: String,
    /// Size of the payload type (of one element, for slices), in bytes.
    pub payload_size: u64,
    /// The largest message in bytes.
    pub max_payload: u64,
    /// Whether messages are slices.
    pub slices: bool,
    /// The queue's limits.
    pub max_producers: u32,
    /// The queue's limits.
    pub max_consumers: u32,
    /// Unfinished messages each producer may have.
    pub capacity: u32,
    /// What happens to the messages of a consumer that dies.
    pub on_consumer_death: OnConsumerDeath,
    /// Messages waiting for a consumer now.
    pub waiting: u64,
    /// Messages consumers hold now (taken, not yet acknowledged).
    pub in_progress: u64,
    /// Messages given to another consumer after theirs died.
    pub redelivered: u64,
    /// Messages dropped because their consumer died.
    pub lost: u64,
    /// The live producers.
    pub producers: Vec<QueueParticipant>,
    /// The live consumers.
    pub consumers: Vec<QueueParticipant>,
}

/// One live participant of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueParticipant {
    /// Its place in the queue.
    pub index: u32,
    /// Its process (informational: liveness comes from the kernel).
    pub pid: u32,
    /// Messages sent (producers) or taken (consumers).
    pub messages: u64,
    /// Messages acknowledged (consumers).
    pub done: u64,
}

/// Looks at a queue without joining it: its settings, its live
/// participants and its counters.
///
/// ```
/// use memlink::queue::{inspect_queue, Consumer, Producer};
/// # let name = format!("memlink-doc-inspect-queue-{}", std::process::id());
/// let producer = Producer::<u64>::connect(&name)?;
/// let consumer = Consumer::<u64>::connect(&name)?;
/// producer.send_copy(&7)?;
/// assert_eq!(inspect_queue(&name)?.waiting, 1);
/// consumer.try_recv()?.expect("sent above").done();
/// let info = inspect_queue(&name)?;
/// assert_eq!((info.waiting, info.consumers[0].done), (0, 1));
/// # Ok::<(), memlink::Error>(())
/// ```
pub fn inspect_queue(name: &str) -> Result<QueueInfo> {
    let op = Operation::Inspect;
    let parsed = Name::parse(name, op, KIND)?;
    sys::messaging_supported(&parsed)?;
    let handle = sys::Handle::open(&parsed, KIND, Access::ReadOnly).map_err(|e| e.reframe(op))?;
    let layout = read_layout(&handle, &parsed, None)?;
    let map = handle.map(0, layout.data as usize, false)?;
    // SAFETY: as in `Queue::connect`; only loads are made through it, as the
    // mapping is read-only.
    let control = unsafe { Control::new(map.as_ptr(), layout) };
    // SAFETY: written before the magic (which `read_layout` saw) and never
    // changed after.
    let payload = unsafe { std::ptr::addr_of!(control.header().payload).read() };
    let s = layout.settings;
    let (mut waiting, mut in_progress) = (0, 0);
    for p in 0..s.max_producers {
        for k in 0..layout.capacity() {
            match cell::state(control.cell(p, k).load(Ordering::Relaxed)) {
                cell::READY => waiting += 1,
                cell::TAKEN => in_progress += 1,
                _ => {}
            }
        }
    }
    let producers = participants(&control, &handle, Role::Producer)?
        .into_iter()
        .map(|(index, pid)| QueueParticipant {
            index,
            pid,
            messages: control.producer(index).sent.load(Ordering::Relaxed),
            done: 0,
        })
        .collect();
    let consumers = participants(&control, &handle, Role::Consumer)?
        .into_iter()
        .map(|(index, pid)| {
            let e = control.consumer(index);
            QueueParticipant {
                index,
                pid,
                messages: e.taken.load(Ordering::Relaxed),
                done: e.done.load(Ordering::Relaxed),
            }
        })
        .collect();
    let counters = control.counters();
    Ok(QueueInfo {
        name: name.to_owned(),
        payload_type: payload.type_name().to_owned(),
        payload_size: payload.size,
        max_payload: s.max_payload,
        slices: payload.slice == 1,
        max_producers: s.max_producers,
        max_consumers: s.max_consumers,
        capacity: s.capacity,
        on_consumer_death: if s.on_consumer_death == 1 {
            OnConsumerDeath::CountLost
        } else {
            OnConsumerDeath::Redeliver
        },
        waiting,
        in_progress,
        redelivered: counters.redelivered.load(Ordering::Relaxed),
        lost: counters.lost.load(Ordering::Relaxed),
        producers,
        consumers,
    })
}

impl QueueOptions {
    /// The settings a new queue gets: the caller's, defaults for the rest.
    pub(super) fn resolve(&self, payload: &PayloadType) -> Settings {
        Settings {
            max_producers: self.max_producers.unwrap_or(super::DEFAULT_PRODUCERS),
            max_consumers: self.max_consumers.unwrap_or(super::DEFAULT_CONSUMERS),
            capacity: self.capacity.unwrap_or(super::DEFAULT_CAPACITY),
            on_consumer_death: match self.on_consumer_death.unwrap_or_default() {
                OnConsumerDeath::Redeliver => 0,
                OnConsumerDeath::CountLost => 1,
            },
            max_payload: payload.max_payload(self.max_slice_len, super::DEFAULT_SLICE_BYTES),
        }
    }

    /// Compares the settings the caller chose with an existing queue's;
    /// the error says both values.
    fn check(&self, existing: &Settings, payload: &PayloadType) -> std::result::Result<(), String> {
        let asked = self.resolve(payload);
        let word = |rule: u32| if rule == 1 { "count-lost" } else { "redeliver" };
        let chosen = [
            (
                "max_producers",
                self.max_producers.is_some(),
                asked.max_producers,
                existing.max_producers,
            ),
            (
                "max_consumers",
                self.max_consumers.is_some(),
                asked.max_consumers,
                existing.max_consumers,
            ),
            (
                "capacity",
                self.capacity.is_some(),
                asked.capacity,
                existing.capacity,
            ),
        ];
        let mut diffs: Vec<String> = chosen
            .into_iter()
            .filter(|&(_, chosen, mine, theirs)| chosen && mine != theirs)
            .map(|(what, _, mine, theirs)| format!("{what} {mine} here, {theirs} in the queue"))
            .collect();
        if self.on_consumer_death.is_some() && asked.on_consumer_death != existing.on_consumer_death
        {
            diffs.push(format!(
                "on_consumer_death {} here, {} in the queue",
                word(asked.on_consumer_death),
                word(existing.on_consumer_death)
            ));
        }
        if self.max_slice_len.is_some() && asked.max_payload != existing.max_payload {
            diffs.push(format!(
                "largest payload {} bytes here, {} in the queue",
                asked.max_payload, existing.max_payload
            ));
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(diffs.join("; "))
        }
    }
}
