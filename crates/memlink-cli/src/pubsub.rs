//! `pub` and `sub`: publish to and subscribe to a service from a terminal
//! or a pipe, the way `mosquitto_pub` and `mosquitto_sub` do.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::TryRecvError;
use std::time::{Duration, Instant};

use clap::ArgGroup;
use memlink::pubsub::{inspect_service, Overflow, ServiceInfo, ServiceOptions, Subscriber};
use memlink::ErrorKind;
use serde::Serialize;

use crate::{colour_on_stdout, failure, hexdump, signals, units, CmdResult};

/// How often a waiting `sub` looks at Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OverflowArg {
    /// Overwrite the oldest sample; slow subscribers miss samples.
    Overwrite,
    /// Make publishers wait for the slowest subscriber.
    Block,
}

/// Settings for a service these commands make; a service that exists keeps
/// its own unless one is given here (then it must match).
#[derive(clap::Args)]
pub struct ServiceArgs {
    /// The largest message, in bytes, if this command makes the service
    /// [default: 4K].
    #[arg(long, value_name = "SIZE", value_parser = units::size)]
    max_size: Option<u64>,
    /// What a slow subscriber costs, if this command makes the service
    /// [default: overwrite].
    #[arg(long, value_name = "POLICY")]
    overflow: Option<OverflowArg>,
    /// How many of each publisher's last messages a new subscriber gets, if
    /// this command makes the service [default: 0].
    #[arg(long, value_name = "N")]
    history: Option<u32>,
}

impl ServiceArgs {
    fn options(&self) -> ServiceOptions {
        let mut options = ServiceOptions::new();
        if let Some(size) = self.max_size {
            options = options.max_slice_len(size);
        }
        if let Some(overflow) = self.overflow {
            options = options.overflow(match overflow {
                OverflowArg::Overwrite => Overflow::Overwrite,
                OverflowArg::Block => Overflow::Block,
            });
        }
        if let Some(history) = self.history {
            options = options.history(history);
        }
        options
    }
}

#[derive(clap::Args)]
#[command(group(ArgGroup::new("input").required(true).args(["text", "file", "stdin"])))]
pub struct PubArgs {
    /// The service's name.
    name: String,
    /// '-': send each line of standard input as a message (without its
    /// newline).
    #[arg(value_name = "-", value_parser = ["-"], hide_possible_values = true)]
    stdin: Option<String>,
    /// The message: this text (UTF-8, no NUL added).
    #[arg(short, long)]
    text: Option<String>,
    /// The message: the bytes of this file.
    #[arg(short, long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Send the message this many times.
    #[arg(
        short = 'n',
        long,
        value_name = "N",
        default_value = "1",
        conflicts_with = "stdin"
    )]
    count: u64,
    /// At most this many messages per second [default: as fast as allowed].
    #[arg(short, long, value_name = "PER_SECOND")]
    rate: Option<f64>,
    /// Wait until this many subscribers are connected before sending.
    #[arg(short = 'w', long, value_name = "N", default_value = "0")]
    wait_subscribers: usize,
    /// Give up waiting for subscribers (and, with --overflow block, for
    /// room) after this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = units::interval)]
    timeout: Duration,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(clap::Args)]
pub struct SubArgs {
    /// The service's name. It is made (for byte messages) if it does not
    /// exist; a service of any payload type is shown as bytes.
    name: String,
    /// Print each message as a hex dump.
    #[arg(short = 'x', long, conflicts_with_all = ["raw", "json"])]
    hex: bool,
    /// Write the messages' bytes unchanged, one after the other.
    #[arg(short, long, conflicts_with = "json")]
    raw: bool,
    /// One JSON object per message: publisher, sequence, bytes, missed, and
    /// the text (or hex, if it is not UTF-8).
    #[arg(short, long)]
    json: bool,
    /// Exit after this many messages.
    #[arg(short = 'n', long, value_name = "N")]
    count: Option<u64>,
    /// Exit with an error if no message comes for this long.
    #[arg(long, value_name = "DURATION", value_parser = units::interval)]
    timeout: Option<Duration>,
    #[command(flatten)]
    service: ServiceArgs,
}

pub fn publish(args: PubArgs) -> CmdResult {
    let publisher = args.service.options().publisher::<[u8]>(&args.name)?;
    let deadline = Instant::now() + args.timeout;
    while publisher.subscriber_count()? < args.wait_subscribers {
        if Instant::now() >= deadline {
            return Err(failure(format!(
                "cannot send on service \"{}\": {} of {} subscribers connected after {}",
                args.name,
                publisher.subscriber_count()?,
                args.wait_subscribers,
                humantime::format_duration(args.timeout)
            )));
        }
        // Polling the place table: subscribers ring nobody when they join.
        std::thread::sleep(Duration::from_millis(5));
    }
    let pace = args
        .rate
        .map(|r| Duration::from_secs_f64(1.0 / r.max(1e-3)));
    let mut next = Instant::now();
    let mut send = |message: &[u8]| -> CmdResult {
        if let Some(pace) = pace {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            next = next.max(now) + pace;
        }
        let mut sample = publisher.loan_slice_uninit(message.len())?;
        sample.copy_from_slice(message);
        sample.send_timeout(args.timeout)?;
        Ok(())
    };
    if args.stdin.is_some() {
        for line in io::stdin().lock().split(b'\n') {
            let mut line = line?;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            send(&line)?;
        }
        return Ok(());
    }
    let message = match (&args.text, &args.file) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(path)) => read_at_most(path, publisher.max_payload())?,
        (None, None) => unreachable!("clap requires an input"),
    };
    for _ in 0..args.count {
        send(&message)?;
    }
    Ok(())
}

/// A file's bytes, refusing one larger than a message may be before
/// reading it all.
fn read_at_most(path: &PathBuf, max: u64) -> CmdResult<Vec<u8>> {
    let file = std::fs::File::open(path)
        .map_err(|e| failure(format!("cannot read {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| failure(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 > max {
        return Err(failure(format!(
            "cannot send {}: it is larger than the service's largest message ({max} bytes)",
            path.display()
        )));
    }
    Ok(bytes)
}

#[derive(Serialize)]
struct MessageJson<'a> {
    publisher: u32,
    sequence: u64,
    bytes: usize,
    missed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
}

pub fn subscribe(args: SubArgs) -> CmdResult {
    let subscriber = Subscriber::connect_any(&args.name, &args.service.options())?;
    let stop = signals::termination()?;
    let mut out = io::stdout().lock();
    let colour = colour_on_stdout();
    let mut received = 0u64;
    let mut missed = 0u64;
    let mut quiet_since = Instant::now();
    while args.count.is_none_or(|n| received < n) {
        match stop.try_recv() {
            Ok(()) | Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {}
        }
        let sample = match subscriber.recv_timeout(SIGNAL_CHECK) {
            Ok(sample) => sample,
            Err(e) if e.kind() == ErrorKind::Timeout => {
                if let Some(limit) = args.timeout {
                    if quiet_since.elapsed() >= limit {
                        return Err(failure(format!(
                            "cannot receive from service \"{}\": no message for {}",
                            args.name,
                            humantime::format_duration(limit)
                        )));
                    }
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        quiet_since = Instant::now();
        received += 1;
        let newly_missed = subscriber.missed() - missed;
        missed = subscriber.missed();
        let bytes: &[u8] = &sample;
        if args.json {
            let text = std::str::from_utf8(bytes).ok();
            let message = MessageJson {
                publisher: sample.publisher_index(),
                sequence: sample.sequence(),
                bytes: bytes.len(),
                missed: newly_missed,
                text,
                hex: text
                    .is_none()
                    .then(|| bytes.iter().map(|b| format!("{b:02x}")).collect()),
            };
            serde_json::to_writer(&mut out, &message)?;
            out.write_all(b"\n")?;
        } else {
            if newly_missed > 0 && !args.raw {
                eprintln!("memlink: missed {newly_missed} messages (the publisher overwrote them)");
            }
            let format = if args.raw {
                Format::Raw
            } else if args.hex {
                Format::Hex
            } else {
                Format::Text
            };
            let label = || {
                format!(
                    "publisher {} message {}",
                    sample.publisher_index(),
                    sample.sequence()
                )
            };
            write_message(&mut out, bytes, format, colour, label)?;
        }
        if !out.is_terminal() || args.count.is_some() {
            out.flush()?;
        }
    }
    out.flush()?;
    Ok(())
}

/// How a message is printed (`sub`, `call`, `serve`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Its bytes as text (lossy UTF-8) and a newline.
    Text,
    /// A hex dump under a line `label (N bytes)`.
    Hex,
    /// Its bytes unchanged.
    Raw,
}

/// Prints one message's bytes as `format` says; `label` names it above a
/// hex dump.
pub(crate) fn write_message(
    out: &mut impl Write,
    bytes: &[u8],
    format: Format,
    colour: bool,
    label: impl FnOnce() -> String,
) -> io::Result<()> {
    match format {
        Format::Raw => out.write_all(bytes),
        Format::Hex => {
            writeln!(out, "{} ({} bytes)", label(), bytes.len())?;
            hexdump::xxd(out, bytes, 0, true, colour)
        }
        Format::Text => {
            out.write_all(String::from_utf8_lossy(bytes).as_bytes())?;
            out.write_all(b"\n")
        }
    }
}

/// The bytes of standard input, refusing more than `max` (for a message
/// that must fit in `max` bytes; `what` names it in the error).
pub(crate) fn read_stdin_at_most(max: u64, what: &str) -> CmdResult<Vec<u8>> {
    let mut bytes = Vec::new();
    io::stdin().lock().take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(failure(format!(
            "cannot send standard input: it is larger than {what} ({max} bytes)"
        )));
    }
    Ok(bytes)
}

/// A service's participants and counters in a few words, for `ls`.
pub fn summary(info: &ServiceInfo) -> String {
    let bridged = info
        .publishers
        .iter()
        .chain(&info.subscribers)
        .any(|p| p.bridge);
    format!(
        "{} pub, {} sub, {} of {} slots held{}",
        info.publishers.len(),
        info.subscribers.len(),
        info.slots_held,
        info.slots,
        if bridged { ", bridged" } else { "" }
    )
}

/// `inspect_service`, or `None` for an object that is not a service.
pub fn inspect(name: &str) -> Option<ServiceInfo> {
    inspect_service(name).ok()
}
