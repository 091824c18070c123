//! Work queues over named shared memory: each message goes to exactly one
//! of the consumers (the load-balancing pattern of a job queue), with
//! backpressure, and a consumer that dies holding a message does not lose
//! it silently.
//!
//! A *queue* is one memlink object named like a region (`memlink ls` shows
//! it as a `queue`). Any process connects as a [`Producer`] or a
//! [`Consumer`], in any order; the first one makes it.
//!
//! ```
//! use memlink::queue::{Consumer, OnConsumerDeath, Producer, QueueOptions};
//! # let name = format!("memlink-doc-queue-{}", std::process::id());
//!
//! #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
//! #[repr(C)]
//! struct Resize { image: u64, width: u32, height: u32 }
//!
//! let options = QueueOptions::new()
//!     .capacity(256)                                 // then producers wait
//!     .on_consumer_death(OnConsumerDeath::Redeliver); // the default
//! let producer = options.producer::<Resize>(&name)?;
//! let worker = options.consumer::<Resize>(&name)?;   // one of many
//!
//! producer.send_copy(&Resize { image: 7, width: 640, height: 480 })?;
//!
//! let job = worker.recv_timeout(std::time::Duration::from_secs(1))?;
//! assert_eq!(job.image, 7);                           // read in place
//! job.done();                                         // acknowledged
//! # Ok::<(), memlink::Error>(())
//! ```
//!
//! # Semantics
//!
//! - **Exactly one consumer** takes each message, and it is acknowledged
//!   exactly once: when the [`Job`] is dropped (or [`Job::done`]).
//! - **A consumer that dies** holding messages (killed, crashed, between
//!   `recv` and the acknowledgement) has them handled by the queue's
//!   [`OnConsumerDeath`] rule: [`Redeliver`](OnConsumerDeath::Redeliver)
//!   makes them available again to the other consumers
//!   ([`Job::redelivered`] says so, the queue counts `redelivered`);
//!   [`CountLost`](OnConsumerDeath::CountLost) drops them and counts them
//!   `lost` ([`inspect_queue`], `memlink info`). The side effects of a job
//!   whose consumer died before acknowledging it may have happened: with
//!   `Redeliver` processing is at least once, acknowledgement exactly once.
//!   Survivors find the dead: a consumer when it has been idle for a
//!   while (50 ms) and when it connects, a producer while it waits for
//!   room and when a non-blocking send finds the queue full.
//! - **Backpressure**: each producer may have `capacity` unfinished
//!   messages (sent and not yet acknowledged), counted from its oldest
//!   one: [`Producer::loan`] and [`Producer::send_copy`] wait for room,
//!   [`Producer::try_loan`] and [`Producer::try_send_copy`] say
//!   [`ErrorKind::LimitReached`](crate::ErrorKind::LimitReached) ("full"),
//!   the `_timeout` forms [`ErrorKind::Timeout`](crate::ErrorKind::Timeout).
//! - **Order**: each producer's messages are *taken* in the order it sent
//!   them, except that a redelivered message is taken again before later
//!   ones. With several consumers they are processed concurrently, so
//!   they may finish in any order; one consumer alone sees each
//!   producer's messages in order. Producers are visited round robin.
//! - A producer that dies leaves its sent messages to the consumers; a
//!   message it was writing (loaned, not sent) is simply not sent.
//!
//! # How it works, and why nothing is lost or doubled
//!
//! Producers never share a claim counter. Each producer place has a ring
//! of `capacity` *cells*, one per slot of its own data partition, and
//! sequence number `s` uses cell `s mod capacity`. A cell is one 64-bit
//! word: the message's sequence number, the state (`FREE`, `READY`,
//! `TAKEN`), and for `TAKEN` the index of the consumer that holds it. Every
//! change of a message's state is one atomic operation on that word:
//!
//! | change | by | how |
//! |---|---|---|
//! | `FREE` → `READY(s)` (send) | the producer, the only writer of `FREE` cells | store, after the payload and length |
//! | `READY(s)` → `TAKEN(s, i)` (receive) | consumer `i` | compare-and-swap: one winner |
//! | `TAKEN(s, i)` → `FREE` (acknowledge) | consumer `i` | store |
//! | `TAKEN(s, i)` → `READY(s)` or `FREE` (the rule) | whoever holds consumer place `i`'s claim after `i` died | compare-and-swap |
//!
//! Exactly once: a message is delivered only by winning the CAS from
//! `READY`, and only the producer (once per sequence number) and the rule
//! (once per death, while `TAKEN` by the dead) make a cell `READY`; the
//! acknowledgement is the only way a live consumer leaves `TAKEN`. The rule
//! applies to place `i` only while its applier holds place `i`'s claim,
//! which the kernel grants only once consumer `i` is dead and which keeps
//! a new consumer out of place `i` meanwhile, so a live consumer's message
//! is never taken from it, and a new consumer of the place never finds
//! cells stamped with its index that are not its own (it settles what its
//! dead predecessor held before it starts).
//!
//! At each kill point: a producer killed while writing a payload leaves a
//! `FREE` cell (nothing sent); between its `READY` store and its head
//! store, a sent message (the next holder of the place counts it); a
//! consumer killed before its CAS took nothing; after it, holds the
//! message (the rule applies); after its acknowledgement store, finished.
//! An applier of the rule killed midway leaves the dead place `ACTIVE`
//! with some cells settled and the rest still `TAKEN`, which the next
//! survivor settles (the counter of one message may miss its increment).
//!
//! Finding work: consumers scan a producer's cells from a shared *tail*
//! hint, which anyone moves forward past finished cells only, so every
//! waiting message lies between the tail and the producer's head. Sleeping
//! is the crate's one protocol (as for pub/sub): a consumer with nothing
//! to take sets its sleeping bit and checks again; a send wakes one
//! sleeping consumer (each message needs one); an acknowledgement wakes
//! its producer if that one waits for room.
//!
//! Messaging works on Linux and Windows; on macOS and FreeBSD every call
//! is an [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) error.

mod consumer;
mod joint;
mod layout;
mod producer;

pub use crate::messaging::Payload;
pub use consumer::{Consumer, Job};
pub use joint::{inspect_queue, QueueInfo, QueueParticipant};
pub(crate) use layout::MAGIC;
pub use producer::{Loan, Producer};

use crate::error::ObjectKind;

const KIND: ObjectKind = ObjectKind::Queue;
const DEFAULT_PRODUCERS: u32 = 8;
const DEFAULT_CONSUMERS: u32 = 64;
const DEFAULT_CAPACITY: u32 = 64;
const DEFAULT_SLICE_BYTES: u64 = 4096;

/// What happens to the messages a consumer holds when it dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConsumerDeath {
    /// Another consumer gets them ([`Job::redelivered`] is true); counted
    /// as `redelivered`. The default.
    #[default]
    Redeliver,
    /// They are dropped and counted as `lost`.
    CountLost,
}

/// The settings of a queue, for the participant that makes it, and the
/// expectations of one that joins it.
///
/// A setting chosen here must match the queue's when it exists already
/// (an [`ErrorKind::Incompatible`](crate::ErrorKind::Incompatible) error
/// says both values); settings left alone take the queue's.
#[derive(Debug, Clone, Default)]
pub struct QueueOptions {
    max_producers: Option<u32>,
    max_consumers: Option<u32>,
    capacity: Option<u32>,
    on_consumer_death: Option<OnConsumerDeath>,
    max_slice_len: Option<u64>,
    mode: u32,
    /// Join whatever payload type the queue has (byte consumers of tools);
    /// a new queue is made for `[u8]`.
    any_payload: bool,
}

impl QueueOptions {
    /// The defaults: 8 producers, 64 consumers, 64 unfinished messages per
    /// producer, [`OnConsumerDeath::Redeliver`], slices of up to 4 KiB,
    /// private to the creating user (mode `0o600`).
    pub fn new() -> QueueOptions {
        QueueOptions {
            mode: 0o600,
            ..QueueOptions::default()
        }
    }

    /// How many producers may be connected at once (1 to 64).
    pub fn max_producers(mut self, n: u32) -> Self {
        self.max_producers = Some(n);
        self
    }

    /// How many consumers may be connected at once (1 to 1024).
    pub fn max_consumers(mut self, n: u32) -> Self {
        self.max_consumers = Some(n);
        self
    }

    /// How many messages each producer may have sent and not yet
    /// acknowledged, counted from its oldest unfinished one (1 to 2^20).
    pub fn capacity(mut self, n: u32) -> Self {
        self.capacity = Some(n);
        self
    }

    /// What happens to the messages of a consumer that dies.
    pub fn on_consumer_death(mut self, rule: OnConsumerDeath) -> Self {
        self.on_consumer_death = Some(rule);
        self
    }

    /// For slice payloads: the most elements one message may have.
    pub fn max_slice_len(mut self, n: u64) -> Self {
        self.max_slice_len = Some(n);
        self
    }

    /// Who may join a new queue, as Unix permission bits (default
    /// `0o600`); on Windows the doorbells are made with default security.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Connects a producer of `T` to the queue `name`, making the queue if
    /// it does not exist.
    pub fn producer<T: Payload + ?Sized>(&self, name: &str) -> crate::Result<Producer<T>> {
        Producer::connect_with(name, self)
    }

    /// Connects a consumer of `T` to the queue `name`, making the queue if
    /// it does not exist.
    pub fn consumer<T: Payload + ?Sized>(&self, name: &str) -> crate::Result<Consumer<T>> {
        Consumer::connect_with(name, self)
    }
}
