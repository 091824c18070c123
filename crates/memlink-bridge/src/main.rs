//! `memlink-bridge`: carries memlink publish/subscribe services across
//! machines over Zenoh. See the crate's library docs for the rules.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use memlink_bridge::{Bridge, BridgeConfig, Mode};

/// Carries memlink publish/subscribe services to other machines over Zenoh
/// and back: local publishers' samples are put on PREFIX/NAME, samples put
/// there by other machines' bridges are published into the local service.
#[derive(Parser)]
#[command(name = "memlink-bridge", version)]
struct Args {
    /// A service to bridge: its name, or a glob over names ('*' any run of
    /// characters, '?' one), e.g. 'sensors.*'. Repeatable. Services that
    /// match are picked up while the bridge runs.
    #[arg(long = "service", value_name = "NAME|GLOB", required = true)]
    services: Vec<String>,
    /// The Zenoh key prefix: service NAME is carried on PREFIX/NAME.
    #[arg(long, value_name = "KEY", default_value = "memlink")]
    prefix: String,
    /// A Zenoh endpoint to connect to (repeatable), e.g. tcp/10.0.0.2:7447.
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// A Zenoh endpoint to listen on (repeatable), e.g. tcp/0.0.0.0:7447.
    #[arg(long, value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// A Zenoh configuration file (JSON5); the options above override it.
    /// Without one, multicast scouting is off.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The Zenoh mode.
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// How often to look for new services matching a glob, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    scan_interval: u64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    /// Talk to other peers directly (the default).
    Peer,
    /// Talk through a Zenoh router.
    Client,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = BridgeConfig {
        services: args.services,
        prefix: args.prefix,
        connect: args.connect,
        listen: args.listen,
        config_file: args.config,
        mode: args.mode.map(|m| match m {
            ModeArg::Peer => Mode::Peer,
            ModeArg::Client => Mode::Client,
        }),
        scan_interval: std::time::Duration::from_millis(args.scan_interval.max(10)),
    };
    let bridge = match Bridge::start(config) {
        Ok(bridge) => bridge,
        Err(e) => {
            eprintln!("memlink-bridge: {e}");
            return ExitCode::from(1);
        }
    };
    // Runs until killed: every participant's place is released by the
    // kernel when the process goes, however it goes.
    bridge.run();
    ExitCode::SUCCESS
}
