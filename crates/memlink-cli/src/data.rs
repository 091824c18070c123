//! `create`, `read` and `write`: the commands about a region's bytes.

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use clap::ArgGroup;
use memlink::{Access, ErrorKind, Lifetime, Region, RegionOptions, State};

use crate::units::{self, human_mode, human_size_exact};
use crate::{colour_on_stdout, failure, hexdump, signals, CmdResult};

#[derive(clap::Args)]
pub struct CreateArgs {
    /// The region's name: 1-200 letters, digits, '.', '_', '-' and '@'.
    name: String,
    /// Its size in bytes, with an optional unit: 4096, 4K, 4KiB, 1MiB, 2G
    /// (units are powers of 1024).
    #[arg(short, long, value_parser = units::region_size)]
    size: u64,
    /// Text to write at offset 0, followed by a NUL.
    #[arg(short, long, conflicts_with = "file")]
    text: Option<String>,
    /// A file whose bytes to write at offset 0 ('-' reads standard input).
    #[arg(short, long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Keep the region when this command ends, until `memlink rm` removes
    /// it (POSIX lifetime; not available on Windows).
    #[arg(short, long)]
    persistent: bool,
    /// Who may open it, as octal permission bits [default: 600, this user
    /// only].
    #[arg(short, long, value_name = "OCTAL", value_parser = units::mode)]
    mode: Option<u32>,
    /// Do not reserve the memory now: a large region then costs nothing
    /// until it is written, but a full /dev/shm shows up later, as SIGBUS in
    /// whoever touches a page.
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

fn nul_terminated(text: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(0);
    bytes
}

/// The bytes to write, for messages: `13 bytes (the text and its NUL)`.
fn describe_content(text: bool, len: usize) -> String {
    if text {
        format!("{len} bytes (the text and its NUL)")
    } else {
        format!("{len} bytes")
    }
}

pub fn create(args: CreateArgs) -> CmdResult {
    let content = match (&args.text, &args.file) {
        (Some(text), _) => nul_terminated(text),
        (None, Some(path)) => read_input(path, args.size)?,
        (None, None) => Vec::new(),
    };
    if content.len() as u64 > args.size {
        return Err(failure(format!(
            "cannot create region \"{}\": {} do not fit in {}",
            args.name,
            if args.text.is_some() {
                describe_content(true, content.len())
            } else {
                // Input is read only up to one byte past the size.
                format!("more than {} bytes", args.size)
            },
            human_size_exact(args.size),
        )));
    }
    // Ready for Ctrl-C before the region exists, so it always closes cleanly.
    let stop = if args.persistent {
        None
    } else {
        Some(signals::termination()?)
    };

    let lifetime = if args.persistent {
        Lifetime::Persistent
    } else {
        Lifetime::LastHandle
    };
    let mode = args.mode.unwrap_or(0o600);
    let region = RegionOptions::new()
        .lifetime(lifetime)
        .mode(mode)
        .reserve(!args.no_reserve)
        .create(&args.name, args.size)?;
    if !content.is_empty() {
        region
            .map_mut(0..content.len() as u64)?
            .write_at(0, &content)?;
    }

    let mut out = io::stdout().lock();
    writeln!(
        out,
        "created region \"{}\": {}, lifetime {}, mode {}",
        args.name,
        human_size_exact(region.size()),
        lifetime.as_str(),
        human_mode(mode),
    )?;
    if !content.is_empty() {
        writeln!(
            out,
            "wrote {} at offset 0",
            describe_content(args.text.is_some(), content.len())
        )?;
    }
    let Some(stop) = stop else {
        writeln!(out, "it stays until `memlink rm {}`", args.name)?;
        return Ok(());
    };
    writeln!(
        out,
        "holding it in process {}; Ctrl-C (or SIGTERM) closes it",
        std::process::id()
    )?;
    drop(out);

    // Blocks until SIGINT / SIGTERM / SIGHUP (Ctrl-C / close on Windows).
    let _ = stop.recv();
    drop(region);
    // A stale name (left by a close that raced another process's probe)
    // is as good as gone: opening it reports NotFound.
    let after = match memlink::inspect(&args.name) {
        Err(e) if e.kind() == ErrorKind::NotFound => "that was the last handle, the name is gone",
        Ok(info) if info.state == State::Stale => "that was the last handle, the name is gone",
        _ => "other processes still hold it",
    };
    let mut out = io::stdout().lock();
    if out.is_terminal() {
        // End the line where the terminal echoed ^C.
        writeln!(out)?;
    }
    writeln!(out, "closed region \"{}\"; {after}", args.name)?;
    Ok(())
}

/// Checks `offset` and `len` against `size`; returns the range's end.
pub fn check_range(
    verb: &str,
    name: &str,
    size: u64,
    offset: u64,
    len: Option<u64>,
) -> CmdResult<u64> {
    let size_note = format!("the region's size is {size} bytes");
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
            "cannot {verb} region \"{name}\": {len} bytes at offset {offset} go past the end \
             ({size_note})"
        )));
    }
    Ok(end)
}

/// How much `read` copies out of a region at a time.
const CHUNK: usize = 64 * 1024;

/// The view's bytes up to the first NUL, read a chunk at a time so that a
/// short text in a large region costs a short read.
fn text_up_to_nul(view: &memlink::View) -> memlink::Result<Vec<u8>> {
    let mut text = Vec::new();
    let mut chunk = vec![0u8; view.len().min(CHUNK)];
    for at in (0..view.len()).step_by(CHUNK) {
        let piece = &mut chunk[..CHUNK.min(view.len() - at)];
        view.read_at(at, piece)?;
        match piece.iter().position(|&b| b == 0) {
            Some(nul) => {
                text.extend_from_slice(&piece[..nul]);
                break;
            }
            None => text.extend_from_slice(piece),
        }
    }
    Ok(text)
}

pub fn read(args: ReadArgs) -> CmdResult {
    let region = Region::open(&args.name, Access::ReadOnly)?;
    let end = check_range("read", &args.name, region.size(), args.offset, args.len)?;
    let view = region.map(args.offset..end)?;
    if args.raw {
        let mut out = io::stdout().lock();
        // In chunks: a large region is never copied whole into memory.
        let mut chunk = vec![0u8; view.len().min(CHUNK)];
        for at in (0..view.len()).step_by(CHUNK) {
            let piece = &mut chunk[..CHUNK.min(view.len() - at)];
            view.read_at(at, piece)?;
            out.write_all(piece)?;
        }
        out.flush()?;
    } else if args.hex {
        let mut out = io::BufWriter::new(io::stdout().lock());
        let colour = colour_on_stdout();
        hexdump::xxd(
            &mut out,
            &view.to_vec(),
            args.offset,
            !args.no_squeeze,
            colour,
        )?;
        out.flush()?;
    } else {
        let text = text_up_to_nul(&view)?;
        let text = String::from_utf8_lossy(&text);
        let mut out = io::stdout().lock();
        if text.ends_with('\n') {
            write!(out, "{text}")?;
        } else {
            writeln!(out, "{text}")?;
        }
    }
    Ok(())
}

pub fn write(args: WriteArgs) -> CmdResult {
    // The region first: a missing one is reported before any input is read,
    // and its size bounds how much input is read.
    let region = Region::open(&args.name, Access::ReadWrite)?;
    let size = region.size();
    let room = size.saturating_sub(args.offset);
    let (bytes, is_text) = match (&args.text, &args.file) {
        (Some(text), _) if args.no_nul => (text.as_bytes().to_vec(), false),
        (Some(text), _) => (nul_terminated(text), true),
        (None, Some(path)) => (read_input(path, room)?, false),
        (None, None) => (read_input(Path::new("-"), room)?, false),
    };
    let len = bytes.len() as u64;
    if !is_text && len > room {
        return Err(failure(format!(
            "cannot write region \"{}\": the input is more than the {room} bytes that fit at offset {} (the region's size is {size} bytes)",
            args.name, args.offset
        )));
    }
    // An empty input writes nothing, but a bad offset is still an error.
    let end =
        check_range("write", &args.name, size, args.offset, Some(len.max(1))).map_err(|e| {
            if is_text && args.offset.saturating_add(len) == size + 1 {
                failure(format!("{e}; the text fits without its NUL (--no-nul)"))
            } else {
                e
            }
        })?;
    if !bytes.is_empty() {
        region.map_mut(args.offset..end)?.write_at(0, &bytes)?;
    }
    Ok(())
}
