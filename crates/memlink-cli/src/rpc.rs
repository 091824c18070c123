//! `call` and `serve`: request/response from a terminal or a script, and
//! request/response services in `ls` and `info`.

use std::io::{self, IsTerminal, Write};
use std::sync::mpsc::TryRecvError;
use std::time::{Duration, Instant};

use clap::ArgGroup;
use memlink::reqresp::{inspect_rpc, Client, RpcInfo, RpcOptions, RpcParticipant, Server};
use memlink::ErrorKind;
use serde::Serialize;

use crate::coordinate::{timed_out_or, TimedOut};
use crate::procs::Process;
use crate::pubsub::{read_stdin_at_most, write_message, Format};
use crate::{colour_on_stdout, signals, units, CmdResult};

/// How often a waiting `call` or `serve` looks at Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// `inspect_rpc`, or `None` for an object that is not a request/response
/// service.
pub fn inspect(name: &str) -> Option<RpcInfo> {
    inspect_rpc(name).ok()
}

/// A service's participants in a few words, for `ls`.
pub fn summary(info: &RpcInfo) -> String {
    let bridged = info.server.iter().chain(&info.clients).any(|p| p.bridge);
    format!(
        "{} server, {} clients, {} in flight{}",
        if info.server.is_some() { "1" } else { "no" },
        info.clients.len(),
        info.in_flight,
        if bridged { ", bridged" } else { "" }
    )
}

/// The rows `info` shows for a request/response service.
pub fn rows(info: &RpcInfo, row: &mut dyn FnMut(&str, String)) {
    row(
        "requests",
        format!("{}, at most {} bytes", info.request_type, info.max_request),
    );
    row(
        "responses",
        format!(
            "{}, at most {} bytes",
            info.response_type, info.max_response
        ),
    );
    row(
        "settings",
        format!(
            "{} clients at most; {} requests in flight per client; {} responses waiting per request",
            info.max_clients, info.max_in_flight, info.max_responses
        ),
    );
    row("in flight", info.in_flight.to_string());
    let member = |p: &RpcParticipant, what: &str| {
        format!(
            "{}{}  {what} {}, {} in flight",
            Process::new(p.pid).long(),
            if p.bridge { " (bridge)" } else { "" },
            p.requests,
            p.in_flight
        )
    };
    row(
        "server",
        info.server
            .as_ref()
            .map_or_else(|| "none".to_owned(), |p| member(p, "received")),
    );
    row(
        "clients",
        if info.clients.is_empty() {
            "none".to_owned()
        } else {
            info.clients
                .iter()
                .map(|p| member(p, "sent"))
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
}

/// Settings for a service these commands make; a service that exists
/// keeps its own unless one is given here (then it must match).
#[derive(clap::Args)]
pub struct RpcArgs {
    /// The largest request and response, in bytes, if this command makes
    /// the service [default: 4K].
    #[arg(long, value_name = "SIZE", value_parser = units::size)]
    max_size: Option<u64>,
}

impl RpcArgs {
    fn options(&self) -> RpcOptions {
        let mut options = RpcOptions::new();
        if let Some(size) = self.max_size {
            options = options.max_request_len(size).max_response_len(size);
        }
        options
    }
}

/// How responses (or requests, for `serve`) are printed.
#[derive(clap::Args)]
pub struct OutputArgs {
    /// Print each message as a hex dump.
    #[arg(short = 'x', long, conflicts_with_all = ["raw", "json"])]
    hex: bool,
    /// Write the messages' bytes unchanged, one after the other.
    #[arg(short, long, conflicts_with = "json")]
    raw: bool,
    /// One JSON object per message: its number, bytes, and the text (or
    /// hex, if it is not UTF-8).
    #[arg(short, long)]
    json: bool,
}

#[derive(Serialize)]
struct MessageJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<u32>,
    index: u64,
    bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
}

impl OutputArgs {
    fn print(
        &self,
        out: &mut impl Write,
        bytes: &[u8],
        index: u64,
        client: Option<u32>,
    ) -> CmdResult {
        if self.json {
            let text = std::str::from_utf8(bytes).ok();
            let message = MessageJson {
                client,
                index,
                bytes: bytes.len(),
                text,
                hex: text
                    .is_none()
                    .then(|| bytes.iter().map(|b| format!("{b:02x}")).collect()),
            };
            serde_json::to_writer(&mut *out, &message)?;
            out.write_all(b"\n")?;
        } else {
            let format = if self.raw {
                Format::Raw
            } else if self.hex {
                Format::Hex
            } else {
                Format::Text
            };
            let label = || match client {
                Some(c) => format!("client {c} request {index}"),
                None => format!("response {index}"),
            };
            write_message(out, bytes, format, colour_on_stdout(), label)?;
        }
        if !out_is_terminal() {
            out.flush()?;
        }
        Ok(())
    }
}

fn out_is_terminal() -> bool {
    io::stdout().is_terminal()
}

#[derive(clap::Args)]
#[command(group(ArgGroup::new("input").required(true).args(["text", "stdin"])))]
pub struct CallArgs {
    /// The service's name.
    name: String,
    /// '-': the request is all of standard input.
    #[arg(value_name = "-", value_parser = ["-"], hide_possible_values = true)]
    stdin: Option<String>,
    /// The request: this text (UTF-8, no NUL added).
    #[arg(short, long)]
    text: Option<String>,
    /// Exit with status 124 if no server is there, or the answer is not
    /// complete, within this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = units::interval)]
    timeout: Duration,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    rpc: RpcArgs,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The service's name. It is made (for byte messages) if it does not
    /// exist; a service of any payload types is served as bytes.
    name: String,
    /// Answer each request with its own bytes (the only answer there is:
    /// for trying things out and for tests).
    #[arg(long, required = true)]
    echo: bool,
    /// Exit after answering this many requests.
    #[arg(short = 'n', long, value_name = "N")]
    count: Option<u64>,
    /// Print nothing (by default each request is printed as it comes).
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    rpc: RpcArgs,
}

pub fn call(args: CallArgs) -> CmdResult {
    let client = Client::connect_any(&args.name, &args.rpc.options())?;
    let deadline = Instant::now() + args.timeout;
    let late = |what: &str| -> Box<dyn std::error::Error> {
        Box::new(TimedOut(format!(
            "cannot call service \"{}\": {what} within {}",
            args.name,
            humantime::format_duration(args.timeout)
        )))
    };
    // Polling the place table: a server rings nobody when it joins.
    while !client.has_server()? {
        if Instant::now() >= deadline {
            return Err(late("no server came"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let request = match &args.text {
        Some(text) => text.as_bytes().to_vec(),
        None => read_stdin_at_most(client.max_request(), "the service's largest request")?,
    };
    let remaining = deadline.saturating_duration_since(Instant::now());
    let mut pending = client
        .send_copy_timeout(&request, remaining)
        .map_err(timed_out_or)?;
    let stop = signals::termination()?;
    let mut out = io::stdout().lock();
    let mut index = 0;
    loop {
        match stop.try_recv() {
            Ok(()) | Err(TryRecvError::Disconnected) => return Ok(()),
            Err(TryRecvError::Empty) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(late("the answer did not end"));
        }
        match pending.recv_timeout(SIGNAL_CHECK.min(deadline - now)) {
            Ok(Some(response)) => {
                args.output.print(&mut out, &response, index, None)?;
                index += 1;
            }
            Ok(None) => break,
            Err(e) if e.kind() == ErrorKind::Timeout => {}
            Err(e) => return Err(e.into()),
        }
    }
    out.flush()?;
    Ok(())
}

pub fn serve(args: ServeArgs) -> CmdResult {
    let server = Server::connect_any(&args.name, &args.rpc.options())?;
    let stop = signals::termination()?;
    let mut out = io::stdout().lock();
    let mut answered = 0u64;
    while args.count.is_none_or(|n| answered < n) {
        match stop.try_recv() {
            Ok(()) | Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {}
        }
        let request = match server.recv_timeout(SIGNAL_CHECK) {
            Ok(request) => request,
            Err(e) if e.kind() == ErrorKind::Timeout => continue,
            Err(e) => return Err(e.into()),
        };
        if !args.quiet {
            args.output
                .print(&mut out, &request, answered, Some(request.client_index()))?;
        }
        debug_assert!(args.echo);
        let bytes = request.to_vec();
        request.respond(&bytes)?;
        answered += 1;
    }
    out.flush()?;
    Ok(())
}
