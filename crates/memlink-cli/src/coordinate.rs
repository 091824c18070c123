//! Commands for scripts that coordinate with programs: wait for a name,
//! hold a mutex, set and wait on events, release and wait on semaphores.
//!
//! A wait that runs out of time exits with [`TIMED_OUT`], so a script can
//! tell it from a failure (1) and bad usage (2).

use std::error::Error;
use std::fmt;
use std::io::{self, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use memlink::{ErrorKind, Event, Mutex, Semaphore, State};

use crate::units;
use crate::{signals, CmdResult};

/// The exit status of a wait that timed out, as `timeout(1)` uses it.
pub const TIMED_OUT: u8 = 124;

/// A wait that ran out of time: exits with [`TIMED_OUT`].
#[derive(Debug)]
pub struct TimedOut(pub String);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for TimedOut {}

/// A library error, with a timeout turned into [`TimedOut`].
pub(crate) fn timed_out_or(e: memlink::Error) -> Box<dyn Error> {
    if e.kind() == ErrorKind::Timeout {
        Box::new(TimedOut(e.to_string()))
    } else {
        Box::new(e)
    }
}

#[derive(clap::Args)]
pub struct WaitArgs {
    /// The object's name (a region, or any other kind).
    name: String,
    /// How long to wait: 100ms, 5s, 1m, 0.5 [default: as long as it
    /// takes].
    #[arg(short, long, value_name = "D", value_parser = units::timeout)]
    timeout: Option<Duration>,
}

/// How often `wait` looks for the name: often enough for a script not to
/// notice, seldom enough to cost nothing.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// `memlink wait NAME`: returns once an object of that name exists (and
/// is not stale), e.g. once `memlink create NAME ... &` has made it.
pub fn wait(args: WaitArgs) -> CmdResult {
    let deadline = args.timeout.map(|t| Instant::now() + t);
    loop {
        match memlink::inspect(&args.name) {
            Ok(info) if info.state != State::Stale => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Box::new(TimedOut(format!(
                "cannot wait for \"{}\": it did not appear within {}",
                args.name,
                humantime::format_duration(args.timeout.unwrap_or_default())
            ))));
        }
        // Nothing to block on for a name that does not exist yet, on
        // every platform alike: look again shortly.
        std::thread::sleep(LOOK_EVERY);
    }
}

#[derive(clap::Args)]
pub struct LockArgs {
    /// The mutex's name; it is made if it does not exist.
    name: String,
    /// How long to wait for the lock [default: as long as it takes].
    #[arg(short, long, value_name = "D", value_parser = units::timeout)]
    timeout: Option<Duration>,
    /// The command to run holding the lock; its exit status is this one's.
    /// Without one, the lock is held until Ctrl-C or SIGTERM.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// `memlink lock NAME [-- COMMAND...]`, as `flock(1)` does for files.
pub fn lock(args: LockArgs) -> CmdResult {
    let (mutex, _) = Mutex::create_or_open(&args.name)?;
    let guard = match args.timeout {
        Some(timeout) => mutex.lock_timeout(timeout).map_err(timed_out_or)?,
        None => mutex.lock()?,
    };
    if guard.was_abandoned() {
        eprintln!(
            "memlink: warning: mutex \"{}\" was abandoned: its last holder died holding it",
            args.name
        );
    }
    // From here Ctrl-C unlocks rather than kills (a command run under the
    // lock gets it too, and ends first).
    let stop = signals::termination()?;
    let Some((program, rest)) = args.command.split_first() else {
        let mut out = io::stdout().lock();
        writeln!(
            out,
            "locked mutex \"{}\" in process {}; Ctrl-C (or SIGTERM) unlocks it",
            args.name,
            std::process::id()
        )?;
        out.flush()?;
        drop(out);
        let _ = stop.recv();
        drop(guard);
        return Ok(());
    };
    let status = Command::new(program).args(rest).status().map_err(|e| {
        format!(
            "cannot run {program:?} holding mutex \"{}\": {e}",
            args.name
        )
    })?;
    drop(guard);
    match status.code() {
        Some(0) => Ok(()),
        code => Err(Box::new(crate::AlreadyReported {
            exit_code: code.and_then(|c| u8::try_from(c).ok()).unwrap_or(1),
        })),
    }
}

#[derive(clap::Subcommand)]
pub enum EventAction {
    /// Set the event: wakes its waiters (one, for an auto-reset event).
    Set { name: String },
    /// Reset the event.
    Reset { name: String },
    /// Wait until the event is set (and, if auto-reset, take the setting).
    Wait {
        name: String,
        /// How long to wait [default: as long as it takes].
        #[arg(short, long, value_name = "D", value_parser = units::timeout)]
        timeout: Option<Duration>,
    },
}

/// `memlink event set|reset|wait NAME`, on an event a program made.
pub fn event(action: EventAction) -> CmdResult {
    match action {
        EventAction::Set { name } => Event::open(&name)?.set()?,
        EventAction::Reset { name } => Event::open(&name)?.reset()?,
        EventAction::Wait { name, timeout } => {
            let event = Event::open(&name)?;
            match timeout {
                Some(timeout) => event.wait_timeout(timeout).map_err(timed_out_or)?,
                None => event.wait()?,
            }
        }
    }
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum SemaphoreAction {
    /// Release the semaphore: add to its count; prints the count before.
    Release {
        name: String,
        /// How much to add.
        #[arg(short = 'n', long, default_value = "1",
              value_parser = clap::value_parser!(u32).range(1..))]
        count: u32,
    },
    /// Wait until the count is above 0, and take one.
    Wait {
        name: String,
        /// How long to wait [default: as long as it takes].
        #[arg(short, long, value_name = "D", value_parser = units::timeout)]
        timeout: Option<Duration>,
    },
}

/// `memlink semaphore release|wait NAME`, on a semaphore a program made.
pub fn semaphore(action: SemaphoreAction) -> CmdResult {
    match action {
        SemaphoreAction::Release { name, count } => {
            let before = Semaphore::open(&name)?.release(count)?;
            writeln!(io::stdout(), "{before}")?;
        }
        SemaphoreAction::Wait { name, timeout } => {
            let semaphore = Semaphore::open(&name)?;
            match timeout {
                Some(timeout) => semaphore.wait_timeout(timeout).map_err(timed_out_or)?,
                None => semaphore.wait()?,
            }
        }
    }
    Ok(())
}
