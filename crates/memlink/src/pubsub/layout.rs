//! The bytes of a service: one region, laid out from its settings.
//!
//! ```text
//! 0        Header: magic (written last), layout version, settings, payload type
//! 512      sleeping subscribers: one bit each (W = ceil(subscribers / 64) words)
//! +64*k    publishers waiting for space: one bit each
//! ...      publisher entries, one per place: head, doorbell, counters, then
//!          the ring: `capacity` words (seq+1) << 16 | slot
//! ...      subscriber entries, one per place: doorbell, counters, then one
//!          cursor per publisher place (the next sequence number to read)
//! ...      slot headers, per publisher per slot: W holder words, length
//! page     data: per publisher a page-aligned partition of slots
//! ```
//!
//! Everything before the data is the *control* part, mapped read-write by
//! every participant; the data is mapped writable by its publisher only (its
//! own partition) and read-only by subscribers. Every word has one writer,
//! or is a set of bits each of which belongs to one participant (holders,
//! sleepers), so a dead process can only leave its own words stale.

use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::messaging::ObjectLayout;
pub(super) use crate::messaging::PayloadType;
use crate::sys::layout::Bell;

/// "memlink" and a service marker, in the first word once the service is
/// ready.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"mlsvc\x01\x00\x00");
/// The layout version; another version is an `Incompatible` error.
pub(super) const VERSION: u32 = 2;
const HEADER_SIZE: u64 = 512;
const LINE: u64 = 64;
const PAGE: u64 = 4096;
/// Ring entries keep the slot index in 16 bits.
pub(super) const MAX_SLOTS: u64 = 1 << 16;
const SLOT_BITS: u32 = 16;
const SEQ_MASK: u64 = (1 << 48) - 1;
/// The highest head a publisher place can honestly have (2^62 samples take
/// centuries); a higher one is corruption, refused so that sequence
/// arithmetic never overflows.
pub(super) const MAX_HEAD: u64 = 1 << 62;

/// Limits that keep the tables small enough to be sane.
pub(super) const MAX_PUBLISHERS: u32 = 64;
pub(super) const MAX_SUBSCRIBERS: u32 = 1024;

/// A participant entry is in use (written by the place's holder only).
pub(super) const ACTIVE: u32 = 1;
/// A participant entry is free.
pub(super) const FREE: u32 = 0;

/// Participant flag: the place is held by a bridge to another machine
/// (`memlink-bridge`). Its samples came from the network, so other
/// bridges' subscribers do not send them back out.
pub(super) const FLAG_BRIDGE: u32 = 1;

/// The settings a service is made with; stored in its header.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(super) max_publishers: u32,
    pub(super) max_subscribers: u32,
    /// Samples each publisher keeps published: the ring's length.
    pub(super) capacity: u32,
    pub(super) history: u32,
    pub(super) max_loans: u32,
    pub(super) max_borrowed: u32,
    /// 0: overwrite the oldest; 1: block the publisher.
    pub(super) overflow: u32,
    pub(super) _reserved: u32,
    /// The largest payload in bytes.
    pub(super) max_payload: u64,
}

/// The first bytes of a service.
type Header = crate::messaging::Header<Settings>;

const _: () = assert!(std::mem::size_of::<Header>() as u64 <= HEADER_SIZE);
const _: () = assert!(std::mem::align_of::<Header>() <= LINE as usize);

/// The first line of a publisher entry.
#[repr(C)]
pub(super) struct PublisherEntry {
    /// How many samples this place has published (its next sequence
    /// number). Written by the place's holder.
    pub(super) head: AtomicU64,
    /// Rung by whoever wakes the holder from a wait for space.
    pub(super) bell: Bell,
    pub(super) state: AtomicU32,
    pub(super) pid: AtomicU32,
    pub(super) sent: AtomicU64,
    /// Marks of what kind of participant holds the place (a bridge to
    /// another machine, say); written by the holder when it joins.
    pub(super) flags: AtomicU32,
}

/// The first line of a subscriber entry.
#[repr(C)]
pub(super) struct SubscriberEntry {
    /// Rung by publishers when the holder sleeps.
    pub(super) bell: Bell,
    pub(super) state: AtomicU32,
    pub(super) pid: AtomicU32,
    pub(super) received: AtomicU64,
    pub(super) missed: AtomicU64,
    /// As [`PublisherEntry::flags`].
    pub(super) flags: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<PublisherEntry>() as u64 <= LINE);
const _: () = assert!(std::mem::size_of::<SubscriberEntry>() as u64 <= LINE);

/// Where everything is, derived from the settings and the payload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(super) settings: Settings,
    /// Words of holder or sleeper bits: one bit per subscriber.
    pub(super) words: u64,
    pub(super) slots: u64,
    pub(super) stride: u64,
    sleepers: u64,
    space_sleepers: u64,
    publishers: u64,
    publisher_size: u64,
    subscribers: u64,
    subscriber_size: u64,
    slot_headers: u64,
    slot_header_size: u64,
    pub(super) data: u64,
    pub(super) partition_size: u64,
    pub(super) total: u64,
}

fn round_up(n: u64, to: u64) -> Option<u64> {
    n.checked_add(to - 1).map(|n| n / to * to)
}

impl ObjectLayout for Layout {
    type Settings = Settings;
    type Payload = PayloadType;

    /// Lays a service out; `Err` names the setting that cannot work.
    fn lay_out(
        settings: Settings,
        payload: &PayloadType,
        name: &str,
        operation: Operation,
    ) -> Result<Layout> {
        let invalid = |why: String| {
            Error::new(
                operation,
                ObjectKind::Service,
                name,
                ErrorKind::InvalidArgument,
            )
            .with_detail(why)
        };
        let s = settings;
        if s.max_publishers == 0 || s.max_publishers > MAX_PUBLISHERS {
            return Err(invalid(format!(
                "max_publishers is {}; it must be 1 to {MAX_PUBLISHERS}",
                s.max_publishers
            )));
        }
        if s.max_subscribers == 0 || s.max_subscribers > MAX_SUBSCRIBERS {
            return Err(invalid(format!(
                "max_subscribers is {}; it must be 1 to {MAX_SUBSCRIBERS}",
                s.max_subscribers
            )));
        }
        if s.capacity == 0 {
            return Err(invalid("the capacity must be at least 1".into()));
        }
        if s.history > s.capacity {
            return Err(invalid(format!(
                "a history of {} is more than the capacity of {}",
                s.history, s.capacity
            )));
        }
        if s.max_loans == 0 || s.max_borrowed == 0 {
            return Err(invalid(
                "max_loans and max_borrowed must be at least 1".into(),
            ));
        }
        if payload.slice == 1 && payload.size == 0 {
            return Err(invalid(
                "slices of a zero-sized type cannot be carried: a sample's length \
                 is its byte length, which is 0 for any number of elements"
                    .into(),
            ));
        }
        if s.max_payload == 0 && payload.slice == 1 {
            return Err(invalid(
                "the largest slice must be at least 1 element".into(),
            ));
        }
        // Samples are read as the type, whatever length the slot says: a
        // slot smaller than one element would be read past its end.
        if s.max_payload < payload.size {
            return Err(invalid(format!(
                "the largest payload is {} bytes, less than one {}-byte {}",
                s.max_payload,
                payload.size,
                if payload.slice == 1 {
                    "element"
                } else {
                    "value"
                }
            )));
        }
        if u64::from(payload.align) > PAGE {
            return Err(invalid(format!(
                "payload alignment {} is more than a page",
                payload.align
            )));
        }
        let words = u64::from(s.max_subscribers).div_ceil(64);
        let slots = u64::from(s.capacity)
            + u64::from(s.max_loans)
            + u64::from(s.max_subscribers) * u64::from(s.max_borrowed);
        if slots > MAX_SLOTS {
            return Err(invalid(format!(
                "{slots} slots per publisher (capacity + max_loans + max_subscribers x \
                 max_borrowed) are more than {MAX_SLOTS}"
            )));
        }
        let too_big = || invalid("the service would not fit in 64-bit sizes".into());
        let align = u64::from(payload.align).max(LINE);
        let stride = round_up(s.max_payload.max(1), align).ok_or_else(too_big)?;
        let sleepers = HEADER_SIZE;
        let space_sleepers = sleepers + round_up(words * 8, LINE).unwrap();
        let publishers = space_sleepers + LINE;
        let publisher_size =
            LINE + round_up(u64::from(s.capacity) * 8, LINE).ok_or_else(too_big)?;
        let subscribers = publishers + publisher_size * u64::from(s.max_publishers);
        let subscriber_size = LINE + round_up(u64::from(s.max_publishers) * 8, LINE).unwrap();
        let slot_headers = subscribers + subscriber_size * u64::from(s.max_subscribers);
        // The holder bits and the length share a line: the subscriber that
        // takes a sample owns that line already when it reads the length
        // (a table of lengths apart, 8 to a line, was measured slower: the
        // publisher writing one while a subscriber reads its neighbour).
        let slot_header_size = round_up((words + 1) * 8, LINE).unwrap();
        let headers_len = slot_header_size * slots * u64::from(s.max_publishers);
        let data = round_up(slot_headers + headers_len, PAGE).ok_or_else(too_big)?;
        let partition_size = stride
            .checked_mul(slots)
            .and_then(|n| round_up(n, PAGE))
            .ok_or_else(too_big)?;
        let total = partition_size
            .checked_mul(u64::from(s.max_publishers))
            .and_then(|n| n.checked_add(data))
            .ok_or_else(too_big)?;
        Ok(Layout {
            settings,
            words,
            slots,
            stride,
            sleepers,
            space_sleepers,
            publishers,
            publisher_size,
            subscribers,
            subscriber_size,
            slot_headers,
            slot_header_size,
            data,
            partition_size,
            total,
        })
    }

    fn total(&self) -> u64 {
        self.total
    }

    fn control_len(&self) -> u64 {
        self.data
    }
}

impl Layout {
    pub(super) fn capacity(&self) -> u64 {
        u64::from(self.settings.capacity)
    }

    /// The byte offset of publisher `p`'s partition, from the start of the
    /// data.
    pub(super) fn partition(&self, p: u32) -> u64 {
        self.partition_size * u64::from(p)
    }
}

/// The control part of a service, mapped.
pub(super) type Control = crate::messaging::Control<Layout>;

impl Control {
    /// Word `w` of the sleeping-subscriber bits.
    pub(super) fn sleepers(&self, w: u64) -> &AtomicU64 {
        self.at(self.layout().sleepers + 8 * w)
    }

    /// The bits of publishers waiting for space.
    pub(super) fn space_sleepers(&self) -> &AtomicU64 {
        self.at(self.layout().space_sleepers)
    }

    pub(super) fn publisher(&self, p: u32) -> &PublisherEntry {
        self.at(self.layout().publishers + self.layout().publisher_size * u64::from(p))
    }

    /// The ring entry publisher `p` uses for sequence number `seq`.
    pub(super) fn ring(&self, p: u32, seq: u64) -> &AtomicU64 {
        let slot = seq % self.layout().capacity();
        self.at(self.layout().publishers
            + self.layout().publisher_size * u64::from(p)
            + LINE
            + 8 * slot)
    }

    pub(super) fn subscriber(&self, i: u32) -> &SubscriberEntry {
        self.at(self.layout().subscribers + self.layout().subscriber_size * u64::from(i))
    }

    /// Subscriber `i`'s cursor on publisher `p`: the next sequence number.
    pub(super) fn cursor(&self, i: u32, p: u32) -> &AtomicU64 {
        self.at(self.layout().subscribers
            + self.layout().subscriber_size * u64::from(i)
            + LINE
            + 8 * u64::from(p))
    }

    fn slot_header(&self, p: u32, slot: u64) -> u64 {
        self.layout().slot_headers
            + self.layout().slot_header_size * (u64::from(p) * self.layout().slots + slot)
    }

    /// Word `w` of the holder bits of publisher `p`'s slot.
    pub(super) fn holders(&self, p: u32, slot: u64, w: u64) -> &AtomicU64 {
        self.at(self.slot_header(p, slot) + 8 * w)
    }

    /// The payload length in bytes of publisher `p`'s slot.
    pub(super) fn len(&self, p: u32, slot: u64) -> &AtomicU64 {
        self.at(self.slot_header(p, slot) + 8 * self.layout().words)
    }
}

/// A ring entry: the sequence number (plus one, so that 0 is "empty")
/// in the top 48 bits, the slot below.
pub(super) fn entry(seq: u64, slot: u64) -> u64 {
    ((seq.wrapping_add(1) & SEQ_MASK) << SLOT_BITS) | slot
}

pub(super) fn entry_slot(entry: u64) -> u64 {
    entry & ((1 << SLOT_BITS) - 1)
}

/// Where `entry` stands against the sequence number `seq` a reader wants:
/// 0 it is that sample, < 0 that sample is not published yet, > 0 it was
/// overwritten by a later one. Sequence numbers are compared modulo 2^48,
/// which is exact while readers are less than 2^47 samples behind (the ring
/// keeps them within `capacity`).
/// An empty entry (0) reads as "not yet" for every sequence number but
/// the one at the very end of the 48-bit cycle.
pub(super) fn entry_order(entry: u64, seq: u64) -> i64 {
    let stored = entry >> SLOT_BITS;
    let wanted = seq.wrapping_add(1) & SEQ_MASK;
    // Sign-extend the 48-bit difference.
    ((stored.wrapping_sub(wanted) << SLOT_BITS) as i64) >> SLOT_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_order_sequence_numbers_across_the_48_bit_wrap() {
        assert_eq!(entry_order(entry(5, 3), 5), 0);
        assert_eq!(entry_slot(entry(5, 3)), 3);
        assert!(entry_order(entry(4, 3), 5) < 0);
        assert!(entry_order(entry(69, 3), 5) > 0);
        assert!(entry_order(0, 0) < 0);
        let near = SEQ_MASK - 1;
        assert_eq!(entry_order(entry(near, 1), near), 0);
        assert!(entry_order(entry(near + 10, 1), near) > 0);
        assert!(entry_order(entry(near, 1), near + 10) < 0);
    }
}
