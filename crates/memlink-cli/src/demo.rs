//! The seeds' demo, played by two real processes.

use std::error::Error;
use std::process::Command;

use memlink::{Access, ErrorKind, Region};

use crate::data::read_text;
use crate::text::EncodingArgs;
use crate::units::bytes;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// The text process 1 writes into the region.
    #[arg(
        long,
        default_value = "Hello from process 1, through named shared memory!"
    )]
    text: String,
    /// The region's name.
    #[arg(long, default_value = "MMFSharedData")]
    name: String,
    /// How process 1 stores the text: utf-8 or utf-16le [default: UTF-16LE
    /// on Windows, as the seeds' UNICODE build does; UTF-8 elsewhere].
    #[command(flatten)]
    encoding: EncodingArgs,
}

#[derive(clap::Args)]
pub struct ReaderArgs {
    name: String,
    #[command(flatten)]
    encoding: EncodingArgs,
}

const SIZE: u64 = 4096;
/// Process 2 copies out at most this many characters, as the seed does.
const READ_LIMIT: u64 = 256;

/// Prints one step; an error (a closed pipe) ends the demo through the
/// usual error path, so the region is still closed properly.
fn say(process: u8, what: impl AsRef<str>) -> std::io::Result<()> {
    use std::io::Write;
    let indent = if process == 1 { "" } else { "    " };
    writeln!(
        std::io::stdout(),
        "{indent}[process {process}] {}",
        what.as_ref()
    )
}

pub fn run(args: DemoArgs) -> Result<(), Box<dyn Error>> {
    let name = &args.name;
    let encoding = args.encoding.for_new_region();
    let text = encoding.encode(&args.text, true);
    if text.len() as u64 > SIZE {
        return Err(format!(
            "cannot create region \"{name}\": {} (the text in {} and its NUL) do not fit in \
             {}",
            bytes(text.len() as u64),
            encoding.as_str(),
            bytes(SIZE),
        )
        .into());
    }
    say(
        1,
        format!("Create mapping of Data: creating region \"{name}\", {SIZE} bytes"),
    )?;
    let region = match Region::create(name, SIZE) {
        Ok(region) => region,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            say(
                1,
                "a mapping of that name already exists; closing and stopping",
            )?;
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let mut view = region.map_mut(..)?;
    say(
        1,
        format!("mapped a read-write view of all {} bytes", view.len()),
    )?;
    view.fill(0);
    drop(view);
    region.write_at(0, &text)?;
    say(
        1,
        format!(
            "zeroed it and wrote {:?} ({} in {} with its NUL)",
            args.text,
            bytes(text.len() as u64),
            encoding.as_str(),
        ),
    )?;
    say(
        1,
        "unmapped the view; the handle stays open, or nobody could open the region",
    )?;

    let exe = std::env::current_exe()?;
    let reader_args = ["demo-reader", name, "--encoding", encoding.option_value()];
    say(
        1,
        format!(
            "starting process 2: {} {}",
            exe.display(),
            reader_args.join(" ")
        ),
    )?;
    let status = Command::new(&exe).args(reader_args).status()?;
    if !status.success() {
        return Err(format!("process 2 failed: {status}").into());
    }
    say(1, "process 2 has finished")?;

    drop(region);
    say(1, "Close mapping of Data: closed the handle, the last one")?;
    match Region::open(name, Access::ReadOnly) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            say(1, format!("opening it again fails, as on Windows: {e}"))?;
            Ok(())
        }
        Err(e) => Err(e.into()),
        Ok(_) => Err(format!("region \"{name}\" still exists after its last handle closed").into()),
    }
}

pub fn reader(args: ReaderArgs) -> Result<(), Box<dyn Error>> {
    let name = &args.name;
    let region = match Region::open(name, Access::ReadOnly) {
        Ok(region) => region,
        Err(e) => {
            say(2, "cannot open the mapping")?;
            return Err(e.into());
        }
    };
    say(
        2,
        format!(
            "Open mapping and get Data: opened \"{name}\" read-only, {} bytes",
            region.size()
        ),
    )?;
    // The seed copies out characters: two bytes each in UTF-16LE.
    let limit = READ_LIMIT * args.encoding.chosen().map_or(1, |e| e.nul().len() as u64);
    let text = read_text(&region, 0, limit.min(region.size()), args.encoding)?;
    say(
        2,
        format!("mapped a read-only view and read up to the NUL: {text:?}"),
    )?;
    drop(region);
    say(2, "unmapped the view and closed its handle")?;
    Ok(())
}
