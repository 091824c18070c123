//! Ctrl-C and friends, as a channel to block on.

use std::sync::mpsc::{self, Receiver};

/// Returns a channel that receives `()` on SIGINT, SIGTERM or SIGHUP (on
/// Windows: Ctrl-C, Ctrl-Break or the console closing), which then no
/// longer end the process. Waiting on it costs nothing: block with `recv`,
/// or use `recv_timeout` as an interruptible sleep.
pub fn termination() -> Result<Receiver<()>, Box<dyn std::error::Error>> {
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
    Ok(rx)
}
