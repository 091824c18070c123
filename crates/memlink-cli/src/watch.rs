//! `watch`: a live hex view of a region that marks what changed.
//!
//! Each interval the region is opened, copied and closed again, so watching
//! never keeps a region alive: when its last real holder closes it, the
//! next look finds the name gone and the view ends.

use std::io::{self, IsTerminal, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crossterm::{cursor, queue, terminal};
use memlink::{Access, ErrorKind, Region};

use crate::data::check_range;
use crate::text::{Encoding, EncodingArgs};
use crate::units::{self, human_size};
use crate::{colour_on_stdout, failure, hexdump, signals, CmdResult};

#[derive(clap::Args)]
pub struct WatchArgs {
    /// The region's name.
    name: String,
    /// Where to start, in bytes (with an optional unit, or hex as 0x100).
    #[arg(short, long, value_name = "N", default_value = "0", value_parser = units::offset)]
    offset: u64,
    /// How many bytes to show [default: as many as fit the terminal, or 256
    /// when the output is not a terminal].
    #[arg(short, long, value_name = "N", value_parser = units::length)]
    len: Option<u64>,
    /// Time between looks: 100ms, 1s, 0.5 (seconds).
    #[arg(short = 'n', long, value_name = "D", default_value = "200ms", value_parser = units::interval)]
    interval: Duration,
    /// How the text column reads the bytes (a character per byte, or per
    /// two for UTF-16LE).
    #[command(flatten)]
    encoding: EncodingArgs,
}

/// Lines above the bytes: two of status and a blank one.
const HEADER_LINES: usize = 3;
/// How long, at least, a changed byte stays highlighted on a terminal.
const MIN_HIGHLIGHT: Duration = Duration::from_secs(1);
/// The most bytes followed when the output is not a terminal.
const MAX_PIPE_LEN: u64 = 1 << 20;

/// Bytes shown when the output is not a terminal and no --len is given.
const PIPE_DEFAULT_LEN: u64 = 256;

fn terminal_rows() -> usize {
    terminal::size().map_or(24, |(_, rows)| rows as usize)
}

/// How many dump lines fit the terminal under the header, keeping the last
/// row free for the cursor.
fn rows_that_fit() -> usize {
    terminal_rows().saturating_sub(HEADER_LINES + 1).max(1)
}

/// One look at the region: `None` when its name has gone.
fn look(name: &str, offset: u64, len: Option<u64>) -> CmdResult<Option<(u64, Vec<u8>)>> {
    let region = match Region::open(name, Access::ReadOnly) {
        Ok(region) => region,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let size = region.size();
    // A region made again under the same name may be smaller.
    let len = len.map(|l| l.min(size.saturating_sub(offset)).max(1));
    let end = check_range("watch", name, size, offset, len)?;
    let mut bytes = vec![0u8; (end - offset) as usize];
    region.read_at(offset, &mut bytes)?;
    Ok(Some((size, bytes)))
}

struct Frame<'a> {
    name: &'a str,
    size: u64,
    offset: u64,
    bytes: &'a [u8],
    changed: &'a [bool],
    interval: Duration,
    number: u64,
    /// When bytes last changed, and how many.
    last_change: Option<(Instant, usize)>,
    colour: bool,
    /// At most this many dump lines (the terminal's height).
    max_lines: usize,
    encoding: Encoding,
}

impl Frame<'_> {
    fn lines(&self) -> Vec<String> {
        let total_lines = self.bytes.len().div_ceil(hexdump::WIDTH);
        let shown_lines = total_lines.min(self.max_lines);
        let shown_bytes = (shown_lines * hexdump::WIDTH).min(self.bytes.len());
        let end = self.offset + self.bytes.len() as u64;
        let mut header = format!(
            "memlink watch: region \"{}\" ({}), bytes {:#x}..{:#x}, every {}",
            self.name,
            human_size(self.size),
            self.offset,
            end,
            humantime::format_duration(self.interval),
        );
        if shown_bytes < self.bytes.len() {
            header.push_str(&format!(
                " (showing {shown_bytes} of {} bytes: the terminal is too small)",
                self.bytes.len()
            ));
        }
        let change = match self.last_change {
            None => "no change yet".to_owned(),
            Some((at, count)) => format!(
                "last change: {} {} ago",
                if count == 1 {
                    "1 byte".to_owned()
                } else {
                    format!("{count} bytes")
                },
                seconds(at.elapsed())
            ),
        };
        let marker = if self.colour { "" } else { " (marked *)" };
        let mut lines = vec![
            header,
            format!("frame {}, {change}{marker}; Ctrl-C quits", self.number),
            String::new(),
        ];
        let digits = hexdump::offset_digits(end);
        for i in 0..shown_lines {
            let from = i * hexdump::WIDTH;
            let to = (from + hexdump::WIDTH).min(self.bytes.len());
            lines.push(hexdump::watch_line(
                &self.bytes[from..to],
                &self.changed[from..to],
                self.offset + from as u64,
                digits,
                self.colour,
                self.encoding,
            ));
        }
        lines
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Where frames go: redrawn in place on a terminal, appended (only when
/// something changed) elsewhere.
struct Screen {
    out: io::Stdout,
    tty: bool,
    drawn: bool,
}

impl Screen {
    fn draw(&mut self, lines: &[String], changed: bool) -> io::Result<()> {
        let mut out = self.out.lock();
        if self.tty {
            if !self.drawn {
                queue!(out, cursor::Hide, terminal::Clear(terminal::ClearType::All))?;
            }
            queue!(out, cursor::MoveTo(0, 0))?;
            for line in lines {
                write!(out, "{line}")?;
                queue!(out, terminal::Clear(terminal::ClearType::UntilNewLine))?;
                writeln!(out)?;
            }
            queue!(out, terminal::Clear(terminal::ClearType::FromCursorDown))?;
        } else if !self.drawn || changed {
            for line in lines {
                writeln!(out, "{line}")?;
            }
            writeln!(out)?;
        }
        self.drawn = true;
        out.flush()
    }

    fn restore(&mut self) -> io::Result<()> {
        if self.tty && self.drawn {
            let mut out = self.out.lock();
            queue!(out, cursor::Show)?;
            out.flush()?;
        }
        Ok(())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

enum End {
    Interrupted,
    Gone,
}

/// `watch`, resolved: what to follow and how to show it.
struct Watch {
    name: String,
    offset: u64,
    /// The bytes followed: what fits the screen, or what was asked.
    len: Option<u64>,
    interval: Duration,
    encoding: EncodingArgs,
    tty: bool,
    colour: bool,
    /// How long a change stays marked.
    hold: Duration,
}

impl Watch {
    fn resolve(args: WatchArgs) -> CmdResult<Watch> {
        let tty = io::stdout().is_terminal();
        // Each look copies the range and keeps per-byte change marks, so
        // the range is what can be shown: a terminal's worth, or at most
        // MAX_PIPE_LEN bytes into a pipe.
        let screen = (rows_that_fit() * hexdump::WIDTH) as u64;
        let len = match args.len {
            Some(len) if tty => Some(len.min(screen)),
            Some(len) if len > MAX_PIPE_LEN => {
                return Err(failure(format!(
                    "cannot watch region \"{}\": --len {len} is more than the {MAX_PIPE_LEN} bytes watch follows at once; move the window with --offset",
                    args.name
                )))
            }
            Some(len) => Some(len),
            None if tty => Some(screen),
            None => Some(PIPE_DEFAULT_LEN),
        };
        // A missing name or a range past the end is an error at the start;
        // later looks fit the range to the region as it is then.
        let region = Region::open(&args.name, Access::ReadOnly)?;
        check_range("watch", &args.name, region.size(), args.offset, args.len)?;
        Ok(Watch {
            name: args.name,
            offset: args.offset,
            len,
            interval: args.interval,
            encoding: args.encoding,
            tty,
            colour: colour_on_stdout(),
            // On a terminal a change stays marked long enough to be seen.
            hold: if tty {
                args.interval.max(MIN_HIGHLIGHT)
            } else {
                Duration::ZERO
            },
        })
    }

    fn run(self, stop: Receiver<()>) -> CmdResult {
        let Some((mut size, mut bytes)) = look(&self.name, self.offset, self.len)? else {
            eprintln!("memlink: region \"{}\" went away", self.name);
            return Ok(());
        };
        let mut screen = Screen {
            out: io::stdout(),
            tty: self.tty,
            drawn: false,
        };
        let mut changes = Changes::default();
        let mut number = 0;
        let end = loop {
            number += 1;
            let now = Instant::now();
            let (changed, count) = changes.update(&bytes, now, self.hold);
            let frame = Frame {
                name: &self.name,
                size,
                offset: self.offset,
                bytes: &bytes,
                changed: &changed,
                interval: self.interval,
                number,
                last_change: changes.last,
                colour: self.colour,
                max_lines: if self.tty {
                    rows_that_fit()
                } else {
                    usize::MAX
                },
                encoding: self.encoding.for_reading(&bytes),
            };
            screen.draw(&frame.lines(), count > 0)?;

            match stop.recv_timeout(self.interval) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break End::Interrupted,
                Err(RecvTimeoutError::Timeout) => {}
            }
            match look(&self.name, self.offset, self.len)? {
                Some((s, b)) => (size, bytes) = (s, b),
                None => break End::Gone,
            }
        };
        screen.restore()?;
        drop(screen);
        match end {
            End::Interrupted => {
                if self.tty {
                    println!();
                }
            }
            End::Gone => eprintln!("memlink: region \"{}\" went away", self.name),
        }
        Ok(())
    }
}

/// What changed between looks, and when.
#[derive(Default)]
struct Changes {
    previous: Option<Vec<u8>>,
    changed_at: Vec<Option<Instant>>,
    /// When bytes last changed, and how many.
    last: Option<(Instant, usize)>,
}

impl Changes {
    /// Takes in a look at `now`; returns which bytes to mark (changed
    /// within `hold`, or now) and how many changed now.
    fn update(&mut self, bytes: &[u8], now: Instant, hold: Duration) -> (Vec<bool>, usize) {
        self.changed_at.resize(bytes.len(), None);
        let mut count = 0;
        if let Some(before) = &self.previous {
            for (i, byte) in bytes.iter().enumerate() {
                if before.get(i) != Some(byte) {
                    self.changed_at[i] = Some(now);
                    count += 1;
                }
            }
        }
        if count > 0 {
            self.last = Some((now, count));
        }
        self.previous = Some(bytes.to_vec());
        let marked = self
            .changed_at
            .iter()
            .map(|at| at.is_some_and(|at| at == now || now - at < hold))
            .collect();
        (marked, count)
    }
}

pub fn run(args: WatchArgs) -> CmdResult {
    let stop = signals::termination()?;
    Watch::resolve(args)?.run(stop)
}
