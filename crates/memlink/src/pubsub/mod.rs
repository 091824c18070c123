//! Publish/subscribe over named shared memory: zero-copy, crash-safe, with
//! any number of publishers and subscribers per service.
//!
//! A *service* is one memlink object named like a region: a header (magic,
//! layout version, settings, payload type), a table of participant places,
//! a slot pool and one ring per publisher. The first participant makes it,
//! later ones join it, and it lives while some participant holds it, under
//! the same lifetime and crash rules as regions (`memlink ls` shows it as a
//! `service`).
//!
//! ```
//! use memlink::pubsub::{Publisher, Subscriber};
//! # let name = format!("memlink-doc-pubsub-{}", std::process::id());
//!
//! #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
//! #[repr(C)]
//! struct Reading { sensor: u32, value: f32 }
//!
//! // Any process, in any order:
//! let subscriber = Subscriber::<Reading>::connect(&name)?;
//! let publisher = Publisher::<Reading>::connect(&name)?;
//!
//! let mut sample = publisher.loan()?;          // a slot in shared memory
//! *sample = Reading { sensor: 7, value: 21.5 };
//! sample.send()?;                              // published, not copied
//!
//! let received = subscriber.try_recv()?.expect("sent above");
//! assert_eq!(received.sensor, 7);              // read in place, read-only
//! # Ok::<(), memlink::Error>(())
//! ```
//!
//! # How it works
//!
//! Each publisher owns a partition of slots and a ring of `capacity`
//! entries; a send writes the payload into a free slot of its own, then
//! stores `(sequence, slot)` in the ring: O(1), whatever the number of
//! subscribers. Each subscriber keeps its own cursor per publisher, so it
//! receives each publisher's samples in order, and marks the slots it holds
//! with its own bit; a publisher reuses a slot that has left its ring and
//! has no bit set. Every word has one writer (or is a set of bits each
//! owned by one participant), so a dead process leaves only its own words
//! behind: a survivor clears them once the kernel says the process is gone
//! (each participant holds a lock on its place that the kernel drops when
//! it dies). Samples are published by one store after the payload is
//! written, so a publisher killed mid-send leaves either nothing or a
//! whole sample.
//!
//! A waiting subscriber polls briefly (spinning, then yielding the CPU),
//! then sets its sleeping bit, checks again and sleeps in the kernel (a futex on Linux, a named event on
//! Windows); a publisher rings only the subscribers whose bit is set, so a
//! send makes no system call while nobody sleeps.
//!
//! Messaging works on Linux and Windows; on macOS and FreeBSD every call
//! is an [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) error.

mod layout;
mod publisher;
mod service;
mod subscriber;

pub use publisher::{Publisher, SampleMut};
pub use service::{inspect_service, ParticipantInfo, ServiceInfo};
pub use subscriber::{Sample, Subscriber};

pub use crate::messaging::Payload;
use crate::messaging::{bit_of, deadline_after, for_each_bit, payload_type};
pub(crate) use layout::MAGIC;

const DEFAULT_PUBLISHERS: u32 = 8;
const DEFAULT_SUBSCRIBERS: u32 = 64;
const DEFAULT_CAPACITY: u32 = 64;
const DEFAULT_LOANS: u32 = 4;
const DEFAULT_BORROWED: u32 = 2;
const DEFAULT_SLICE_BYTES: u64 = 4096;

/// What a publisher does when a subscriber falls a whole ring behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Overwrite the oldest sample; the subscriber counts what it missed
    /// ([`Subscriber::missed`]). Publishers never wait. The default.
    #[default]
    Overwrite,
    /// Wait until every live subscriber has taken the oldest sample
    /// (backpressure). A subscriber that dies stops counting at once, so a
    /// dead subscriber never blocks a publisher.
    Block,
}

/// The settings of a service, for the participant that makes it, and the
/// expectations of one that joins it.
///
/// A setting chosen here must match the service's when it exists already
/// (an [`ErrorKind::Incompatible`](crate::ErrorKind::Incompatible) error
/// says both values); settings left alone take the service's.
///
/// ```
/// use memlink::pubsub::{Overflow, ServiceOptions};
/// # let name = format!("memlink-doc-options-{}", std::process::id());
/// let options = ServiceOptions::new()
///     .max_subscribers(128)
///     .capacity(16)
///     .history(4)
///     .overflow(Overflow::Block);
/// let publisher = options.publisher::<u64>(&name)?;
/// let subscriber = options.subscriber::<u64>(&name)?;
/// # Ok::<(), memlink::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ServiceOptions {
    max_publishers: Option<u32>,
    max_subscribers: Option<u32>,
    capacity: Option<u32>,
    history: Option<u32>,
    max_loans: Option<u32>,
    max_borrowed: Option<u32>,
    overflow: Option<Overflow>,
    max_slice_len: Option<u64>,
    mode: u32,
    /// Join whatever payload type the service has (byte subscribers of
    /// tools); a new service is made for `[u8]`.
    any_payload: bool,
    /// The marks a participant joining with these options puts in its
    /// entry (`layout::FLAG_BRIDGE`).
    participant_flags: u32,
}

impl ServiceOptions {
    /// The defaults: 8 publishers, 64 subscribers, a capacity of 64
    /// samples per publisher, no history, 4 loans per publisher, 2 samples
    /// held per subscriber, [`Overflow::Overwrite`], slices of up to 4 KiB,
    /// private to the creating user (mode `0o600`).
    pub fn new() -> ServiceOptions {
        ServiceOptions {
            mode: 0o600,
            ..ServiceOptions::default()
        }
    }

    /// How many publishers may be connected at once (1 to 64).
    pub fn max_publishers(mut self, n: u32) -> Self {
        self.max_publishers = Some(n);
        self
    }

    /// How many subscribers may be connected at once (1 to 1024).
    pub fn max_subscribers(mut self, n: u32) -> Self {
        self.max_subscribers = Some(n);
        self
    }

    /// How many samples each publisher keeps published: how far a
    /// subscriber may fall behind before [`Overflow`] applies.
    pub fn capacity(mut self, n: u32) -> Self {
        self.capacity = Some(n);
        self
    }

    /// How many of each publisher's latest samples a new subscriber
    /// receives (at most the capacity; default 0).
    pub fn history(mut self, n: u32) -> Self {
        self.history = Some(n);
        self
    }

    /// How many samples one publisher may have loaned at once.
    pub fn max_loans(mut self, n: u32) -> Self {
        self.max_loans = Some(n);
        self
    }

    /// How many received samples one subscriber may hold at once.
    pub fn max_borrowed(mut self, n: u32) -> Self {
        self.max_borrowed = Some(n);
        self
    }

    /// What happens when a subscriber falls a whole capacity behind.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = Some(overflow);
        self
    }

    /// For slice payloads: the most elements one sample may have.
    pub fn max_slice_len(mut self, n: u64) -> Self {
        self.max_slice_len = Some(n);
        self
    }

    /// Who may join a new service, as Unix permission bits (default
    /// `0o600`). On Linux the wake-ups use the service's own memory, so
    /// this is all; on Windows the doorbells are made with default security.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Marks the participants that join with these options as a bridge
    /// to another machine: samples such a publisher sends came from the
    /// network ([`Sample::from_bridge`]), and inspectors show the
    /// participant as a bridge ([`ParticipantInfo::bridge`]). For
    /// `memlink-bridge`; not part of the stable API.
    #[doc(hidden)]
    pub fn bridge(mut self) -> Self {
        self.participant_flags |= layout::FLAG_BRIDGE;
        self
    }

    /// Connects a publisher of `T` to the service `name`, making the
    /// service if it does not exist.
    pub fn publisher<T: Payload + ?Sized>(&self, name: &str) -> crate::Result<Publisher<T>> {
        Publisher::connect_with(name, self)
    }

    /// Connects a subscriber of `T` to the service `name`, making the
    /// service if it does not exist.
    pub fn subscriber<T: Payload + ?Sized>(&self, name: &str) -> crate::Result<Subscriber<T>> {
        Subscriber::connect_with(name, self)
    }
}
