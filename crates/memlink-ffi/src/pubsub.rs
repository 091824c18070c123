//! Publish/subscribe with byte payloads.

use std::ffi::c_char;
use std::rc::Rc;

use memlink::pubsub::{
    inspect_service, Overflow, Publisher, Sample, SampleMut, ServiceOptions, Subscriber,
};

use crate::{
    call, clear, free, give, handle, invalid, out, put, string, timeout, Ffi, MemlinkError,
};

/// What a publisher does when a subscriber falls a whole ring behind.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemlinkOverflow {
    /// The service's setting (a new service: overwrite).
    Default = 0,
    /// Overwrite the oldest sample; the subscriber counts what it missed.
    Overwrite = 1,
    /// Wait until every live subscriber has taken the oldest sample.
    Block = 2,
}

/// The settings of a service for the participant that makes it, and the
/// expectations of one that joins it (a differing setting is
/// `MEMLINK_ERROR_INCOMPATIBLE`). A zeroed struct (or NULL) means: the
/// service's settings, or memlink's defaults for a new service (8
/// publishers, 64 subscribers, capacity 64, no history, 4 loans, 2 held
/// samples, overwrite, samples up to 4096 bytes, mode 0600).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MemlinkServiceOptions {
    /// Publishers connected at once (1 to 64); 0: default.
    pub max_publishers: u32,
    /// Subscribers connected at once (1 to 1024); 0: default.
    pub max_subscribers: u32,
    /// Samples kept per publisher; 0: default.
    pub capacity: u32,
    /// Latest samples a new subscriber receives; 0: default (none).
    pub history: u32,
    /// Samples one publisher may have loaned at once; 0: default.
    pub max_loans: u32,
    /// Samples one subscriber may hold at once; 0: default.
    pub max_borrowed: u32,
    /// What happens to a slow subscriber: a `MemlinkOverflow` value
    /// (another is `MEMLINK_ERROR_INVALID_ARGUMENT`).
    pub overflow: u32,
    /// The largest sample in bytes; 0: default.
    pub max_payload: u64,
    /// Unix permission bits of a new service; 0: default (0600).
    pub mode: u32,
}

/// # Safety
/// `options` is NULL or points at a valid options struct.
unsafe fn service_options(
    function: &str,
    options: *const MemlinkServiceOptions,
) -> Ffi<ServiceOptions> {
    let mut s = ServiceOptions::new();
    // SAFETY: NULL or a valid options struct, by the caller's contract.
    let Some(o) = (unsafe { options.as_ref() }) else {
        return Ok(s);
    };
    let set = |n: u32| (n != 0).then_some(n);
    if let Some(n) = set(o.max_publishers) {
        s = s.max_publishers(n);
    }
    if let Some(n) = set(o.max_subscribers) {
        s = s.max_subscribers(n);
    }
    if let Some(n) = set(o.capacity) {
        s = s.capacity(n);
    }
    if let Some(n) = set(o.history) {
        s = s.history(n);
    }
    if let Some(n) = set(o.max_loans) {
        s = s.max_loans(n);
    }
    if let Some(n) = set(o.max_borrowed) {
        s = s.max_borrowed(n);
    }
    match o.overflow {
        x if x == MemlinkOverflow::Default as u32 => {}
        x if x == MemlinkOverflow::Overwrite as u32 => s = s.overflow(Overflow::Overwrite),
        x if x == MemlinkOverflow::Block as u32 => s = s.overflow(Overflow::Block),
        x => {
            return Err(invalid(
                function,
                format_args!("`overflow` is {x}, not a MemlinkOverflow"),
            ))
        }
    }
    if o.max_payload != 0 {
        s = s.max_slice_len(o.max_payload);
    }
    if o.mode != 0 {
        s = s.mode(o.mode);
    }
    Ok(s)
}

/// A publisher of byte samples. Its loans keep it alive: closing it with
/// loans outstanding is safe, it leaves when the last is gone. A publisher
/// and its loans are used by one thread at a time (any thread).
pub struct MemlinkPublisher(Rc<Publisher<[u8]>>);

/// A loaned sample: shared memory the publisher writes, then sends.
pub struct MemlinkLoan {
    /// Declared first: dropped (given back) before the publisher it
    /// borrows.
    sample: Option<SampleMut<'static, [u8]>>,
    ptr: *mut u8,
    len: usize,
    _publisher: Rc<Publisher<[u8]>>,
}

/// A subscriber of byte samples. Its samples keep it alive, as a
/// publisher's loans do; a subscriber and its samples are used by one
/// thread at a time.
pub struct MemlinkSubscriber(Rc<Subscriber<[u8]>>);

/// A received sample, read in place until released.
pub struct MemlinkSample {
    /// Declared first: dropped (released) before the subscriber it
    /// borrows.
    sample: Sample<'static, [u8]>,
    _subscriber: Rc<Subscriber<[u8]>>,
}

/// Connects a publisher of byte samples to the service `name`, making the
/// service if it does not exist. `options` may be NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_publisher_connect(
    name: *const c_char,
    options: *const MemlinkServiceOptions,
    publisher: *mut *mut MemlinkPublisher,
) -> MemlinkError {
    const F: &str = "memlink_publisher_connect";
    clear(publisher);
    call(F, || {
        let out = out(publisher, F, "publisher")?;
        // SAFETY: NULL or a C string, by the C contract.
        let name = unsafe { string(name, F, "name") }?;
        // SAFETY: NULL or a valid struct, by the C contract.
        let options = unsafe { service_options(F, options) }?;
        give(
            out,
            MemlinkPublisher(Rc::new(options.publisher::<[u8]>(name)?)),
        );
        Ok(())
    })
}

/// Loans a sample of `len` bytes (at most the service's largest sample):
/// write it through `memlink_loan_data`, then `memlink_loan_send` it or
/// `memlink_loan_discard` it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_publisher_loan(
    publisher: *const MemlinkPublisher,
    len: usize,
    loan: *mut *mut MemlinkLoan,
) -> MemlinkError {
    const F: &str = "memlink_publisher_loan";
    clear(loan);
    call(F, || {
        let out = out(loan, F, "loan")?;
        // SAFETY: NULL or a live handle, by the C contract.
        let p = unsafe { handle(publisher, F, "publisher") }?;
        let owner = Rc::clone(&p.0);
        // SAFETY: the publisher lives in the Rc's allocation, which never
        // moves and outlives the sample: the loan holds a clone of the Rc
        // and drops its sample first (field order).
        let target: &'static Publisher<[u8]> = unsafe { &*Rc::as_ptr(&owner) };
        let mut sample = target.loan_slice(len)?;
        let (ptr, len) = (sample.as_mut_ptr(), sample.len());
        give(
            out,
            MemlinkLoan {
                sample: Some(sample),
                ptr,
                len,
                _publisher: owner,
            },
        );
        Ok(())
    })
}

/// The loan's memory: `*len` bytes at `*data` (either may be NULL), to
/// write before sending.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_loan_data(
    loan: *const MemlinkLoan,
    data: *mut *mut u8,
    len: *mut usize,
) -> MemlinkError {
    const F: &str = "memlink_loan_data";
    call(F, || {
        // SAFETY: NULL or a live handle, by the C contract.
        let l = unsafe { handle(loan, F, "loan") }?;
        put(data, l.ptr);
        put(len, l.len);
        Ok(())
    })
}

/// Sends the loaned sample to every subscriber, without copying, and
/// frees the loan handle whatever the outcome. With a blocking service
/// it waits at most `timeout_ms` for a slow subscriber (then
/// `MEMLINK_ERROR_TIMEOUT` and the sample is not sent).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_loan_send(
    loan: *mut MemlinkLoan,
    timeout_ms: i64,
) -> MemlinkError {
    const F: &str = "memlink_loan_send";
    call(F, || {
        if loan.is_null() {
            return Err(invalid(F, "`loan` is NULL"));
        }
        // SAFETY: a live handle made by `give`, consumed here.
        let mut l = unsafe { Box::from_raw(loan) };
        let sample = l
            .sample
            .take()
            .ok_or_else(|| invalid(F, "the loan was sent already"))?;
        match timeout(timeout_ms) {
            None => sample.send()?,
            Some(t) => sample.send_timeout(t)?,
        }
        Ok(())
    })
}

/// Gives a loan back unsent. NULL does nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_loan_discard(loan: *mut MemlinkLoan) -> MemlinkError {
    call("memlink_loan_discard", || {
        // SAFETY: NULL or a live handle not used afterwards, by the C contract.
        unsafe { free(loan) };
        Ok(())
    })
}

/// Loans, copies `len` bytes from `data` (NULL only if `len` is 0) and
/// sends, waiting as long as a blocking service needs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_publisher_send_copy(
    publisher: *const MemlinkPublisher,
    data: *const u8,
    len: usize,
) -> MemlinkError {
    const F: &str = "memlink_publisher_send_copy";
    call(F, || {
        // SAFETY: NULL or a live handle, by the C contract.
        let p = unsafe { handle(publisher, F, "publisher") }?;
        let bytes: &[u8] = if len == 0 {
            &[]
        } else if data.is_null() {
            return Err(invalid(F, format_args!("`data` is NULL (len {len})")));
        } else {
            // SAFETY: `len` readable bytes at `data`, by the C contract.
            unsafe { std::slice::from_raw_parts(data, len) }
        };
        p.0.send_copy(bytes)?;
        Ok(())
    })
}

/// How many subscribers are connected now.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_publisher_subscriber_count(
    publisher: *const MemlinkPublisher,
    count: *mut usize,
) -> MemlinkError {
    const F: &str = "memlink_publisher_subscriber_count";
    call(F, || {
        let count = out(count, F, "count")?;
        // SAFETY: NULL or a live handle, by the C contract.
        let p = unsafe { handle(publisher, F, "publisher") }?;
        let n = p.0.subscriber_count()?;
        // SAFETY: checked non-NULL above.
        unsafe { count.as_ptr().write(n) };
        Ok(())
    })
}

/// Disconnects the publisher (once its outstanding loans are gone too).
/// NULL does nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_publisher_close(publisher: *mut MemlinkPublisher) -> MemlinkError {
    call("memlink_publisher_close", || {
        // SAFETY: NULL or a live handle not used afterwards, by the C contract.
        unsafe { free(publisher) };
        Ok(())
    })
}

/// # Safety
/// `name` is NULL or a C string, `options` NULL or a valid struct.
unsafe fn connect_subscriber(
    function: &str,
    name: *const c_char,
    options: *const MemlinkServiceOptions,
    subscriber: *mut *mut MemlinkSubscriber,
    any: bool,
) -> MemlinkError {
    clear(subscriber);
    call(function, || {
        let out = out(subscriber, function, "subscriber")?;
        // SAFETY: NULL or a C string, by the caller's contract.
        let name = unsafe { string(name, function, "name") }?;
        // SAFETY: NULL or a valid struct, by the caller's contract.
        let options = unsafe { service_options(function, options) }?;
        let s = if any {
            Subscriber::connect_any(name, &options)?
        } else {
            options.subscriber::<[u8]>(name)?
        };
        give(out, MemlinkSubscriber(Rc::new(s)));
        Ok(())
    })
}

/// Connects a subscriber of byte samples to the service `name`, making it
/// if it does not exist; the service must carry bytes (a service of
/// another payload type is `MEMLINK_ERROR_INCOMPATIBLE`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_subscriber_connect(
    name: *const c_char,
    options: *const MemlinkServiceOptions,
    subscriber: *mut *mut MemlinkSubscriber,
) -> MemlinkError {
    // SAFETY: forwarded from the C contract.
    unsafe {
        connect_subscriber(
            "memlink_subscriber_connect",
            name,
            options,
            subscriber,
            false,
        )
    }
}

/// As `memlink_subscriber_connect`, but joins a service of any payload
/// type (a Rust `Publisher<u64>`'s, say), receiving its samples as bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_subscriber_connect_any(
    name: *const c_char,
    options: *const MemlinkServiceOptions,
    subscriber: *mut *mut MemlinkSubscriber,
) -> MemlinkError {
    // SAFETY: forwarded from the C contract.
    unsafe {
        connect_subscriber(
            "memlink_subscriber_connect_any",
            name,
            options,
            subscriber,
            true,
        )
    }
}

/// Receives the next sample, waiting at most `timeout_ms` (0: only
/// looks), then `MEMLINK_ERROR_TIMEOUT`. Release it with
/// `memlink_sample_release`; holding more than the service allows is
/// `MEMLINK_ERROR_LIMIT_REACHED`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_subscriber_receive(
    subscriber: *const MemlinkSubscriber,
    timeout_ms: i64,
    sample: *mut *mut MemlinkSample,
) -> MemlinkError {
    const F: &str = "memlink_subscriber_receive";
    clear(sample);
    call(F, || {
        let out = out(sample, F, "sample")?;
        // SAFETY: NULL or a live handle, by the C contract.
        let s = unsafe { handle(subscriber, F, "subscriber") }?;
        let owner = Rc::clone(&s.0);
        // SAFETY: as in `memlink_publisher_loan`: the sample holds a clone
        // of the Rc and is dropped before it.
        let target: &'static Subscriber<[u8]> = unsafe { &*Rc::as_ptr(&owner) };
        let received = match timeout(timeout_ms) {
            None => target.recv()?,
            Some(t) => target.recv_timeout(t)?,
        };
        give(
            out,
            MemlinkSample {
                sample: received,
                _subscriber: owner,
            },
        );
        Ok(())
    })
}

/// The sample's bytes: `*len` at `*data` (either may be NULL), read-only,
/// valid until it is released.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_sample_data(
    sample: *const MemlinkSample,
    data: *mut *const u8,
    len: *mut usize,
) -> MemlinkError {
    const F: &str = "memlink_sample_data";
    call(F, || {
        // SAFETY: NULL or a live handle, by the C contract.
        let s = unsafe { handle(sample, F, "sample") }?;
        put(data, s.sample.as_ptr());
        put(len, s.sample.len());
        Ok(())
    })
}

/// Who sent the sample (the publisher's place) and its number in that
/// publisher's sequence; either out-parameter may be NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_sample_origin(
    sample: *const MemlinkSample,
    publisher_index: *mut u32,
    sequence: *mut u64,
) -> MemlinkError {
    const F: &str = "memlink_sample_origin";
    call(F, || {
        // SAFETY: NULL or a live handle, by the C contract.
        let s = unsafe { handle(sample, F, "sample") }?;
        put(publisher_index, s.sample.publisher_index());
        put(sequence, s.sample.sequence());
        Ok(())
    })
}

/// Gives a received sample's slot back. NULL does nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_sample_release(sample: *mut MemlinkSample) -> MemlinkError {
    call("memlink_sample_release", || {
        // SAFETY: NULL or a live handle not used afterwards, by the C contract.
        unsafe { free(sample) };
        Ok(())
    })
}

/// How many samples the subscriber missed because publishers overwrote
/// them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_subscriber_missed(
    subscriber: *const MemlinkSubscriber,
    missed: *mut u64,
) -> MemlinkError {
    const F: &str = "memlink_subscriber_missed";
    call(F, || {
        let missed = out(missed, F, "missed")?;
        // SAFETY: NULL or a live handle, by the C contract.
        let s = unsafe { handle(subscriber, F, "subscriber") }?;
        // SAFETY: checked non-NULL above.
        unsafe { missed.as_ptr().write(s.0.missed()) };
        Ok(())
    })
}

/// How many publishers are connected now.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_subscriber_publisher_count(
    subscriber: *const MemlinkSubscriber,
    count: *mut usize,
) -> MemlinkError {
    const F: &str = "memlink_subscriber_publisher_count";
    call(F, || {
        let count = out(count, F, "count")?;
        // SAFETY: NULL or a live handle, by the C contract.
        let s = unsafe { handle(subscriber, F, "subscriber") }?;
        let n = s.0.publisher_count()?;
        // SAFETY: checked non-NULL above.
        unsafe { count.as_ptr().write(n) };
        Ok(())
    })
}

/// Disconnects the subscriber (once its held samples are released too).
/// NULL does nothing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_subscriber_close(
    subscriber: *mut MemlinkSubscriber,
) -> MemlinkError {
    call("memlink_subscriber_close", || {
        // SAFETY: NULL or a live handle not used afterwards, by the C contract.
        unsafe { free(subscriber) };
        Ok(())
    })
}

/// What `memlink_service_inspect` finds out about a service.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MemlinkServiceInfo {
    /// Size of the payload type (of one element, for slices), in bytes.
    pub payload_size: u64,
    /// The largest sample in bytes.
    pub max_payload: u64,
    /// Whether samples are slices (byte services are).
    pub slices: bool,
    /// Publishers connected at once, at most.
    pub max_publishers: u32,
    /// Subscribers connected at once, at most.
    pub max_subscribers: u32,
    /// Samples kept per publisher.
    pub capacity: u32,
    /// Samples a late subscriber receives.
    pub history: u32,
    /// What happens to a slow subscriber.
    pub overflow: MemlinkOverflow,
    /// Slots in the pool, over all publishers.
    pub slots: u64,
    /// Slots held by subscribers now.
    pub slots_held: u64,
    /// Live publishers.
    pub publishers: u32,
    /// Live subscribers.
    pub subscribers: u32,
}

/// Looks at the service `name` without joining it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memlink_service_inspect(
    name: *const c_char,
    info: *mut MemlinkServiceInfo,
) -> MemlinkError {
    const F: &str = "memlink_service_inspect";
    call(F, || {
        let info = out(info, F, "info")?;
        // SAFETY: NULL or a C string, by the C contract.
        let name = unsafe { string(name, F, "name") }?;
        let i = inspect_service(name)?;
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let value = MemlinkServiceInfo {
            payload_size: i.payload_size,
            max_payload: i.max_payload,
            slices: i.slices,
            max_publishers: i.max_publishers,
            max_subscribers: i.max_subscribers,
            capacity: i.capacity,
            history: i.history,
            overflow: match i.overflow {
                Overflow::Overwrite => MemlinkOverflow::Overwrite,
                Overflow::Block => MemlinkOverflow::Block,
            },
            slots: i.slots,
            slots_held: i.slots_held,
            publishers: count(i.publishers.len()),
            subscribers: count(i.subscribers.len()),
        };
        // SAFETY: checked non-NULL above.
        unsafe { info.as_ptr().write(value) };
        Ok(())
    })
}
