//! The bytes of a work queue: one region, laid out from its settings.
//!
//! ```text
//! 0        Header: magic (written last), layout version, settings, payload type
//! 512      counters: lost, redelivered; the bits of producers waiting for room
//! 576      sleeping consumers: one bit each (W = ceil(consumers / 64) words)
//! ...      producer entries, one per place: a line the producer writes
//!          (head, doorbell, counters), a line of the tail hint, then
//!          `capacity` cell words, then `capacity` payload lengths
//! ...      consumer entries, one line per place: doorbell, counters
//! page     data: per producer a page-aligned partition of `capacity` slots
//! ```
//!
//! Cell `k` of producer `p` describes slot `k` of its partition: which
//! message it holds and who has it (see [`cell`]).

use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::error::{Error, ErrorKind, Operation, Result};
pub(super) use crate::messaging::PayloadType;
use crate::sys::layout::Bell;

/// "mlqueue" and a version byte, in the first word once the queue is ready.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"mlqueue\x01");
/// The layout version; another version is an `Incompatible` error.
pub(super) const VERSION: u32 = 1;
const HEADER_SIZE: u64 = 512;
const LINE: u64 = 64;
const PAGE: u64 = 4096;

pub(super) const MAX_PRODUCERS: u32 = 64;
pub(super) const MAX_CONSUMERS: u32 = 1024;
/// Cells per producer; sequence arithmetic on cells assumes far fewer
/// than 2^44.
pub(super) const MAX_CAPACITY: u32 = 1 << 20;

/// A participant entry is in use (written by the place's holder only).
pub(super) const ACTIVE: u32 = 1;
/// A participant entry is free.
pub(super) const FREE: u32 = 0;

/// The settings a queue is made with; stored in its header.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Settings {
    pub(super) max_producers: u32,
    pub(super) max_consumers: u32,
    /// Messages each producer may have unfinished: its cells.
    pub(super) capacity: u32,
    /// 0: redeliver the messages of a dead consumer; 1: count them lost.
    pub(super) on_consumer_death: u32,
    /// The largest payload in bytes.
    pub(super) max_payload: u64,
}

/// The first bytes of a queue.
#[repr(C)]
pub(super) struct Header {
    pub(super) magic: AtomicU64,
    pub(super) version: u32,
    pub(super) header_size: u32,
    pub(super) settings: Settings,
    pub(super) payload: PayloadType,
}

const _: () = assert!(std::mem::size_of::<Header>() as u64 <= HEADER_SIZE);

/// The queue's counters: written by whoever reaps a dead consumer.
#[repr(C)]
pub(super) struct Counters {
    pub(super) lost: AtomicU64,
    pub(super) redelivered: AtomicU64,
    /// One bit per producer place waiting for room.
    pub(super) space_sleepers: AtomicU64,
}

/// The first line of a producer entry, written by the place's holder.
#[repr(C)]
pub(super) struct ProducerEntry {
    /// How many messages this place has sent (its next sequence number).
    pub(super) head: AtomicU64,
    /// Rung by consumers that free a cell while the holder waits for room.
    pub(super) bell: Bell,
    pub(super) state: AtomicU32,
    pub(super) pid: AtomicU32,
    pub(super) sent: AtomicU64,
    /// Marks of what kind of participant holds the place.
    pub(super) flags: AtomicU32,
}

/// A consumer entry.
#[repr(C)]
pub(super) struct ConsumerEntry {
    /// Rung by producers (and reapers) when the holder sleeps.
    pub(super) bell: Bell,
    pub(super) state: AtomicU32,
    pub(super) pid: AtomicU32,
    /// Messages taken, and acknowledged, by the holder.
    pub(super) taken: AtomicU64,
    pub(super) done: AtomicU64,
    /// As [`ProducerEntry::flags`].
    pub(super) flags: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<Counters>() as u64 <= LINE);
const _: () = assert!(std::mem::size_of::<ProducerEntry>() as u64 <= LINE);
const _: () = assert!(std::mem::size_of::<ConsumerEntry>() as u64 <= LINE);

/// Where everything is, derived from the settings and the payload.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    pub(super) settings: Settings,
    /// Words of sleeper bits: one bit per consumer.
    pub(super) words: u64,
    pub(super) stride: u64,
    counters: u64,
    sleepers: u64,
    producers: u64,
    producer_size: u64,
    consumers: u64,
    pub(super) data: u64,
    pub(super) partition_size: u64,
    pub(super) total: u64,
}

fn round_up(n: u64, to: u64) -> Option<u64> {
    n.checked_add(to - 1).map(|n| n / to * to)
}

impl Layout {
    /// Lays a queue out; `Err` names the setting that cannot work.
    pub(super) fn new(
        settings: Settings,
        payload: &PayloadType,
        name: &str,
        operation: Operation,
    ) -> Result<Layout> {
        let invalid = |why: String| {
            Error::new(operation, super::KIND, name, ErrorKind::InvalidArgument).with_detail(why)
        };
        let s = settings;
        if s.max_producers == 0 || s.max_producers > MAX_PRODUCERS {
            return Err(invalid(format!(
                "max_producers is {}; it must be 1 to {MAX_PRODUCERS}",
                s.max_producers
            )));
        }
        if s.max_consumers == 0 || s.max_consumers > MAX_CONSUMERS {
            return Err(invalid(format!(
                "max_consumers is {}; it must be 1 to {MAX_CONSUMERS}",
                s.max_consumers
            )));
        }
        if s.capacity == 0 || s.capacity > MAX_CAPACITY {
            return Err(invalid(format!(
                "the capacity is {}; it must be 1 to {MAX_CAPACITY}",
                s.capacity
            )));
        }
        if s.on_consumer_death > 1 {
            return Err(invalid(format!(
                "the rule for dead consumers is {}; it must be 0 or 1",
                s.on_consumer_death
            )));
        }
        if payload.slice == 1 && payload.size == 0 {
            return Err(invalid(
                "slices of a zero-sized type cannot be carried: a message's length \
                 is its byte length, which is 0 for any number of elements"
                    .into(),
            ));
        }
        if s.max_payload == 0 && payload.slice == 1 {
            return Err(invalid(
                "the largest slice must be at least 1 element".into(),
            ));
        }
        if s.max_payload < payload.size {
            return Err(invalid(format!(
                "the largest payload is {} bytes, less than one {}-byte value",
                s.max_payload, payload.size
            )));
        }
        if u64::from(payload.align) > PAGE {
            return Err(invalid(format!(
                "payload alignment {} is more than a page",
                payload.align
            )));
        }
        let too_big = || invalid("the queue would not fit in 64-bit sizes".into());
        let capacity = u64::from(s.capacity);
        let words = u64::from(s.max_consumers).div_ceil(64);
        let align = u64::from(payload.align).max(LINE);
        let stride = round_up(s.max_payload.max(1), align).ok_or_else(too_big)?;
        let counters = HEADER_SIZE;
        let sleepers = counters + LINE;
        let producers = sleepers + round_up(words * 8, LINE).unwrap();
        let producer_size = 2 * LINE + 2 * round_up(capacity * 8, LINE).unwrap();
        let consumers = producers + producer_size * u64::from(s.max_producers);
        let data =
            round_up(consumers + LINE * u64::from(s.max_consumers), PAGE).ok_or_else(too_big)?;
        let partition_size = stride
            .checked_mul(capacity)
            .and_then(|n| round_up(n, PAGE))
            .ok_or_else(too_big)?;
        let total = partition_size
            .checked_mul(u64::from(s.max_producers))
            .and_then(|n| n.checked_add(data))
            .ok_or_else(too_big)?;
        Ok(Layout {
            settings,
            words,
            stride,
            counters,
            sleepers,
            producers,
            producer_size,
            consumers,
            data,
            partition_size,
            total,
        })
    }

    pub(super) fn capacity(&self) -> u64 {
        u64::from(self.settings.capacity)
    }

    /// The byte offset of producer `p`'s partition, from the start of the
    /// data.
    pub(super) fn partition(&self, p: u32) -> u64 {
        self.partition_size * u64::from(p)
    }
}

/// The control part of a queue, mapped: typed access to its words.
pub(super) struct Control {
    base: *mut u8,
    layout: Layout,
}

// SAFETY: `Control` is an address into shared memory that stays mapped for
// its lifetime (its owner keeps the mapping); every access through it is
// atomic, so any thread may use it.
unsafe impl Send for Control {}
// SAFETY: as above: only atomics are reached through `&Control`.
unsafe impl Sync for Control {}

impl Control {
    /// # Safety
    /// `base` must point at a mapping of at least `layout.data` bytes of the
    /// queue, aligned to a page, that outlives the returned value.
    pub(super) unsafe fn new(base: *mut u8, layout: Layout) -> Control {
        Control { base, layout }
    }

    pub(super) fn layout(&self) -> &Layout {
        &self.layout
    }

    fn at<A>(&self, offset: u64) -> &A {
        debug_assert!(offset + std::mem::size_of::<A>() as u64 <= self.layout.data);
        debug_assert_eq!(offset % std::mem::align_of::<A>() as u64, 0);
        // SAFETY: every offset passed here comes from the layout, lies inside
        // the control part (which `new`'s contract keeps mapped) and is
        // aligned for `A` (lines are 64-byte aligned from a page-aligned
        // base; words are 8-byte aligned within them). The types used are
        // atomics (or structs of atomics), valid for any bit pattern and
        // accessed only atomically by every process.
        unsafe { &*self.base.add(offset as usize).cast::<A>() }
    }

    pub(super) fn header(&self) -> &Header {
        self.at(0)
    }

    pub(super) fn counters(&self) -> &Counters {
        self.at(self.layout.counters)
    }

    /// Word `w` of the sleeping-consumer bits.
    pub(super) fn sleepers(&self, w: u64) -> &AtomicU64 {
        self.at(self.layout.sleepers + 8 * w)
    }

    fn producer_at(&self, p: u32) -> u64 {
        self.layout.producers + self.layout.producer_size * u64::from(p)
    }

    pub(super) fn producer(&self, p: u32) -> &ProducerEntry {
        self.at(self.producer_at(p))
    }

    /// Producer `p`'s tail hint: no message it sent before this sequence
    /// number is waiting or taken. Any participant moves it forward.
    pub(super) fn tail(&self, p: u32) -> &AtomicU64 {
        self.at(self.producer_at(p) + LINE)
    }

    /// The cell of producer `p` that sequence number `seq` uses.
    pub(super) fn cell(&self, p: u32, seq: u64) -> &AtomicU64 {
        self.at(self.producer_at(p) + 2 * LINE + 8 * (seq % self.layout.capacity()))
    }

    /// The payload length in bytes of the message in `seq`'s cell.
    pub(super) fn len(&self, p: u32, seq: u64) -> &AtomicU64 {
        let cells = round_up(self.layout.capacity() * 8, LINE).unwrap();
        self.at(self.producer_at(p) + 2 * LINE + cells + 8 * (seq % self.layout.capacity()))
    }

    pub(super) fn consumer(&self, i: u32) -> &ConsumerEntry {
        self.at(self.layout.consumers + LINE * u64::from(i))
    }
}

/// Cell words: `(seq + 1) mod 2^45` in the top 45 bits (0: never used), a
/// redelivered mark, the holding consumer's index in 16 bits, and the
/// state in the low 2 bits.
pub(super) mod cell {
    /// The producer's: empty, or finished with (acknowledged or lost).
    pub(in crate::queue) const FREE: u64 = 0;
    /// Sent, waiting for a consumer.
    pub(in crate::queue) const READY: u64 = 1;
    /// Taken by the consumer named in the word, not yet acknowledged.
    pub(in crate::queue) const TAKEN: u64 = 2;
    const STATE: u64 = 3;
    const HOLDER_SHIFT: u32 = 2;
    const HOLDER: u64 = 0xffff << HOLDER_SHIFT;
    /// The message was taken before by a consumer that died.
    pub(in crate::queue) const REDELIVERED: u64 = 1 << 18;
    const SEQ_SHIFT: u32 = 19;
    const SEQ_BITS: u32 = 64 - SEQ_SHIFT;

    pub(in crate::queue) fn word(seq: u64, state: u64) -> u64 {
        (seq.wrapping_add(1) << SEQ_SHIFT) | state
    }

    pub(in crate::queue) fn taken(w: u64, consumer: u32) -> u64 {
        (w & !(STATE | HOLDER)) | (u64::from(consumer) << HOLDER_SHIFT) | TAKEN
    }

    /// The word with `state` instead of its state and holder.
    pub(in crate::queue) fn with_state(w: u64, state: u64) -> u64 {
        (w & !(STATE | HOLDER)) | state
    }

    pub(in crate::queue) fn state(w: u64) -> u64 {
        w & STATE
    }

    pub(in crate::queue) fn holder(w: u64) -> u32 {
        ((w & HOLDER) >> HOLDER_SHIFT) as u32
    }

    /// Where the cell's message stands against sequence number `seq`: 0 it
    /// is that message, < 0 an earlier one (or none: `seq` is not sent
    /// yet), > 0 a later one (`seq` is long finished). Exact while the two
    /// are less than 2^44 apart; a cell is at most `capacity` from its
    /// readers.
    pub(in crate::queue) fn order(w: u64, seq: u64) -> i64 {
        let stored = w >> SEQ_SHIFT;
        let wanted = seq.wrapping_add(1) << SEQ_SHIFT >> SEQ_SHIFT;
        ((stored.wrapping_sub(wanted) << SEQ_SHIFT) as i64) >> SEQ_SHIFT
    }

    const _: () = assert!(SEQ_BITS == 45);
}

#[cfg(test)]
mod tests {
    use super::cell::*;

    #[test]
    fn cell_words_keep_sequence_holder_and_state_apart() {
        let w = word(5, READY);
        assert_eq!(state(w), READY);
        assert_eq!(order(w, 5), 0);
        assert!(order(w, 6) < 0);
        assert!(order(w, 4) > 0);
        let t = taken(w | REDELIVERED, 1023);
        assert_eq!((state(t), holder(t), order(t, 5)), (TAKEN, 1023, 0));
        assert_ne!(t & REDELIVERED, 0);
        let f = with_state(t, FREE);
        assert_eq!((state(f), holder(f), order(f, 5)), (FREE, 0, 0));
        // A never-used cell is before sequence number 0.
        assert!(order(0, 0) < 0);
        // Across the 45-bit wrap.
        let near = (1u64 << 45) - 2;
        assert_eq!(order(word(near, READY), near), 0);
        assert!(order(word(near + 8, READY), near) > 0);
        assert!(order(word(near, READY), near + 8) < 0);
    }
}
