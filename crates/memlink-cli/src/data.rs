//! `create`, `read` and `write`: the commands about a region's bytes.
//!
//! Each command first resolves its arguments into a plan (the region
//! opened or its options set, the range checked, the input read and
//! encoded), then runs it.

use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::ArgGroup;
use memlink::{Access, ErrorKind, Lifetime, Region, RegionOptions, State};

use crate::text::{self, Encoding, EncodingArgs};
use crate::units::{self, bytes, human_mode, human_size_exact};
use crate::{colour_on_stdout, failure, hexdump, signals, AlreadyReported, CmdResult};

#[derive(clap::Args)]
pub struct CreateArgs {
    /// The region's name: 1-200 letters, digits, '.', '_', '-' and '@'.
    name: String,
    /// Its size in bytes, with an optional unit, or hex: 4096, 4K, 4KiB,
    /// 1MiB, 2G, 0x1000 (units are powers of 1024).
    #[arg(short, long, value_parser = units::region_size)]
    size: u64,
    /// Text to write at offset 0, followed by a NUL.
    #[arg(short, long, conflicts_with = "file")]
    text: Option<String>,
    /// A file whose bytes to write at offset 0 ('-' reads standard input).
    #[arg(short, long, value_name = "PATH")]
    file: Option<PathBuf>,
    #[command(flatten)]
    encoding: EncodingArgs,
    /// Keep the region when this command ends, until `memlink rm` removes
    /// it (POSIX lifetime; not available on Windows).
    #[arg(short, long)]
    persistent: bool,
    /// Hold the region in a background process: return as soon as the
    /// region exists, printing only that process's id (`kill` it, or
    /// `taskkill /pid` on Windows, to close the region).
    #[arg(long, conflicts_with = "persistent")]
    background: bool,
    /// Who may open it, as octal permission bits [default: 600, this user
    /// only].
    #[arg(short, long, value_name = "OCTAL", value_parser = units::mode)]
    mode: Option<u32>,
    /// Do not reserve the memory now: a large region then costs nothing
    /// until it is written, but a full /dev/shm shows up later: as an error
    /// in `memlink write`, as SIGBUS in a program that writes through a
    /// mapped view.
    #[arg(long)]
    no_reserve: bool,
}

#[derive(clap::Args)]
pub struct ReadArgs {
    /// The region's name.
    name: String,
    /// Where to start, in bytes (with an optional unit, or hex as 0x100).
    #[arg(short, long, value_name = "N", default_value = "0", value_parser = units::offset)]
    offset: u64,
    /// How many bytes to read [default: up to the end].
    #[arg(short, long, value_name = "N", value_parser = units::length)]
    len: Option<u64>,
    /// Print a hex dump with offsets, as `xxd` does.
    #[arg(short = 'x', long, conflicts_with = "raw")]
    hex: bool,
    /// Write the bytes unchanged to standard output, for piping.
    #[arg(short, long)]
    raw: bool,
    /// With --hex, show every line; by default a run of lines equal to the
    /// one before is shown as a single '*'.
    #[arg(short = 'v', long, requires = "hex")]
    no_squeeze: bool,
    #[command(flatten)]
    encoding: EncodingArgs,
}

#[derive(clap::Args)]
#[command(group(ArgGroup::new("input").required(true).args(["text", "file", "stdin"])))]
pub struct WriteArgs {
    /// The region's name.
    name: String,
    /// '-': write the bytes read from standard input.
    #[arg(value_name = "-", value_parser = ["-"], hide_possible_values = true)]
    stdin: Option<String>,
    /// Where to write, in bytes (with an optional unit, or hex as 0x100).
    #[arg(short, long, value_name = "N", default_value = "0", value_parser = units::offset)]
    offset: u64,
    /// Text to write, followed by a NUL (so `memlink read` shows exactly it).
    #[arg(short, long)]
    text: Option<String>,
    /// A file whose bytes to write ('-' reads standard input).
    #[arg(short, long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Write the text without the NUL after it.
    #[arg(long, requires = "text")]
    no_nul: bool,
    #[command(flatten)]
    encoding: EncodingArgs,
}

/// How much is copied out of or into a region at a time: memory stays
/// this small whatever the region's size. The copies use `Region::read_at`
/// and `write_at` (`pread` and `pwrite` on Linux), never a view: reading a
/// page never written takes no space from /dev/shm, and a write that does
/// not fit there is an error, not a SIGBUS.
pub const CHUNK: usize = 64 * 1024;

/// Calls `each` with the bytes `offset..end` of the region, a chunk at a
/// time, until it returns `false`.
fn for_each_chunk(
    region: &Region,
    offset: u64,
    end: u64,
    mut each: impl FnMut(&[u8]) -> CmdResult<bool>,
) -> CmdResult {
    let mut chunk = vec![0u8; (end - offset).min(CHUNK as u64) as usize];
    let mut at = offset;
    while at < end {
        let piece = &mut chunk[..(end - at).min(CHUNK as u64) as usize];
        region.read_at(at, piece)?;
        at += piece.len() as u64;
        if !each(piece)? {
            break;
        }
    }
    Ok(())
}

/// Reads a file, or standard input for `-`, but never more than `limit`
/// bytes and one: a longer input is known not to fit without being held
/// whole in memory.
fn read_input(path: &Path, limit: u64) -> CmdResult<Vec<u8>> {
    let mut bytes = Vec::new();
    let cap = limit.saturating_add(1);
    if path.as_os_str() == "-" {
        io::stdin()
            .take(cap)
            .read_to_end(&mut bytes)
            .map_err(|e| failure(format!("cannot read standard input: {e}")))?;
    } else {
        std::fs::File::open(path)
            .and_then(|file| file.take(cap).read_to_end(&mut bytes))
            .map_err(|e| failure(format!("cannot read file \"{}\": {e}", path.display())))?;
    }
    Ok(bytes)
}

/// What is written: bytes as given, or a text in an encoding.
struct Content {
    bytes: Vec<u8>,
    /// The text's encoding and whether its NUL follows it.
    text: Option<(Encoding, bool)>,
}

impl Content {
    fn text(text: &str, encoding: Encoding, nul: bool) -> Content {
        Content {
            bytes: encoding.encode(text, nul),
            text: Some((encoding, nul)),
        }
    }

    fn raw(bytes: Vec<u8>) -> Content {
        Content { bytes, text: None }
    }

    /// For messages: `13 bytes (the text and its NUL)`, `26 bytes (the
    /// text in UTF-16LE and its NUL)`.
    fn describe(&self) -> String {
        let count = bytes(self.bytes.len() as u64);
        match self.text {
            None => count,
            Some((encoding, nul)) => {
                let text = match encoding {
                    Encoding::Utf8 => "the text".to_owned(),
                    Encoding::Utf16Le => format!("the text in {}", encoding.as_str()),
                };
                let nul = if nul { " and its NUL" } else { "" };
                format!("{count} ({text}{nul})")
            }
        }
    }
}

/// What keeps a new region alive.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// This process, until Ctrl-C.
    Here,
    /// A copy of this command in the background.
    Background,
    /// Nothing: a persistent region.
    Persistent,
}

/// `create`, resolved.
struct Create {
    name: String,
    size: u64,
    options: RegionOptions,
    lifetime: Lifetime,
    mode: u32,
    content: Content,
    hold: Hold,
}

impl Create {
    fn resolve(args: CreateArgs) -> CmdResult<Create> {
        if args.background && args.file.as_deref() == Some(Path::new("-")) {
            // The background process is started again from the arguments,
            // with no standard input of its own.
            return Err(failure(format!(
                "cannot create region \"{}\": --background cannot read standard input; \
                 give --file a path",
                args.name
            )));
        }
        let content = match (&args.text, &args.file) {
            (Some(text), _) => Content::text(text, args.encoding.for_new_region(), true),
            (None, Some(path)) => Content::raw(read_input(path, args.size)?),
            (None, None) => Content::raw(Vec::new()),
        };
        if content.bytes.len() as u64 > args.size {
            return Err(failure(format!(
                "cannot create region \"{}\": {} do not fit in {}",
                args.name,
                if content.text.is_some() {
                    content.describe()
                } else {
                    // Input is read only up to one byte past the size.
                    format!("more than {}", bytes(args.size))
                },
                human_size_exact(args.size),
            )));
        }
        let lifetime = if args.persistent {
            Lifetime::Persistent
        } else {
            Lifetime::LastHandle
        };
        let mode = args.mode.unwrap_or(0o600);
        let hold = match (args.persistent, args.background) {
            (true, _) => Hold::Persistent,
            (false, true) => Hold::Background,
            (false, false) => Hold::Here,
        };
        Ok(Create {
            options: RegionOptions::new()
                .lifetime(lifetime)
                .mode(mode)
                .reserve(!args.no_reserve),
            name: args.name,
            size: args.size,
            lifetime,
            mode,
            content,
            hold,
        })
    }

    fn run(self) -> CmdResult {
        if self.hold == Hold::Background {
            return hold_in_background();
        }
        // Ready for Ctrl-C before the region exists, so it always closes
        // cleanly.
        let stop = match self.hold {
            Hold::Here => Some(signals::termination()?),
            _ => None,
        };
        let region = self.options.create(&self.name, self.size)?;
        if !self.content.bytes.is_empty() {
            region.write_at(0, &self.content.bytes)?;
        }

        let mut out = io::stdout().lock();
        writeln!(
            out,
            "created region \"{}\": {}, lifetime {}, mode {}",
            self.name,
            human_size_exact(region.size()),
            self.lifetime.as_str(),
            human_mode(self.mode),
        )?;
        if !self.content.bytes.is_empty() {
            writeln!(out, "wrote {} at offset 0", self.content.describe())?;
        }
        let Some(stop) = stop else {
            writeln!(
                out,
                "it stays until `memlink rm {}`",
                units::shell_quote(&self.name)
            )?;
            return Ok(());
        };
        writeln!(
            out,
            "{HOLDING} {}; Ctrl-C (or SIGTERM) closes it",
            std::process::id()
        )?;
        out.flush()?;
        drop(out);

        // Blocks until SIGINT / SIGTERM / SIGHUP (Ctrl-C / close on Windows).
        let _ = stop.recv();
        drop(region);
        // A stale name (left by a close that raced another process's
        // probe) is as good as gone: opening it reports NotFound.
        let after = match memlink::inspect(&self.name) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                "that was the last handle, the name is gone"
            }
            Ok(info) if info.state == State::Stale => "that was the last handle, the name is gone",
            _ => "other processes still hold it",
        };
        let mut out = io::stdout().lock();
        if out.is_terminal() {
            // End the line where the terminal echoed ^C.
            writeln!(out)?;
        }
        writeln!(out, "closed region \"{}\"; {after}", self.name)?;
        Ok(())
    }
}

/// The line `create` prints once the region exists and is held, before
/// its pid: what `--background` waits for.
const HOLDING: &str = "holding it in process";

/// `create --background`: runs this very command without `--background`
/// as a child in its own process group (so the terminal's Ctrl-C is not
/// its), waits for it to say it holds the region, and prints its pid. If
/// it fails first, its error and exit status are this command's.
fn hold_in_background() -> CmdResult {
    let exe = std::env::current_exe().map_err(|e| {
        failure(format!(
            "cannot find this program to run it in the background: {e}"
        ))
    })?;
    let args = std::env::args_os()
        .skip(1)
        .filter(|arg| arg != "--background");
    let mut command = Command::new(&exe);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    #[cfg(windows)]
    {
        keep_std_handles_from_children();
        /// CREATE_NEW_PROCESS_GROUP: the console's Ctrl-C is not sent to it.
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        std::os::windows::process::CommandExt::creation_flags(
            &mut command,
            CREATE_NEW_PROCESS_GROUP,
        );
    }
    let mut child = command.spawn().map_err(|e| {
        failure(format!(
            "cannot start {} in the background: {e}",
            exe.display()
        ))
    })?;
    let stdout = BufReader::new(child.stdout.take().expect("piped"));
    for line in stdout.lines() {
        let Ok(line) = line else { break };
        if line.starts_with(HOLDING) {
            // Its later output goes nowhere: it ends quietly on a closed
            // pipe, as every command does.
            writeln!(io::stdout(), "{}", child.id())?;
            return Ok(());
        }
    }
    // It ended (or closed its output) before holding the region.
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let status = child.wait()?;
    eprint!("{stderr}");
    let exit_code = status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1)
        .max(1);
    Err(Box::new(AlreadyReported { exit_code }))
}

/// Makes this process's standard handles uninheritable. Windows hands a
/// child every inheritable handle of its parent, not only the three it is
/// given: the background holder would keep this command's stdout open, and
/// a script reading it (`pid=$(memlink create ... --background)`) would
/// wait for the holder to end. This process ends right after.
#[cfg(windows)]
fn keep_std_handles_from_children() {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Foundation::{SetHandleInformation, HANDLE_FLAG_INHERIT};
    let handles = [
        io::stdin().as_raw_handle(),
        io::stdout().as_raw_handle(),
        io::stderr().as_raw_handle(),
    ];
    for handle in handles {
        // SAFETY: SetHandleInformation only clears the inherit flag of one
        // of this process's standard handles; for a missing (null) one it
        // fails, which changes nothing and is fine to ignore.
        unsafe { SetHandleInformation(handle, HANDLE_FLAG_INHERIT, 0) };
    }
}

pub fn create(args: CreateArgs) -> CmdResult {
    Create::resolve(args)?.run()
}

/// Checks `offset` and `len` against `size`; returns the range's end.
pub fn check_range(
    verb: &str,
    name: &str,
    size: u64,
    offset: u64,
    len: Option<u64>,
) -> CmdResult<u64> {
    let size_note = format!("the region's size is {}", bytes(size));
    if offset >= size {
        return Err(failure(format!(
            "cannot {verb} region \"{name}\": offset {offset} is past the end ({size_note})"
        )));
    }
    let end = match len {
        None => size,
        Some(len) => offset.saturating_add(len),
    };
    if end > size {
        let len = len.unwrap_or_default();
        return Err(failure(format!(
            "cannot {verb} region \"{name}\": {} at offset {offset} go past the end \
             ({size_note})",
            bytes(len)
        )));
    }
    Ok(end)
}

/// How `read` shows the bytes.
enum Shown {
    Raw,
    Hex { squeeze: bool },
    Text(EncodingArgs),
}

/// `read`, resolved.
struct ReadPlan {
    region: Region,
    offset: u64,
    end: u64,
    shown: Shown,
}

impl ReadPlan {
    fn resolve(args: ReadArgs) -> CmdResult<ReadPlan> {
        let region = Region::open(&args.name, Access::ReadOnly)?;
        let end = check_range("read", &args.name, region.size(), args.offset, args.len)?;
        let shown = if args.raw {
            Shown::Raw
        } else if args.hex {
            Shown::Hex {
                squeeze: !args.no_squeeze,
            }
        } else {
            Shown::Text(args.encoding)
        };
        Ok(ReadPlan {
            region,
            offset: args.offset,
            end,
            shown,
        })
    }

    fn run(self) -> CmdResult {
        let (region, offset, end) = (&self.region, self.offset, self.end);
        match self.shown {
            Shown::Raw => {
                let mut out = io::stdout().lock();
                for_each_chunk(region, offset, end, |piece| {
                    out.write_all(piece)?;
                    Ok(true)
                })?;
                out.flush()?;
            }
            Shown::Hex { squeeze } => {
                let mut out = io::BufWriter::new(io::stdout().lock());
                let mut dump = hexdump::Xxd::new(offset, end, squeeze, colour_on_stdout());
                for_each_chunk(region, offset, end, |piece| {
                    dump.write(&mut out, piece)?;
                    Ok(true)
                })?;
                out.flush()?;
            }
            Shown::Text(encoding) => {
                let text = read_text(region, offset, end, encoding)?;
                let mut out = io::stdout().lock();
                if text.ends_with('\n') {
                    write!(out, "{text}")?;
                } else {
                    writeln!(out, "{text}")?;
                }
            }
        }
        Ok(())
    }
}

/// The text at `offset` up to its NUL (or `end`), in the encoding chosen
/// or detected from its first bytes. Read a chunk at a time, so that a
/// short text in a large region costs a short read.
pub fn read_text(
    region: &Region,
    offset: u64,
    end: u64,
    choice: EncodingArgs,
) -> CmdResult<String> {
    let mut bytes = Vec::new();
    let mut encoding = None;
    for_each_chunk(region, offset, end, |piece| {
        let encoding = *encoding.get_or_insert_with(|| choice.for_reading(piece));
        let searched = bytes.len() - bytes.len() % encoding.nul().len();
        bytes.extend_from_slice(piece);
        match encoding.text_len(&bytes[searched..]) {
            Some(len) => {
                bytes.truncate(searched + len);
                Ok(false)
            }
            None => Ok(true),
        }
    })?;
    let encoding = encoding.unwrap_or(Encoding::Utf8);
    Ok(encoding.decode(&bytes))
}

pub fn read(args: ReadArgs) -> CmdResult {
    ReadPlan::resolve(args)?.run()
}

/// `write`, resolved: the region, and the bytes that fit at the offset.
struct WritePlan {
    region: Region,
    offset: u64,
    content: Content,
}

impl WritePlan {
    fn resolve(args: WriteArgs) -> CmdResult<WritePlan> {
        // The region first: a missing one is reported before any input is
        // read, and its size bounds how much input is read.
        let region = Region::open(&args.name, Access::ReadWrite)?;
        let size = region.size();
        let room = size.saturating_sub(args.offset);
        let content = match (&args.text, &args.file) {
            (Some(text), _) => {
                let encoding = match args.encoding.chosen() {
                    Some(encoding) => encoding,
                    None if room == 0 => text::NATIVE,
                    None => {
                        let mut existing = vec![0u8; room.min(text::SAMPLE as u64) as usize];
                        region.read_at(args.offset, &mut existing)?;
                        args.encoding.for_writing(&existing)
                    }
                };
                Content::text(text, encoding, !args.no_nul)
            }
            (None, Some(path)) => Content::raw(read_input(path, room)?),
            (None, None) => Content::raw(read_input(Path::new("-"), room)?),
        };
        let len = content.bytes.len() as u64;
        if content.text.is_none() && len > room {
            return Err(failure(format!(
                "cannot write region \"{}\": the input is more than the {} that fit at offset {} \
                 (the region's size is {})",
                args.name,
                bytes(room),
                args.offset,
                bytes(size)
            )));
        }
        // An empty input writes nothing, but a bad offset is still an error.
        check_range("write", &args.name, size, args.offset, Some(len.max(1))).map_err(|e| {
            let nul = content.text.map_or(
                0,
                |(encoding, nul)| {
                    if nul {
                        encoding.nul().len() as u64
                    } else {
                        0
                    }
                },
            );
            if nul > 0 && args.offset.saturating_add(len) <= size + nul {
                failure(format!("{e}; the text fits without its NUL (--no-nul)"))
            } else {
                e
            }
        })?;
        Ok(WritePlan {
            region,
            offset: args.offset,
            content,
        })
    }

    fn run(self) -> CmdResult {
        if !self.content.bytes.is_empty() {
            self.region.write_at(self.offset, &self.content.bytes)?;
        }
        Ok(())
    }
}

pub fn write(args: WriteArgs) -> CmdResult {
    WritePlan::resolve(args)?.run()
}
