//! The bits of Linux the references need: CPU pinning, futex calls, a
//! bounded spin.

use std::hint::spin_loop;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use super::{fail, Res};

/// How long either process waits for the other before giving up.
pub const SILENCE: Duration = Duration::from_secs(5);

/// The first two CPUs this process may run on: "same vCPU" pins both
/// processes to the first, "different vCPUs" one to each.
pub fn two_cpus() -> Res<[usize; 2]> {
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity fills
    // at most size_of::<cpu_set_t>() bytes of it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Err(fail(format!(
            "cannot read this process's CPU affinity: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: CPU_ISSET only reads the set, for indexes below CPU_SETSIZE.
    let allowed: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .take(2)
        .collect();
    match allowed[..] {
        [a, b] => Ok([a, b]),
        _ => Err(fail(
            "memlink-bench needs two CPUs to pin its processes to (same vCPU and different \
             vCPUs); this process may run on one only",
        )),
    }
}

/// Pins the calling thread (the whole process: both are single-threaded)
/// to `cpu`.
pub fn pin_to(cpu: usize) -> Res {
    // SAFETY: a zeroed cpu_set_t is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` comes from `two_cpus`, below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc != 0 {
        return Err(fail(format!(
            "cannot pin this process to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Sleeps while `word` holds `seen`, for at most `timeout` (a shared,
/// not process-private, futex: the word is in memory both processes map).
pub fn futex_wait(word: &AtomicU32, seen: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call;
    // FUTEX_WAIT only reads it and `ts`. Its result (woken, value changed,
    // timed out, interrupted) is not needed: callers re-check the word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            seen,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes one sleeper on `word`.
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address of `word` as a key.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1u32);
    }
}

/// Polls `ready` until it gives a value; `None` after `SILENCE` without
/// one. The clock is read only once in a while, so the poll stays tight.
pub fn spin<T>(mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let mut deadline: Option<Instant> = None;
    let mut polls = 0u32;
    loop {
        if let Some(value) = ready() {
            return Some(value);
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(4096) {
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + SILENCE);
            if Instant::now() >= deadline {
                return None;
            }
        }
        spin_loop();
    }
}

/// The CPU time this thread has used.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock always exists
    // on Linux, so the call cannot fail (and `ts` stays zero if it did).
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
