//! `memlink`: create, inspect, watch and clean up named shared memory.

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "memlink",
    version,
    about = "Named shared memory, the Windows way, on every platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Play the seeds' two-process demo: create, write, read from another
    /// process, close, and watch the name go away.
    Demo(demo::DemoArgs),
    /// The demo's second process (started by `memlink demo`).
    #[command(hide = true)]
    DemoReader(demo::ReaderArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::DemoReader(args) => demo::reader(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memlink: {e}");
            ExitCode::FAILURE
        }
    }
}
