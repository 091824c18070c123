//! The seeds' demo, played by two real processes.

use std::error::Error;
use std::process::Command;

use memlink::{Access, ErrorKind, Region};

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
}

#[derive(clap::Args)]
pub struct ReaderArgs {
    name: String,
}

const SIZE: u64 = 4096;
/// Process 2 copies out at most this much, as the seed does.
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
    if args.text.len() as u64 >= SIZE {
        return Err(format!(
            "the text is {} bytes; it must fit in {SIZE} with its NUL",
            args.text.len()
        )
        .into());
    }
    let name = &args.name;
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
    view.write_at(0, args.text.as_bytes())?;
    say(
        1,
        format!(
            "zeroed it and wrote {:?} ({} bytes and a NUL)",
            args.text,
            args.text.len()
        ),
    )?;
    drop(view);
    say(
        1,
        "unmapped the view; the handle stays open, or nobody could open the region",
    )?;

    let exe = std::env::current_exe()?;
    say(
        1,
        format!("starting process 2: {} demo-reader {name}", exe.display()),
    )?;
    let status = Command::new(&exe).args(["demo-reader", name]).status()?;
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
    let view = region.map(0..READ_LIMIT.min(region.size()))?;
    let bytes = view.to_vec();
    let text = bytes.split(|&b| b == 0).next().unwrap_or_default();
    say(
        2,
        format!(
            "mapped a read-only view and read up to the NUL: {:?}",
            String::from_utf8_lossy(text)
        ),
    )?;
    drop(view);
    drop(region);
    say(2, "unmapped the view and closed its handle")?;
    Ok(())
}
