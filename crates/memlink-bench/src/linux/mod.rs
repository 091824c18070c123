//! The benchmark on Linux: the driver (this process, pinned to the first
//! CPU) times its side of each batch; the peer (this binary again, started
//! with the hidden `--peer`) serves the other side, pinned per batch.
//!
//! The peer takes one command line per batch on its standard input
//! (`<contender> <count> <cpu>`), pins itself, answers `go`, serves the
//! batch, answers `done` with the CPU time it spent (for a one-way stream
//! that is also the sign it has every message) and reads the next. Its every
//! wait is bounded, and it ends when its standard input closes. The pipe
//! contender's messages go over the same two pipes.
//!
//! Every figure is the median over batches; the batches of all contenders
//! of a group alternate (one of each per round, after a round to warm up),
//! so load from elsewhere falls on all alike, and each ratio is the median
//! of the per-batch ratios of figures measured in the same rounds.

mod async_rtt;
mod ends;
mod queue;
mod sys;

use std::error::Error;
use std::fmt::Display;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::net::UnixListener;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use comfy_table::{Attribute, Cell, CellAlignment, Table};
use serde::Serialize;

use ends::{Contender, Ends, Library, Side, SUBSCRIBER_COUNTS};

pub type Res<T = ()> = Result<T, Box<dyn Error + Send + Sync>>;

pub fn fail(message: impl Into<String>) -> Box<dyn Error + Send + Sync> {
    message.into().into()
}

/// Names what failed.
pub trait Context<T> {
    fn context(self, what: impl Display) -> Res<T>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn context(self, what: impl Display) -> Res<T> {
        self.map_err(|e| fail(format!("{what}: {e}")))
    }
}

/// memlink's publish/subscribe against iceoryx2 0.10, a Unix socket, a
/// pipe, a bare futex ping-pong and the cache-line floor, between two
/// processes, in one run, alternating batches.
#[derive(Parser)]
#[command(name = "memlink-bench", version)]
struct Args {
    /// Small counts and 5 batches: a first look in a few seconds (noisier).
    #[arg(short, long)]
    quick: bool,
    /// Print a JSON object, with every batch's figures, instead of a table.
    #[arg(long)]
    json: bool,
    /// How many measured batches each figure is the median of, after one
    /// round to warm up [default: 21; with --quick, 5].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    rounds: Option<u32>,
    /// Measure only these groups (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "GROUP")]
    only: Vec<Group>,
    /// Measure only the figure with this key (e.g. block_same.memlink), for
    /// profiling one contender with strace or perf.
    #[arg(long, hide = true, value_name = "KEY")]
    solo: Option<String>,
    /// Serve as the peer process of the run named TAG (internal).
    #[arg(long, hide = true, value_name = "TAG")]
    peer: Option<String>,
    /// Serve as a consumer of the work queue NAME (internal).
    #[arg(long, hide = true, value_name = "NAME")]
    queue_consumer: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Group {
    /// 64 B polling round trips, and zero-copy 4 KiB and 1 MiB ones.
    Polling,
    /// 64 B blocking round trips, on one vCPU and on two.
    Blocking,
    /// One-way throughput of 64 B messages, every one delivered.
    Throughput,
    /// Cost of a send with 1, 8 and 64 idle subscribers.
    SendCost,
    /// Work-queue throughput of 64 B messages to 1 and 3 consumers.
    Queue,
    /// 64 B request/response round trips: memlink polling and blocking,
    /// iceoryx2's request/response, a Unix socket; on one vCPU and on two.
    Rpc,
    /// Async (tokio) round trips against blocking ones and a tokio socket.
    Async,
}

pub fn main() -> ExitCode {
    if let Some(served) = async_rtt::peer_from_env() {
        return served.map_or_else(
            |e| {
                eprintln!("memlink-bench (async peer): {e}");
                ExitCode::FAILURE
            },
            |()| ExitCode::SUCCESS,
        );
    }
    let args = Args::parse();
    // Warnings and errors only: iceoryx2 logs to standard error.
    iceoryx2::prelude::set_log_level(iceoryx2::prelude::LogLevel::Error);
    let result = match (&args.peer, &args.queue_consumer) {
        (Some(tag), _) => serve(tag),
        (None, Some(name)) => queue::serve(name),
        (None, None) => drive(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let who = if args.peer.is_some() {
                "memlink-bench (peer)"
            } else {
                "memlink-bench"
            };
            eprintln!("{who}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Round trips, messages or sends in the warm-up batch of each figure
/// (the measured batches are sized from it to last about `batch_time`).
struct Counts {
    rounds: usize,
    batch_time: Duration,
    polls: u32,
    slices: u32,
    blocking_same: u32,
    blocking_apart: u32,
    stream: u32,
    sends: u32,
}

impl Counts {
    fn new(args: &Args) -> Counts {
        let mut counts = if args.quick {
            Counts {
                rounds: 5,
                batch_time: Duration::from_millis(4),
                polls: 2_000,
                slices: 1_000,
                blocking_same: 200,
                blocking_apart: 30,
                stream: 20_000,
                sends: 5_000,
            }
        } else {
            Counts {
                rounds: 21,
                batch_time: Duration::from_millis(40),
                polls: 20_000,
                slices: 10_000,
                blocking_same: 2_000,
                blocking_apart: 300,
                stream: 200_000,
                sends: 20_000,
            }
        };
        if let Some(rounds) = args.rounds {
            counts.rounds = rounds as usize;
        }
        counts
    }
}

/// What `--json` prints. Each figure is the median of its batches.
#[derive(Serialize)]
struct Report {
    batches: usize,
    /// The CPUs the processes are pinned to: the driver always to the
    /// first; the peer to the first ("same vCPU") or the second.
    cpus: [usize; 2],
    figures: Vec<Figure>,
    comparisons: Vec<Comparison>,
}

#[derive(Serialize)]
struct Figure {
    /// The heading of the figure's group in the table.
    group: String,
    key: String,
    label: String,
    unit: &'static str,
    /// Round trips, messages or sends per measured batch.
    count: u32,
    median: f64,
    batches: Vec<f64>,
    /// The share of wall time the driver spent on a CPU during a batch
    /// (thread CPU time / elapsed): near 1 when it polls or spins, lower
    /// when it sleeps in the kernel. The median, and each batch's.
    driver_cpu: f64,
    driver_cpu_batches: Vec<f64>,
    /// The same for the peer's serving side (its thread CPU time over the
    /// driver's wall time of the batch; its serving starts a little before
    /// and ends a little after that, so a short batch can show more than
    /// 100%); none where the peer idles (send cost).
    peer_cpu: Option<f64>,
    peer_cpu_batches: Vec<f64>,
}

#[derive(Serialize)]
struct Comparison {
    figure: String,
    reference: String,
    /// Figure over reference, the median of the per-batch ratios.
    ratio: f64,
    aim: Option<Aim>,
    met: Option<bool>,
}

#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
enum Aim {
    AtMost(f64),
    AtLeast(f64),
}

impl Aim {
    fn met(self, ratio: f64) -> bool {
        match self {
            Aim::AtMost(limit) => ratio <= limit,
            Aim::AtLeast(limit) => ratio >= limit,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// µs per round trip.
    Micros,
    /// Millions of messages per second.
    MegaMessages,
    /// ns per send.
    Nanos,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Micros => "µs",
            Unit::MegaMessages => "M msg/s",
            Unit::Nanos => "ns",
        }
    }

    fn of(self, elapsed: Duration, count: u32) -> f64 {
        let seconds = elapsed.as_secs_f64();
        match self {
            Unit::Micros => seconds * 1e6 / f64::from(count),
            Unit::MegaMessages => f64::from(count) / seconds / 1e6,
            Unit::Nanos => seconds * 1e9 / f64::from(count),
        }
    }

    fn format(self, value: f64) -> String {
        let decimals = match value {
            v if v < 1.0 => 3,
            v if v < 10.0 => 2,
            v if v < 100.0 => 1,
            _ => 0,
        };
        format!("{value:.decimals$} {}", self.name())
    }
}

/// What one batch of a figure does.
#[derive(Clone, Copy)]
enum Job {
    /// A contender with the peer pinned to this CPU.
    Peer(Contender, usize),
    /// Sends from the driver alone, the peer's subscribers idle.
    SendCost(Library, usize),
    /// Work-queue messages to this many consumer processes on this CPU.
    Queue(usize, usize),
}

struct Spec {
    key: String,
    label: String,
    unit: Unit,
    job: Job,
    count: u32,
}

fn spec(key: &str, label: &str, unit: Unit, job: Job, count: u32) -> Spec {
    Spec {
        key: key.to_owned(),
        label: label.to_owned(),
        unit,
        job,
        count,
    }
}

/// The median (the upper one for an even count); `figures` is not empty.
fn median(figures: impl IntoIterator<Item = f64>) -> f64 {
    let mut sorted: Vec<f64> = figures.into_iter().collect();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// The peer process, ended (and waited for) when dropped.
struct Peer {
    child: Child,
    to: Option<ChildStdin>,
    from: ChildStdout,
}

impl Peer {
    fn start(tag: &str) -> Res<Peer> {
        let exe = std::env::current_exe().context("finding this program to start its peer")?;
        let mut child = Command::new(&exe)
            .args(["--peer", tag])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context(format!("starting the peer process {}", exe.display()))?;
        let to = child.stdin.take();
        let from = child.stdout.take().expect("stdout is piped");
        Ok(Peer { child, to, from })
    }

    /// Reads the peer's next line, which must be `want`.
    fn expect_line(&mut self, want: &str) -> Res {
        let got = self.read_line()?;
        if got != want {
            return Err(fail(format!(
                "the peer process said {got:?}, expected {want:?}"
            )));
        }
        Ok(())
    }

    /// Reads the peer's `done CPU_NANOSECONDS` after a batch: the CPU time
    /// it spent serving it.
    fn read_done(&mut self) -> Res<Duration> {
        let got = self.read_line()?;
        got.strip_prefix("done ")
            .and_then(|n| n.parse::<u64>().ok())
            .map(Duration::from_nanos)
            .ok_or_else(|| fail(format!("the peer process said {got:?}, expected done")))
    }

    /// The peer's next line, without its end.
    fn read_line(&mut self) -> Res<String> {
        let mut line = Vec::new();
        let mut byte = [0u8];
        while byte[0] != b'\n' {
            match self.from.read(&mut byte) {
                Ok(0) => {
                    return Err(fail(
                        "the peer process has ended (its error, if any, is above)",
                    ))
                }
                Ok(_) => line.push(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(fail(format!("reading from the peer process: {e}"))),
            }
        }
        Ok(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned())
    }

    /// Tells the peer to serve `count` of `contender` pinned to `cpu`;
    /// returns when it is ready.
    fn command(&mut self, contender: Contender, count: u32, cpu: usize) -> Res {
        let to = self.to.as_mut().expect("open until dropped");
        writeln!(to, "{} {count} {cpu}", contender.key())
            .and_then(|()| to.flush())
            .context("writing to the peer process")?;
        self.expect_line("go")
    }
}

impl Drop for Peer {
    /// Closes the peer's standard input, which ends it between batches;
    /// kills it if it has not ended soon after (in the middle of a batch,
    /// after an error here).
    fn drop(&mut self) {
        drop(self.to.take());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The driver's state: its ends and the peer.
struct Driver {
    ends: Ends,
    peer: Peer,
    rounds: usize,
    /// About how long each measured batch runs.
    batch_time: Duration,
    solo: Option<String>,
    /// The work queue's consumer processes, while its group runs.
    queue: Option<queue::Bench>,
}

impl Driver {
    /// One batch: its figure, and the shares of the batch's wall time the
    /// driver and the peer (when it takes part) spent on a CPU (near 1 when
    /// polling, low when sleeping).
    fn batch(&mut self, spec: &Spec) -> Res<(f64, f64, Option<f64>)> {
        let share = |cpu: Duration, elapsed: Duration| cpu.as_secs_f64() / elapsed.as_secs_f64();
        match spec.job {
            Job::Peer(contender, cpu) => {
                self.peer.command(contender, spec.count, cpu)?;
                let to = self.peer.to.as_mut().expect("open until dropped");
                let (start, cpu_start) = (Instant::now(), sys::thread_cpu_time());
                self.ends
                    .run(contender, spec.count, &mut self.peer.from, to)
                    .context(format!("measuring {}", spec.label))?;
                // A stream ends when the peer has every message.
                let peer_cpu = if contender.is_stream() {
                    Some(self.peer.read_done()?)
                } else {
                    None
                };
                let elapsed = start.elapsed();
                let driver_cpu = sys::thread_cpu_time().saturating_sub(cpu_start);
                let peer_cpu = match peer_cpu {
                    Some(cpu) => cpu,
                    None => self.peer.read_done()?,
                };
                Ok((
                    spec.unit.of(elapsed, spec.count),
                    share(driver_cpu, elapsed),
                    Some(share(peer_cpu, elapsed)),
                ))
            }
            Job::Queue(consumers, cpu) => {
                let bench = self.queue.as_mut().expect("started with its group");
                bench.prepare(consumers, cpu)?;
                let (start, cpu_start) = (Instant::now(), sys::thread_cpu_time());
                let consumer_cpu = bench
                    .run(spec.count)
                    .context(format!("measuring {}", spec.label))?;
                let elapsed = start.elapsed();
                let driver_cpu = sys::thread_cpu_time().saturating_sub(cpu_start);
                Ok((
                    spec.unit.of(elapsed, spec.count),
                    share(driver_cpu, elapsed),
                    Some(share(consumer_cpu, elapsed)),
                ))
            }
            Job::SendCost(library, subscribers) => {
                let (start, cpu_start) = (Instant::now(), sys::thread_cpu_time());
                self.ends
                    .send_cost(library, subscribers, spec.count)
                    .context(format!("measuring {}", spec.label))?;
                let elapsed = start.elapsed();
                let driver_cpu = sys::thread_cpu_time().saturating_sub(cpu_start);
                Ok((
                    spec.unit.of(elapsed, spec.count),
                    share(driver_cpu, elapsed),
                    None,
                ))
            }
        }
    }

    /// One round of every spec to warm up, then `rounds` rounds.
    fn measure(&mut self, group: &str, mut specs: Vec<Spec>) -> Res<Vec<Figure>> {
        if let Some(solo) = &self.solo {
            specs.retain(|s| &s.key == solo);
        }
        // The warm-up batch also sizes the measured ones: every batch of the
        // group runs for about the same wall time, so a slow contender's
        // batches are not the only ones long enough to be preempted by
        // other processes (a batch shorter than a time slice escapes).
        for spec in &mut specs {
            let (figure, _, _) = self.batch(spec)?;
            let micros_per_op = match spec.unit {
                Unit::Micros => figure,
                Unit::MegaMessages => 1.0 / figure,
                Unit::Nanos => figure / 1000.0,
            };
            let fits = self.batch_time.as_secs_f64() * 1e6 / micros_per_op;
            // Within reason of the planned count, should the warm-up batch
            // itself have been disturbed.
            let (low, high) = (f64::from(spec.count) / 20.0, f64::from(spec.count) * 50.0);
            spec.count = fits.clamp(low.max(10.0), high.min(1e8)) as u32;
        }
        let mut batches = vec![Vec::with_capacity(self.rounds); specs.len()];
        let mut cpu = vec![Vec::with_capacity(self.rounds); specs.len()];
        let mut peer_cpu = vec![Vec::with_capacity(self.rounds); specs.len()];
        for _ in 0..self.rounds {
            for (k, spec) in specs.iter().enumerate() {
                let (figure, share, peer_share) = self.batch(spec)?;
                batches[k].push(figure);
                cpu[k].push(share);
                peer_cpu[k].extend(peer_share);
            }
        }
        Ok(specs
            .into_iter()
            .zip(batches)
            .zip(cpu.into_iter().zip(peer_cpu))
            .map(|((spec, batches), (cpu, peer_cpu))| Figure {
                driver_cpu: median(cpu.iter().copied()),
                driver_cpu_batches: cpu,
                peer_cpu: (!peer_cpu.is_empty()).then(|| median(peer_cpu.iter().copied())),
                peer_cpu_batches: peer_cpu,
                group: group.to_owned(),
                key: spec.key,
                label: spec.label,
                unit: spec.unit.name(),
                count: spec.count,
                median: median(batches.iter().copied()),
                batches,
            })
            .collect())
    }
}

fn drive(args: &Args) -> Res {
    let counts = Counts::new(args);
    let cpus = sys::two_cpus()?;
    sys::pin_to(cpus[0])?;
    let tag = format!("memlink-bench-{}", std::process::id());
    let listener = UnixListener::bind_addr(&ends::socket_address(&tag)?)
        .context("listening on the Unix socket")?;
    let ends = Ends::new(Side::Driver, &tag)?;
    let mut peer = Peer::start(&tag)?;
    // The peer has joined every service and connected the socket.
    peer.expect_line("ready")?;
    let (socket, _) = listener
        .accept()
        .context("accepting the peer's Unix socket")?;
    let mut driver = Driver {
        ends,
        peer,
        rounds: counts.rounds,
        batch_time: counts.batch_time,
        solo: args.solo.clone(),
        queue: None,
    };
    driver.ends.set_socket(socket)?;

    let wanted = |group| args.only.is_empty() || args.only.contains(&group);
    let mut figures = Vec::new();
    let (here, apart) = (cpus[0], cpus[1]);
    if wanted(Group::Polling) {
        use Contender::*;
        let (n, s) = (counts.polls, counts.slices);
        let poll = |key: &str, label: &str, contender, count| {
            let job = Job::Peer(contender, apart);
            spec(&format!("poll.{key}"), label, Unit::Micros, job, count)
        };
        let heading = format!(
            "Round trip, polling (busy try_recv), CPUs {here} and {apart}; \
             slices zero-copy, 3 words written and read back"
        );
        let specs = vec![
            poll("floor1", "floor, 1 line by turns", FloorOneLine, n),
            poll("floor2", "floor, 2 lines", FloorTwoLines, n),
            poll("floor_payload", "floor, 2 lines each way", FloorPayload, n),
            poll("memlink", "memlink 64 B", MemlinkPoll, n),
            poll("iceoryx2", "iceoryx2 64 B", IceoryxPoll, n),
            poll("memlink_4k", "memlink 4 KiB", MemlinkSlice4K, s),
            poll("memlink_1m", "memlink 1 MiB", MemlinkSlice1M, s),
            poll("iceoryx2_4k", "iceoryx2 4 KiB", IceoryxSlice4K, s),
            poll("iceoryx2_1m", "iceoryx2 1 MiB", IceoryxSlice1M, s),
        ];
        figures.extend(driver.measure(&heading, specs)?);
    }
    if wanted(Group::Blocking) {
        for (place, cpu, n, heading) in [
            (
                "same",
                here,
                counts.blocking_same,
                format!("Round trip 64 B, blocking, same vCPU (both on CPU {here})"),
            ),
            (
                "apart",
                apart,
                counts.blocking_apart,
                format!("Round trip 64 B, blocking, different vCPUs ({here} and {apart})"),
            ),
        ] {
            let blocking = |key: &str, label: &str, contender| {
                let job = Job::Peer(contender, cpu);
                spec(&format!("block_{place}.{key}"), label, Unit::Micros, job, n)
            };
            let specs = vec![
                blocking("futex", "bare futex", Contender::Futex),
                blocking("memlink", "memlink recv()", Contender::MemlinkBlocking),
                blocking("iceoryx2", "iceoryx2 + event", Contender::IceoryxEvent),
                blocking("unix_socket", "Unix socket", Contender::UnixSocket),
                blocking("pipe", "pipe", Contender::Pipe),
            ];
            figures.extend(driver.measure(&heading, specs)?);
        }
    }
    if wanted(Group::Throughput) {
        let stream = |key: &str, label: &str, contender| {
            let job = Job::Peer(contender, apart);
            spec(
                &format!("stream.{key}"),
                label,
                Unit::MegaMessages,
                job,
                counts.stream,
            )
        };
        let heading = format!(
            "One-way 64 B, every message delivered, CPUs {here} and {apart}, 64 in flight at most"
        );
        let specs = vec![
            stream("ring", "bare SPSC ring", Contender::RingStream),
            stream("memlink", "memlink (Block)", Contender::MemlinkStream),
            stream(
                "iceoryx2",
                "iceoryx2 (no overflow)",
                Contender::IceoryxStream,
            ),
        ];
        figures.extend(driver.measure(&heading, specs)?);
    }
    if wanted(Group::SendCost) {
        let mut specs = Vec::new();
        for (library, name) in [
            (Library::Memlink, "memlink"),
            (Library::Iceoryx2, "iceoryx2"),
        ] {
            for subscribers in SUBSCRIBER_COUNTS {
                specs.push(spec(
                    &format!("send.{name}_{subscribers}"),
                    &format!(
                        "{name}, {subscribers} subscriber{}",
                        if subscribers == 1 { "" } else { "s" }
                    ),
                    Unit::Nanos,
                    Job::SendCost(library, subscribers),
                    counts.sends,
                ));
            }
        }
        let heading = "Send 64 B (loan, write, send), idle subscribers in the peer".to_owned();
        figures.extend(driver.measure(&heading, specs)?);
    }
    if wanted(Group::Queue) {
        driver.queue = Some(queue::Bench::start(&tag)?);
        let rate = |key: &str, label: &str, job| {
            spec(
                &format!("queue.{key}"),
                label,
                Unit::MegaMessages,
                job,
                counts.stream,
            )
        };
        let heading = format!(
            "Work queue 64 B, producer on CPU {here}, consumer processes all on CPU {apart}, \
             64 unfinished at most"
        );
        let specs = vec![
            rate(
                "pubsub",
                "pub/sub 1 to 1 (Block)",
                Job::Peer(Contender::MemlinkStream, apart),
            ),
            rate("memlink_1", "queue, 1 consumer", Job::Queue(1, apart)),
            rate(
                "memlink_3",
                "queue, 3 consumers",
                Job::Queue(queue::CONSUMERS, apart),
            ),
        ];
        figures.extend(driver.measure(&heading, specs)?);
        driver.queue = None;
    }
    if wanted(Group::Rpc) {
        use Contender::*;
        for (place, cpu, heading) in [
            (
                "apart",
                apart,
                format!("Request/response 64 B round trip, different vCPUs ({here} and {apart})"),
            ),
            (
                "same",
                here,
                format!(
                    "Request/response 64 B round trip, same vCPU (both on CPU {here}); \
                     polling yields the CPU between polls"
                ),
            ),
        ] {
            let (poll_ml, poll_ix, n_poll, n_block) = if place == "apart" {
                (
                    RpcMemlinkPoll,
                    RpcIceoryxPoll,
                    counts.polls,
                    counts.blocking_apart,
                )
            } else {
                (
                    RpcMemlinkYield,
                    RpcIceoryxYield,
                    counts.blocking_same,
                    counts.blocking_same,
                )
            };
            let rt = |key: &str, label: &str, contender, count| {
                let job = Job::Peer(contender, cpu);
                spec(
                    &format!("rpc_{place}.{key}"),
                    label,
                    Unit::Micros,
                    job,
                    count,
                )
            };
            let specs = vec![
                rt("memlink_poll", "memlink, polling", poll_ml, n_poll),
                rt("iceoryx2_poll", "iceoryx2, polling", poll_ix, n_poll),
                rt(
                    "memlink_block",
                    "memlink, blocking recv",
                    RpcMemlinkBlocking,
                    n_block,
                ),
                rt("unix_socket", "Unix socket ping-pong", UnixSocket, n_block),
            ];
            figures.extend(driver.measure(&heading, specs)?);
        }
    }
    drop(driver);
    if wanted(Group::Async) && !args.json {
        async_rtt::measure(counts.rounds, args.quick, cpus)?;
    }

    let comparisons = compare(&figures);
    let report = Report {
        batches: counts.rounds,
        cpus,
        figures,
        comparisons,
    };
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).context("writing the report")?;
        writeln!(out).context("writing the report")?;
        return Ok(());
    }
    print_table(&report, &mut out).context("writing the report")
}

/// Figure key, reference key, aim: the aims of issue 9 and the context
/// around them. Comparisons of figures not measured are left out.
const COMPARISONS: &[(&str, &str, Option<Aim>)] = &[
    ("poll.memlink", "poll.floor2", Some(Aim::AtMost(1.5))),
    (
        "poll.memlink",
        "poll.iceoryx2",
        Some(Aim::AtMost(1.0 / 3.0)),
    ),
    ("poll.iceoryx2", "poll.floor2", None),
    ("poll.floor2", "poll.floor1", None),
    ("poll.memlink", "poll.floor_payload", None),
    ("poll.floor_payload", "poll.floor2", None),
    ("poll.memlink_1m", "poll.memlink", Some(Aim::AtMost(1.5))),
    ("poll.memlink_4k", "poll.memlink", None),
    ("poll.iceoryx2_1m", "poll.iceoryx2", None),
    ("poll.memlink_4k", "poll.iceoryx2_4k", None),
    ("poll.memlink_1m", "poll.iceoryx2_1m", None),
    (
        "block_same.memlink",
        "block_same.futex",
        Some(Aim::AtMost(1.2)),
    ),
    ("block_same.iceoryx2", "block_same.futex", None),
    ("block_same.unix_socket", "block_same.futex", None),
    ("block_same.pipe", "block_same.futex", None),
    (
        "block_apart.memlink",
        "block_apart.futex",
        Some(Aim::AtMost(1.2)),
    ),
    ("block_apart.iceoryx2", "block_apart.futex", None),
    ("block_apart.unix_socket", "block_apart.futex", None),
    ("block_apart.pipe", "block_apart.futex", None),
    ("stream.memlink", "stream.iceoryx2", Some(Aim::AtLeast(3.0))),
    ("stream.memlink", "stream.ring", None),
    ("stream.iceoryx2", "stream.ring", None),
    ("send.memlink_64", "send.memlink_1", Some(Aim::AtMost(1.2))),
    ("send.memlink_8", "send.memlink_1", None),
    ("send.iceoryx2_64", "send.iceoryx2_1", None),
    ("send.iceoryx2_8", "send.iceoryx2_1", None),
    ("send.memlink_64", "send.iceoryx2_64", None),
    ("queue.memlink_1", "queue.pubsub", None),
    ("queue.memlink_3", "queue.pubsub", None),
    ("queue.memlink_3", "queue.memlink_1", None),
    (
        "rpc_apart.memlink_poll",
        "rpc_apart.iceoryx2_poll",
        Some(Aim::AtMost(1.0 / 3.0)),
    ),
    ("rpc_apart.memlink_block", "rpc_apart.unix_socket", None),
    ("rpc_apart.memlink_poll", "rpc_apart.unix_socket", None),
    (
        "rpc_same.memlink_poll",
        "rpc_same.iceoryx2_poll",
        Some(Aim::AtMost(1.0 / 3.0)),
    ),
    ("rpc_same.memlink_block", "rpc_same.unix_socket", None),
];

fn compare(figures: &[Figure]) -> Vec<Comparison> {
    let find = |key: &str| figures.iter().find(|f| f.key == key);
    COMPARISONS
        .iter()
        .filter_map(|&(figure, reference, aim)| {
            let (f, r) = (find(figure)?, find(reference)?);
            let ratio = median(f.batches.iter().zip(&r.batches).map(|(f, r)| f / r));
            Some(Comparison {
                figure: figure.to_owned(),
                reference: reference.to_owned(),
                ratio,
                aim,
                met: aim.map(|aim| aim.met(ratio)),
            })
        })
        .collect()
}

/// `19%`, or `19/100%` with the peer's share.
fn percent(f: &Figure) -> String {
    match f.peer_cpu {
        Some(peer) => format!("{:.0}/{:.0}%", f.driver_cpu * 100.0, peer * 100.0),
        None => format!("{:.0}%", f.driver_cpu * 100.0),
    }
}

fn print_table(report: &Report, out: &mut impl Write) -> io::Result<()> {
    let find = |key: &str| {
        report
            .figures
            .iter()
            .find(|f| f.key == key)
            .expect("compared figures were measured")
    };
    let format = |f: &Figure| {
        let unit = [Unit::Micros, Unit::MegaMessages, Unit::Nanos]
            .into_iter()
            .find(|u| u.name() == f.unit)
            .expect("one of the units");
        unit.format(f.median)
    };
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(
        [
            "MEASURE",
            "FIGURE",
            "CPU",
            "REFERENCE",
            "",
            "CPU",
            "RATIO",
            "AIM",
        ]
        .map(|h| Cell::new(h).add_attribute(Attribute::Bold)),
    );
    let mut headings = Vec::new();
    for c in &report.comparisons {
        let (f, r) = (find(&c.figure), find(&c.reference));
        if headings
            .last()
            .is_none_or(|(_, g): &(usize, &str)| *g != f.group)
        {
            headings.push((table.row_count(), f.group.as_str()));
        }
        let aim = match (c.aim, c.met) {
            (Some(Aim::AtMost(x)), Some(met)) => {
                format!("≤ {x:.2}x {}", if met { "met" } else { "MISSED" })
            }
            (Some(Aim::AtLeast(x)), Some(met)) => {
                format!("≥ {x:.2}x {}", if met { "met" } else { "MISSED" })
            }
            _ => "-".to_owned(),
        };
        table.add_row([
            format!("  {}", f.label),
            format(f),
            percent(f),
            format(r),
            r.label.clone(),
            percent(r),
            format!("{:.2}x", c.ratio),
            aim,
        ]);
    }
    let columns = table.column_count();
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i + 1 == columns { 0 } else { 2 }));
        if matches!(i, 1 | 2 | 3 | 5 | 6) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    writeln!(
        out,
        "median of {} batches per figure; a ratio is the median of the per-batch ratios \
         (figure / reference); driver on CPU {}, peer on CPU {} unless \"same vCPU\"; \
         CPU: the driver's (/the peer's) CPU time over wall time in a batch",
        report.batches, report.cpus[0], report.cpus[1]
    )?;
    let mut headings = headings.into_iter().peekable();
    for (i, line) in table.lines().enumerate() {
        // Line 0 is the header; row k is line k + 1.
        if i > 0 && headings.peek().is_some_and(|&(row, _)| row + 1 == i) {
            let (_, heading) = headings.next().expect("peeked");
            writeln!(out, "{heading}")?;
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// The peer: joins everything, then serves batches until its standard
/// input closes.
fn serve(tag: &str) -> Res {
    let mut ends = Ends::new(Side::Peer, tag)?;
    let mut input = io::stdin().lock();
    let mut output = io::stdout().lock();
    let say = |output: &mut io::StdoutLock, what: &str| {
        writeln!(output, "{what}")
            .and_then(|()| output.flush())
            .context("writing to the driver")
    };
    say(&mut output, "ready")?;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line).context("reading a command")? == 0 {
            return Ok(());
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (contender, count, cpu) = match words[..] {
            [key, count, cpu] => (
                Contender::from_key(key),
                count.parse::<u32>().ok(),
                cpu.parse::<usize>().ok(),
            ),
            _ => (None, None, None),
        };
        let (Some(contender), Some(count), Some(cpu)) = (contender, count, cpu) else {
            return Err(fail(format!("not a command: {:?}", line.trim_end())));
        };
        sys::pin_to(cpu)?;
        say(&mut output, "go")?;
        let cpu_start = sys::thread_cpu_time();
        ends.run(contender, count, &mut input, &mut output)
            .context(format!("serving {}", contender.key()))?;
        let cpu = sys::thread_cpu_time().saturating_sub(cpu_start);
        say(&mut output, &format!("done {}", cpu.as_nanos()))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contender_keys_round_trip() {
        for c in [
            Contender::FloorOneLine,
            Contender::Pipe,
            Contender::RingStream,
        ] {
            assert_eq!(Contender::from_key(c.key()), Some(c));
        }
        assert_eq!(Contender::from_key("nothing"), None);
    }
}
