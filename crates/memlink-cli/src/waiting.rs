//! How the messaging commands wait: for peers to connect, and for a
//! message while watching for Ctrl-C. A wait that runs out of time exits
//! with [`TIMED_OUT`](crate::coordinate::TIMED_OUT), as every `--timeout`
//! of the tool does.

use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use memlink::ErrorKind;

use crate::coordinate::TimedOut;
use crate::CmdResult;

/// How often a waiting receive looks at Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// How often the place table is looked at while waiting for peers: they
/// ring nobody when they join.
const PEER_POLL: Duration = Duration::from_millis(5);

/// Waits until `count()` says `wanted` peers are connected. `action` says
/// what waits (`cannot push onto queue "jobs"`), `peers` who it waits for
/// (`consumers`).
pub fn for_peers(
    action: &str,
    peers: &str,
    wanted: usize,
    timeout: Duration,
    count: impl Fn() -> memlink::Result<usize>,
) -> CmdResult {
    let deadline = Instant::now() + timeout;
    loop {
        let connected = count()?;
        if connected >= wanted {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Box::new(TimedOut(format!(
                "{action}: {connected} of {wanted} {peers} connected after {}",
                humantime::format_duration(timeout)
            ))));
        }
        std::thread::sleep(PEER_POLL);
    }
}

/// Receives one message with `recv` (given how long it may wait), looking
/// at `stop` (Ctrl-C) in between: `None` once stopped. With `limit`, no
/// message for that long is a timeout that says `action`.
pub fn for_message<M>(
    stop: &Receiver<()>,
    limit: Option<Duration>,
    action: &str,
    mut recv: impl FnMut(Duration) -> memlink::Result<M>,
) -> CmdResult<Option<M>> {
    let started = Instant::now();
    loop {
        match stop.try_recv() {
            Ok(()) | Err(TryRecvError::Disconnected) => return Ok(None),
            Err(TryRecvError::Empty) => {}
        }
        let wait = limit.map_or(SIGNAL_CHECK, |l| {
            l.saturating_sub(started.elapsed()).min(SIGNAL_CHECK)
        });
        match recv(wait) {
            Ok(message) => return Ok(Some(message)),
            Err(e) if e.kind() == ErrorKind::Timeout => {
                if let Some(limit) = limit {
                    if started.elapsed() >= limit {
                        return Err(Box::new(TimedOut(format!(
                            "{action}: no message for {}",
                            humantime::format_duration(limit)
                        ))));
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}
