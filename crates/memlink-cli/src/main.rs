//! `memlink`: create, inspect, watch and clean up named shared memory.

mod bench;
mod coordinate;
mod data;
mod demo;
mod hexdump;
mod objects;
mod procs;
mod pubsub;
mod queue;
mod rpc;
mod signals;
mod text;
mod units;
mod watch;

use std::error::Error;
use std::fmt;
use std::io::{self, ErrorKind as IoErrorKind, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Names are 1-200 letters, digits, '.', '_', '-' and '@' (a leading '/' is
dropped; on Windows, Global\\ and Local\\ pick the namespace). Sizes and
offsets take units in powers of 1024: 4096, 4K, 4KiB, 1MiB, 2G.

Examples:
  memlink create demo --size 4K --text hello   hold a region until Ctrl-C
  memlink read demo                            hello
  memlink read demo --hex --len 32             an xxd-style dump
  echo -n 'new' | memlink write demo --offset 6 -
  memlink ls                                   what exists, who holds it
  memlink watch demo                           a live view of the bytes
  memlink create demo --size 4K --background  hold it in the background; prints its pid
  memlink wait demo --timeout 5s               until a program has made it
  memlink lock demo.lock -- ./update.sh        run a command holding a mutex
  memlink event set ready                      wake a program waiting on an event

Exit status: 0 on success, 1 when an operation fails, 2 for bad usage, 124
when a wait timed out; `lock NAME -- COMMAND` exits as the command does.
Colour is used on terminals only, and never when NO_COLOR is set (unless
--color always).";

#[derive(Parser)]
#[command(
    name = "memlink",
    version,
    about = "Named shared memory, the Windows way, on every platform",
    after_help = AFTER_HELP,
    propagate_version = true
)]
struct Cli {
    /// When to use colour: auto (on terminals, unless NO_COLOR is set),
    /// always or never.
    #[arg(
        long,
        global = true,
        value_name = "WHEN",
        default_value = "auto",
        hide_possible_values = true
    )]
    color: ColorWhen,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Create a region and hold it until Ctrl-C (or keep it with
    /// --persistent).
    ///
    /// Without --persistent the region lives while this command runs, as a
    /// Windows file mapping lives while its creator holds it: the command
    /// prints what it made, then waits for Ctrl-C or SIGTERM, closes its
    /// handle and exits. The name goes away when the last handle closes.
    Create(data::CreateArgs),
    /// Print a region's bytes: as text up to the first NUL, as a hex dump,
    /// or raw.
    Read(data::ReadArgs),
    /// Write text, a file or standard input into a region.
    ///
    /// Writing past the end is an error; a region's size never changes.
    #[command(
        override_usage = "memlink write [OPTIONS] <NAME> (--text <TEXT> | --file <PATH> | -)"
    )]
    Write(data::WriteArgs),
    /// List the shared-memory objects: memlink's own and foreign ones.
    ///
    /// Shows every object in /dev/shm (on Linux) that this user can open,
    /// whether memlink made it or another program did (a C program's
    /// shm_open, Python's multiprocessing.shared_memory, ...): its size,
    /// lifetime, whether it is alive or stale (every holder died), and the
    /// processes holding it. Use --all to also see what cannot be opened
    /// and POSIX semaphores.
    #[command(visible_alias = "list")]
    Ls(objects::LsArgs),
    /// Show everything known about one object, with the processes holding
    /// and mapping it.
    #[command(visible_alias = "inspect")]
    Info(objects::InfoArgs),
    /// Remove names.
    ///
    /// Persistent, stale and foreign objects are removed at once. A memlink
    /// region that live processes hold goes away by itself when they close
    /// it; removing its name early needs --force. Processes that have it
    /// open keep their memory either way.
    #[command(visible_alias = "remove")]
    Rm(objects::RmArgs),
    /// Remove the stale objects left by processes that crashed.
    ///
    /// Only memlink's own last-handle objects whose every holder died are
    /// removed; foreign objects are never touched.
    Reap(objects::ReapArgs),
    /// Show a region's bytes live, redrawn in place, with changes marked.
    ///
    /// Bytes that changed since the last look are shown in reverse video
    /// (marked with '*' where colour is off) for a second, or one interval
    /// if longer. Ends on Ctrl-C, or when the region goes away: watching
    /// does not keep it alive, as it opens the region only for each look.
    /// When the output is not a terminal, a new frame is printed after each
    /// change instead.
    Watch(watch::WatchArgs),
    /// Wait until an object of this name exists: for scripts that start a
    /// program (or `memlink create ... &`) and then use what it makes.
    Wait(coordinate::WaitArgs),
    /// Lock a named mutex (making it if need be) and run a command holding
    /// it, or hold it until Ctrl-C; as flock(1) does with files.
    #[command(override_usage = "memlink lock [OPTIONS] <NAME> [-- <COMMAND>...]")]
    Lock(coordinate::LockArgs),
    /// Set, reset or wait on a named event that a program made.
    Event {
        #[command(subcommand)]
        action: coordinate::EventAction,
    },
    /// Release or wait on a named semaphore that a program made.
    Semaphore {
        #[command(subcommand)]
        action: coordinate::SemaphoreAction,
    },
    /// Publish messages to a service: a text, a file, or each line of
    /// standard input.
    ///
    /// Joins the service NAME as a publisher (making it, for byte messages,
    /// if it does not exist) and sends, then leaves. Messages go to the
    /// subscribers connected at the time (and, with --history, to those
    /// that join later while the service lives); use --wait-subscribers so a
    /// script does not send before its subscriber is there.
    #[command(
        name = "pub",
        override_usage = "memlink pub [OPTIONS] <NAME> (--text <TEXT> | --file <PATH> | -)"
    )]
    Pub(pubsub::PubArgs),
    /// Print the messages of a service as they come.
    ///
    /// Joins the service NAME as a subscriber (making it if it does not
    /// exist) and prints each message: as text, a hex dump, raw bytes or
    /// JSON lines. Messages missed because the publisher overwrote them are
    /// reported on stderr (and in the JSON). Ends on Ctrl-C or after
    /// --count messages.
    #[command(name = "sub")]
    Sub(pubsub::SubArgs),
    /// Push messages onto a work queue: a text, or each line of standard
    /// input.
    ///
    /// Joins the queue NAME as a producer (making it, for byte messages, if
    /// it does not exist), sends, waiting for room, then leaves. The queue
    /// lives while some process holds it: start a consumer (`memlink pop`)
    /// first, or the messages go with the queue when this command ends.
    #[command(override_usage = "memlink push [OPTIONS] <NAME> (--text <TEXT> | -)")]
    Push(queue::PushArgs),
    /// Take messages from a work queue and print them, one per line.
    ///
    /// Joins the queue NAME as a consumer, competing with the others: each
    /// message goes to one consumer. Each is acknowledged once printed.
    Pop(queue::PopArgs),
    /// Send one request to a request/response service and print each
    /// response.
    ///
    /// Joins the service NAME as a client, waits (up to --timeout) for a
    /// server, sends the request (a text, or all of standard input) and
    /// prints every response as it comes (text, a hex dump, raw bytes or
    /// JSON lines) until the server ends the answer. A server that goes
    /// away first is an error; no complete answer in time is exit status
    /// 124.
    #[command(override_usage = "memlink call [OPTIONS] <NAME> (--text <TEXT> | -)")]
    Call(rpc::CallArgs),
    /// Serve a request/response service: answer each request.
    ///
    /// Becomes the server of NAME (one per service: another live server is
    /// an error), making it for byte messages if it does not exist, and
    /// answers every request with its own bytes (--echo), printing each
    /// request unless --quiet. Ends on Ctrl-C or after --count requests.
    Serve(rpc::ServeArgs),
    /// Play the seeds' two-process demo: create, write, read from another
    /// process, close, and watch the name go away.
    Demo(demo::DemoArgs),
    /// The demo's second process (started by `memlink demo`).
    #[command(hide = true)]
    DemoReader(demo::ReaderArgs),
    /// Measure named shared memory on this machine, against references
    /// measured in the same run.
    ///
    /// Region life cycle (create+map+write+unmap+close and
    /// open+map+read+unmap+close); the wake-up round trip between this
    /// process and a second one through two auto-reset events, against the
    /// same two processes bouncing a byte over pipes; the polling round
    /// trip, both processes spinning on one shared counter (the floor for
    /// messages through shared memory); and bulk copying into a mapped 1 MiB
    /// region, against memcpy into heap memory.
    ///
    /// Batches of memlink and of the reference alternate; each figure is the
    /// median over the batches and each ratio the median of the per-batch
    /// ratios: events over pipes (below 1 is faster) and region over memcpy
    /// bandwidth (1 is as fast). The life cycle against the bare system calls
    /// is in `cargo bench -p memlink`.
    Bench(bench::BenchArgs),
    /// The benchmark's second process (started by `memlink bench`).
    #[command(hide = true)]
    BenchPeer(bench::PeerArgs),
    /// Print shell completions: `memlink completions bash >
    /// /etc/bash_completion.d/memlink`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// What a command returns: `Err` is reported as `memlink: ERROR`.
pub type CmdResult<T = ()> = Result<T, Box<dyn Error>>;

/// An error with just a message.
pub fn failure(message: impl Into<String>) -> Box<dyn Error> {
    message.into().into()
}

/// Errors already written to stderr (by a command that goes on after one
/// fails, as `rm` with several names does), with the exit status the worst
/// of them calls for (see [`exit_code`]).
#[derive(Debug)]
pub struct AlreadyReported {
    pub exit_code: u8,
}

impl fmt::Display for AlreadyReported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("failed")
    }
}

impl Error for AlreadyReported {}

/// Writes an error to stderr as every command does.
pub fn report(e: &dyn Error) {
    eprintln!("memlink: {e}");
}

/// Whether output to stdout gets colour: a terminal without NO_COLOR (or
/// `--color always`).
pub fn colour_on_stdout() -> bool {
    anstream::AutoStream::choice(&io::stdout()) != anstream::ColorChoice::Never
}

/// `ERROR_PIPE_NOT_CONNECTED`: what Wine's WriteFile says where Windows
/// says `ERROR_NO_DATA` (a broken pipe to std) for a pipe whose reader left.
const ERROR_PIPE_NOT_CONNECTED: i32 = 233;

/// Whether the error is stdout closing under us (`memlink read ... | head`),
/// which ends the command quietly, as a Unix filter does.
fn is_broken_pipe(e: &(dyn Error + 'static)) -> bool {
    let Some(e) = e.downcast_ref::<io::Error>() else {
        return false;
    };
    e.kind() == IoErrorKind::BrokenPipe
        || (cfg!(windows) && e.raw_os_error() == Some(ERROR_PIPE_NOT_CONNECTED))
}

/// A JSON writer's I/O error as the `io::Error` it wraps (which keeps the
/// OS error code that [`is_broken_pipe`] looks at); other errors unchanged.
fn unwrap_json_io(e: Box<dyn Error>) -> Box<dyn Error> {
    match e.downcast::<serde_json::Error>() {
        Ok(e) if e.is_io() => Box::new(io::Error::from(*e)),
        Ok(e) => e,
        Err(e) => e,
    }
}

/// 2 for what the user typed wrong (an invalid name), 124 for a wait that
/// timed out, 1 for the rest.
pub fn exit_code(e: &(dyn Error + 'static)) -> u8 {
    if e.is::<coordinate::TimedOut>() {
        return coordinate::TIMED_OUT;
    }
    match e.downcast_ref::<memlink::Error>() {
        Some(e) if e.kind() == memlink::ErrorKind::InvalidName => 2,
        _ => 1,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.color {
        ColorWhen::Auto => {}
        ColorWhen::Always => {
            anstream::ColorChoice::Always.write_global();
            // The tables' colours come from crossterm, which reads
            // NO_COLOR itself; `always` is always.
            crossterm::style::force_color_output(true);
        }
        ColorWhen::Never => anstream::ColorChoice::Never.write_global(),
    }
    let result = match cli.command {
        Command::Create(args) => data::create(args),
        Command::Read(args) => data::read(args),
        Command::Write(args) => data::write(args),
        Command::Ls(args) => objects::ls(args),
        Command::Info(args) => objects::info(args),
        Command::Rm(args) => objects::rm(args),
        Command::Reap(args) => objects::reap(args),
        Command::Watch(args) => watch::run(args),
        Command::Wait(args) => coordinate::wait(args),
        Command::Lock(args) => coordinate::lock(args),
        Command::Event { action } => coordinate::event(action),
        Command::Semaphore { action } => coordinate::semaphore(action),
        Command::Pub(args) => pubsub::publish(args),
        Command::Sub(args) => pubsub::subscribe(args),
        Command::Push(args) => queue::push(args),
        Command::Pop(args) => queue::pop(args),
        Command::Call(args) => rpc::call(args),
        Command::Serve(args) => rpc::serve(args),
        Command::Demo(args) => demo::run(args),
        Command::DemoReader(args) => demo::reader(args),
        Command::Bench(args) => bench::run(args),
        Command::BenchPeer(args) => bench::peer(args),
        Command::Completions { shell } => completions(shell),
    };
    match result.map_err(unwrap_json_io) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&*e) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<AlreadyReported>() {
            Some(reported) => ExitCode::from(reported.exit_code),
            None => {
                report(&*e);
                ExitCode::from(exit_code(&*e))
            }
        },
    }
}

/// Prints the completion script. `clap_complete::generate` panics when it
/// cannot write, so it writes to memory, and the script goes to stdout with
/// its error returned (`memlink completions bash | head` ends quietly).
fn completions(shell: clap_complete::Shell) -> CmdResult {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "memlink", &mut script);
    let mut out = io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
