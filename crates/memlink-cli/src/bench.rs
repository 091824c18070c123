//! `bench`: how fast named shared memory is on this machine, measured
//! against references in the same run.
//!
//! Each figure is the median over batches; where there is a reference, the
//! batches of memlink and of the reference alternate, so load from
//! elsewhere on the machine falls on both alike, and the ratio is the
//! median of the per-batch ratios (as in `cargo bench -p memlink`).
//!
//! The round trips need a second process: this binary again, started as the
//! hidden `bench-peer` command. It takes commands on its standard input
//! (one byte, then a count), answers each with a byte on its standard
//! output, then serves that many round trips by events or by spinning.
//! Its every wait is bounded, and it ends when its standard input closes,
//! so it never outlives this process for long.

use std::cell::RefCell;
use std::hint::{black_box, spin_loop};
use std::io::{self, ErrorKind as IoErrorKind, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use comfy_table::{Attribute, Cell, CellAlignment};
use memlink::{Access, ErrorKind, Event, EventReset, Region, RegionOptions, ViewMut};
use serde::Serialize;

use crate::units::{self, human_size};
use crate::{failure, signals, CmdResult};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Small counts and a small bulk copy: a first look in well under a
    /// second (the figures are noisier).
    #[arg(short, long)]
    quick: bool,
    /// Print a JSON object, with every batch's figures, instead of a table.
    #[arg(long)]
    json: bool,
    /// The size of the region created and opened in the life-cycle
    /// figures (a unit is optional: 4096, 4K, 1MiB).
    #[arg(short, long, value_name = "SIZE", default_value = "4K", value_parser = units::region_size)]
    size: u64,
    /// How many bytes each bulk batch copies, in chunks of up to 1 MiB
    /// [default: 256MiB; with --quick, 16MiB].
    #[arg(short, long, value_name = "SIZE", value_parser = units::length)]
    bulk: Option<u64>,
    /// How many measured batches each figure is the median of, after one
    /// batch to warm up [default: 21; with --quick, 5].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    rounds: Option<u32>,
}

#[derive(clap::Args)]
pub struct PeerArgs {
    /// The event this process waits on.
    ping: String,
    /// The event this process sets in answer.
    pong: String,
    /// The region whose first 8 bytes are the polled counter.
    region: String,
}

/// How long either process waits for the other before giving up.
const SILENCE: Duration = Duration::from_secs(5);
/// The bulk copy goes through a region of this size.
const BULK_REGION: u64 = 1 << 20;
/// Spins before a waiter starts yielding its core (in case both processes
/// share one) and watching the clock.
const SPINS_BEFORE_YIELD: u32 = 1 << 10;

/// The peer's commands: one byte, then (but for `PIPE`) a little-endian
/// `u32` count of round trips. The peer answers each with the same byte.
const PIPE: u8 = b'p';
const EVENTS: u8 = b'e';
const SPIN: u8 = b's';

/// Cycles per batch, for a full run and for `--quick`, and the Ctrl-C that
/// stops the run between batches (so that everything is closed and every
/// name goes).
struct Counts {
    stop: Receiver<()>,
    rounds: usize,
    life_cycles: u32,
    wakeups: u32,
    polls: u32,
    bulk: u64,
}

impl Counts {
    fn new(args: &BenchArgs, stop: Receiver<()>) -> Counts {
        let (rounds, life_cycles, wakeups, polls, bulk) = if args.quick {
            (5, 20, 50, 1_000, 16 << 20)
        } else {
            (21, 500, 1_000, 10_000, 256 << 20)
        };
        Counts {
            stop,
            rounds: args.rounds.map_or(rounds, |r| r as usize),
            life_cycles,
            wakeups,
            polls,
            bulk: args.bulk.unwrap_or(bulk),
        }
    }
}

/// What `bench --json` prints. Times are µs per cycle, bandwidths GB/s
/// (10^9 bytes per second); each figure is the median of its batches.
#[derive(Serialize)]
struct Report {
    batches: usize,
    region: RegionReport,
    wakeup: WakeupReport,
    polling: PollingReport,
    bulk: BulkReport,
}

#[derive(Serialize)]
struct RegionReport {
    size: u64,
    create_us: f64,
    open_us: f64,
    create_batches_us: Vec<f64>,
    open_batches_us: Vec<f64>,
}

#[derive(Serialize)]
struct WakeupReport {
    events_us: f64,
    pipe_us: f64,
    /// Events over pipe, the median of the per-batch ratios: below 1 is
    /// faster than the pipe.
    ratio: f64,
    batches: Vec<WakeupBatch>,
}

#[derive(Serialize)]
struct WakeupBatch {
    events_us: f64,
    pipe_us: f64,
}

#[derive(Serialize)]
struct PollingReport {
    round_trip_us: f64,
    batches_us: Vec<f64>,
}

#[derive(Serialize)]
struct BulkReport {
    bytes: u64,
    chunk: u64,
    region_gb_s: f64,
    memcpy_gb_s: f64,
    /// Region over memcpy bandwidth, the median of the per-batch ratios: 1
    /// is as fast as memcpy.
    ratio: f64,
    batches: Vec<BulkBatch>,
}

#[derive(Serialize)]
struct BulkBatch {
    region_gb_s: f64,
    memcpy_gb_s: f64,
}

/// The median (the upper one for an even count); `figures` is not empty.
fn median(figures: impl IntoIterator<Item = f64>) -> f64 {
    let mut sorted: Vec<f64> = figures.into_iter().collect();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// An error if Ctrl-C (or SIGTERM) has come.
fn check_stop(stop: &Receiver<()>) -> CmdResult {
    match stop.try_recv() {
        Ok(()) => Err(failure("cannot finish the benchmark: interrupted")),
        Err(_) => Ok(()),
    }
}

/// Runs `batch` once to warm up, then `rounds` times; returns its figures.
fn run_batches(counts: &Counts, mut batch: impl FnMut() -> CmdResult<f64>) -> CmdResult<Vec<f64>> {
    batch()?;
    (0..counts.rounds)
        .map(|_| {
            check_stop(&counts.stop)?;
            batch()
        })
        .collect()
}

/// Runs batches of `ours` and `reference` in turn: one of each to warm up,
/// then `rounds` pairs; returns each pair's figures.
fn alternate(
    counts: &Counts,
    mut ours: impl FnMut() -> CmdResult<f64>,
    mut reference: impl FnMut() -> CmdResult<f64>,
) -> CmdResult<Vec<(f64, f64)>> {
    ours()?;
    reference()?;
    (0..counts.rounds)
        .map(|_| {
            check_stop(&counts.stop)?;
            Ok((ours()?, reference()?))
        })
        .collect()
}

/// Times `n` runs of `cycle`: every figure of the benchmark is made here.
fn time_cycles(n: u64, mut cycle: impl FnMut() -> CmdResult) -> CmdResult<Duration> {
    let start = Instant::now();
    for _ in 0..n {
        cycle()?;
    }
    Ok(start.elapsed())
}

/// Times `n` runs of `cycle`; returns µs per cycle.
fn micros_per_cycle(n: u32, cycle: impl FnMut() -> CmdResult) -> CmdResult<f64> {
    Ok(time_cycles(n.into(), cycle)?.as_secs_f64() * 1e6 / f64::from(n))
}

/// Times `n` runs of `copy`, each of `bytes_each` bytes; returns GB/s.
fn gigabytes_per_second(
    n: u64,
    bytes_each: u64,
    copy: impl FnMut() -> CmdResult,
) -> CmdResult<f64> {
    Ok((n * bytes_each) as f64 / time_cycles(n, copy)?.as_secs_f64() / 1e9)
}

pub fn run(args: BenchArgs) -> CmdResult {
    let counts = Counts::new(&args, signals::termination()?);
    let tag = format!("memlink-bench-{}", std::process::id());
    let region = life_cycle(&counts, &tag, args.size)?;
    let (wakeup, polling) = round_trips(&counts, &tag)?;
    let bulk = bulk(&counts, &tag)?;
    let report = Report {
        batches: counts.rounds,
        region,
        wakeup,
        polling,
        bulk,
    };
    if args.json {
        let mut out = io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    print_report(&report)
}

/// Region create+map+write+unmap+close and open+map+read+unmap+close.
fn life_cycle(counts: &Counts, tag: &str, size: u64) -> CmdResult<RegionReport> {
    let text = b"Hello from process 1, through named shared memory!\0";
    let text = &text[..text.len().min(size as usize)];
    let created = format!("{tag}-create");
    let create = || {
        let region = RegionOptions::new().create(&created, size)?;
        region.map_mut(..)?.write_at(0, text)?;
        Ok(())
    };
    let create_batches = run_batches(counts, || micros_per_cycle(counts.life_cycles, create))?;

    let opened = format!("{tag}-open");
    let _holder = Region::create(&opened, size)?;
    let open = || {
        let region = Region::open(&opened, Access::ReadOnly)?;
        let mut first = [0u8];
        region.map(..)?.read_at(0, &mut first)?;
        black_box(first);
        Ok(())
    };
    let open_batches = run_batches(counts, || micros_per_cycle(counts.life_cycles, open))?;
    Ok(RegionReport {
        size,
        create_us: median(create_batches.iter().copied()),
        open_us: median(open_batches.iter().copied()),
        create_batches_us: create_batches,
        open_batches_us: open_batches,
    })
}

/// The peer process, ended (and waited for) when dropped.
struct Peer {
    child: Child,
    to: Option<ChildStdin>,
    from: ChildStdout,
}

impl Peer {
    fn start(ping: &str, pong: &str, region: &str) -> CmdResult<Peer> {
        let exe = std::env::current_exe()
            .map_err(|e| failure(format!("cannot find this program to start its peer: {e}")))?;
        let mut child = Command::new(&exe)
            .args(["bench-peer", ping, pong, region])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| {
                failure(format!(
                    "cannot start the peer process ({} bench-peer): {e}",
                    exe.display()
                ))
            })?;
        let to = child.stdin.take();
        let from = child.stdout.take().expect("stdout is piped");
        Ok(Peer { child, to, from })
    }

    /// One pipe round trip: a byte to the peer and its answer.
    fn exchange(&mut self, message: &[u8], what: &str) -> CmdResult {
        let gone = |e: io::Error| match e.kind() {
            IoErrorKind::UnexpectedEof | IoErrorKind::BrokenPipe => failure(format!(
                "cannot measure the {what}: the peer process has ended"
            )),
            _ => failure(format!(
                "cannot measure the {what}: cannot talk to the peer process: {e}"
            )),
        };
        let to = self.to.as_mut().expect("open until dropped");
        to.write_all(message).map_err(gone)?;
        let mut answer = [0u8];
        self.from.read_exact(&mut answer).map_err(gone)?;
        if answer[0] != message[0] {
            return Err(failure(format!(
                "cannot measure the {what}: the peer process answered {:?}",
                answer[0] as char
            )));
        }
        Ok(())
    }

    /// Tells the peer to serve `count` round trips of `command`; returns
    /// when it has said it will.
    fn serve(&mut self, command: u8, count: u32, what: &str) -> CmdResult {
        let mut message = [command, 0, 0, 0, 0];
        message[1..].copy_from_slice(&count.to_le_bytes());
        self.exchange(&message, what)
    }
}

impl Drop for Peer {
    /// Closes the peer's standard input, which ends it between commands;
    /// kills it if it has not ended soon after (in the middle of a batch,
    /// after an error here).
    fn drop(&mut self) {
        drop(self.to.take());
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => thread::sleep(Duration::from_millis(1)),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The counter in the first 8 bytes of `view` (a mapping's start, so
/// aligned).
fn counter(view: &ViewMut) -> CmdResult<&AtomicU64> {
    view.atomic_u64(0)
        .map_err(|e| failure(format!("cannot use the region for polling: {e}")))
}

/// Spins until `counter` holds a value `done` accepts; gives up after
/// `SILENCE` without one. Yields the core after a while, in case the other
/// process needs it.
fn spin_until(counter: &AtomicU64, done: impl Fn(u64) -> bool) -> Option<u64> {
    let mut spins = 0u32;
    let mut yielding_since = None;
    loop {
        let value = counter.load(Ordering::Acquire);
        if done(value) {
            return Some(value);
        }
        if spins < SPINS_BEFORE_YIELD {
            spins += 1;
            spin_loop();
            continue;
        }
        if yielding_since.get_or_insert_with(Instant::now).elapsed() > SILENCE {
            return None;
        }
        thread::yield_now();
    }
}

/// The wake-up round trip (events against pipes) and the polling one.
fn round_trips(counts: &Counts, tag: &str) -> CmdResult<(WakeupReport, PollingReport)> {
    let (ping_name, pong_name, poll_name) = (
        format!("{tag}-ping"),
        format!("{tag}-pong"),
        format!("{tag}-poll"),
    );
    // Made before the peer, so dropped after it: the peer has closed its
    // handles (or died) by the time these close, and the names go.
    let ping = Event::create(&ping_name, EventReset::Auto, false)?;
    let pong = Event::create(&pong_name, EventReset::Auto, false)?;
    let region = Region::create(&poll_name, 4096)?;
    let view = region.map_mut(0..8)?;
    let counter = counter(&view)?;
    let mut peer = Peer::start(&ping_name, &pong_name, &poll_name)?;

    const WAKEUP: &str = "wake-up round trip";
    let pairs = {
        let peer = RefCell::new(&mut peer);
        alternate(
            counts,
            || {
                peer.borrow_mut().serve(EVENTS, counts.wakeups, WAKEUP)?;
                micros_per_cycle(counts.wakeups, || {
                    ping.set()?;
                    pong.wait_timeout(SILENCE).map_err(|e| match e.kind() {
                        ErrorKind::Timeout => failure(format!(
                            "cannot measure the {WAKEUP}: the peer process did not answer \
                             for {} s",
                            SILENCE.as_secs()
                        )),
                        _ => e.into(),
                    })
                })
            },
            || {
                let mut peer = peer.borrow_mut();
                micros_per_cycle(counts.wakeups, || peer.exchange(&[PIPE], WAKEUP))
            },
        )?
    };
    let batches: Vec<WakeupBatch> = pairs
        .iter()
        .map(|&(events_us, pipe_us)| WakeupBatch { events_us, pipe_us })
        .collect();
    let wakeup = WakeupReport {
        events_us: median(batches.iter().map(|b| b.events_us)),
        pipe_us: median(batches.iter().map(|b| b.pipe_us)),
        ratio: median(batches.iter().map(|b| b.events_us / b.pipe_us)),
        batches,
    };

    const POLLING: &str = "polling round trip";
    let mut value = counter.load(Ordering::Acquire);
    let polls = run_batches(counts, || {
        peer.serve(SPIN, counts.polls, POLLING)?;
        micros_per_cycle(counts.polls, || {
            // Odd: this process's turn is over; the peer answers with the
            // next even value.
            counter.store(value + 1, Ordering::Release);
            value = spin_until(counter, |v| v == value + 2).ok_or_else(|| {
                failure(format!(
                    "cannot measure the {POLLING}: the peer process did not answer for {} s",
                    SILENCE.as_secs()
                ))
            })?;
            Ok(())
        })
    })?;
    let polling = PollingReport {
        round_trip_us: median(polls.iter().copied()),
        batches_us: polls,
    };
    drop(peer);
    Ok((wakeup, polling))
}

/// Copying into a mapped region against copying into heap memory.
fn bulk(counts: &Counts, tag: &str) -> CmdResult<BulkReport> {
    let chunk = counts.bulk.min(BULK_REGION) as usize;
    let chunks = counts.bulk / chunk as u64;
    let source: Vec<u8> = (0..chunk).map(|i| (i % 251) as u8).collect();
    let mut heap = vec![0u8; chunk];
    let region = Region::create(&format!("{tag}-bulk"), BULK_REGION)?;
    let mut view = region.map_mut(0..chunk as u64)?;

    let pairs = alternate(
        counts,
        || {
            gigabytes_per_second(chunks, chunk as u64, || {
                view.write_at(0, &source)?;
                black_box(view.as_mut_ptr());
                Ok(())
            })
        },
        || {
            gigabytes_per_second(chunks, chunk as u64, || {
                heap.copy_from_slice(&source);
                black_box(&mut heap[..]);
                Ok(())
            })
        },
    )?;
    let batches: Vec<BulkBatch> = pairs
        .iter()
        .map(|&(region_gb_s, memcpy_gb_s)| BulkBatch {
            region_gb_s,
            memcpy_gb_s,
        })
        .collect();
    Ok(BulkReport {
        bytes: chunks * chunk as u64,
        chunk: chunk as u64,
        region_gb_s: median(batches.iter().map(|b| b.region_gb_s)),
        memcpy_gb_s: median(batches.iter().map(|b| b.memcpy_gb_s)),
        ratio: median(batches.iter().map(|b| b.region_gb_s / b.memcpy_gb_s)),
        batches,
    })
}

/// `12.9 µs`, `5.12 µs`, `0.312 µs`: three significant digits or so.
fn micros(us: f64) -> String {
    let decimals = match us {
        us if us < 1.0 => 3,
        us if us < 10.0 => 2,
        us if us < 100.0 => 1,
        _ => 0,
    };
    format!("{us:.decimals$} µs")
}

fn gigabytes(gb_s: f64) -> String {
    let decimals = if gb_s < 10.0 { 2 } else { 1 };
    format!("{gb_s:.decimals$} GB/s")
}

fn print_report(report: &Report) -> CmdResult {
    let (region, wakeup, polling, bulk) = (
        &report.region,
        &report.wakeup,
        &report.polling,
        &report.bulk,
    );
    let size = human_size(region.size);
    let rows = [
        [
            format!("create+map+write+unmap+close, {size}"),
            micros(region.create_us),
            "-".to_owned(),
            "-".to_owned(),
        ],
        [
            format!("open+map+read+unmap+close, {size}"),
            micros(region.open_us),
            "-".to_owned(),
            "-".to_owned(),
        ],
        [
            "wake-up round trip, 2 events".to_owned(),
            micros(wakeup.events_us),
            format!("{} (pipes)", micros(wakeup.pipe_us)),
            format!("{:.2}x", wakeup.ratio),
        ],
        [
            "polling round trip, 1 cache line".to_owned(),
            micros(polling.round_trip_us),
            "-".to_owned(),
            "-".to_owned(),
        ],
        [
            format!(
                "bulk copy, {} in {} chunks",
                human_size(bulk.bytes),
                human_size(bulk.chunk)
            ),
            gigabytes(bulk.region_gb_s),
            format!("{} (memcpy)", gigabytes(bulk.memcpy_gb_s)),
            format!("{:.2}x", bulk.ratio),
        ],
    ];

    let mut table = crate::objects::plain_table();
    table.set_header(
        ["MEASURE", "MEMLINK", "REFERENCE", "RATIO"]
            .map(|h| Cell::new(h).add_attribute(Attribute::Bold)),
    );
    for row in rows {
        table.add_row(row);
    }
    let columns = table.column_count();
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i + 1 == columns { 0 } else { 2 }));
        if i == 1 || i == 3 {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "median of {} batches per figure; a ratio is the median of the per-batch ratios",
        report.batches
    )?;
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Reads the count after a command.
fn read_count(input: &mut impl Read) -> io::Result<u32> {
    let mut count = [0u8; 4];
    input.read_exact(&mut count)?;
    Ok(u32::from_le_bytes(count))
}

/// The peer: answers the commands on standard input until it closes.
pub fn peer(args: PeerArgs) -> CmdResult {
    // Ctrl-C reaches both processes; the peer leaves it to the first, which
    // stops and closes the pipe, and ends then, its handles closed.
    let _ignored = signals::termination()?;
    let ping = Event::open(&args.ping)?;
    let pong = Event::open(&args.pong)?;
    let region = Region::open(&args.region, Access::ReadWrite)?;
    let view = region.map_mut(0..8)?;
    let counter = counter(&view)?;
    let (mut input, mut output) = (io::stdin().lock(), io::stdout().lock());
    loop {
        let mut command = [0u8];
        match input.read_exact(&mut command) {
            Err(e) if e.kind() == IoErrorKind::UnexpectedEof => return Ok(()),
            result => result?,
        }
        let count = match command[0] {
            PIPE => 0,
            EVENTS | SPIN => read_count(&mut input)?,
            other => {
                return Err(failure(format!(
                    "cannot serve the benchmark: unknown command {other:#04x}"
                )))
            }
        };
        output.write_all(&command)?;
        output.flush()?;
        let silence = || {
            failure(format!(
                "cannot serve the benchmark: no round trip for {} s",
                SILENCE.as_secs()
            ))
        };
        for _ in 0..count {
            if command[0] == EVENTS {
                ping.wait_timeout(SILENCE).map_err(|e| match e.kind() {
                    ErrorKind::Timeout => silence(),
                    _ => e.into(),
                })?;
                pong.set()?;
            } else {
                let value = spin_until(counter, |v| v % 2 == 1).ok_or_else(silence)?;
                counter.store(value + 1, Ordering::Release);
            }
        }
    }
}
