//! Two processes bounce a 64-byte sample through two services and print
//! the round trip: `cargo run --release -p memlink --example pubsub_pingpong
//! [ROUNDS] [poll|block]`. The program starts its own second process.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memlink::pubsub::{Publisher, Subscriber};

type Payload = [u8; 64];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--pong") {
        return pong(&args[2], args[3] == "block");
    }
    let rounds: u32 = args.get(1).map_or(Ok(100_000), |s| s.parse())?;
    let blocking = args.get(2).map(String::as_str) == Some("block");
    let base = format!("pingpong-{}", std::process::id());
    let ping = Publisher::<Payload>::connect(&format!("{base}.ping"))?;
    let pongs = Subscriber::<Payload>::connect(&format!("{base}.pong"))?;
    let mut peer = Command::new(std::env::current_exe()?)
        .args(["--pong", &base, if blocking { "block" } else { "poll" }])
        .stdin(Stdio::null())
        .spawn()?;
    let started = Instant::now();
    while ping.subscriber_count()? == 0 {
        if started.elapsed() > Duration::from_secs(10) {
            return Err("the second process did not connect within 10 s".into());
        }
        std::thread::yield_now(); // the peer is starting
    }
    let receive = |blocking: bool| -> memlink::Result<()> {
        if blocking {
            pongs.recv_timeout(Duration::from_secs(10)).map(drop)
        } else {
            loop {
                if pongs.try_recv()?.is_some() {
                    return Ok(());
                }
                std::hint::spin_loop();
            }
        }
    };
    for _ in 0..1000 {
        ping.send_copy(&[1; 64])?;
        receive(blocking)?;
    }
    let started = Instant::now();
    for _ in 0..rounds {
        ping.send_copy(&[1; 64])?;
        receive(blocking)?;
    }
    let each = started.elapsed() / rounds;
    println!(
        "{} round trip, 64 B: {:.3} µs",
        if blocking { "blocking" } else { "polling" },
        each.as_secs_f64() * 1e6
    );
    ping.send_copy(&[0; 64])?; // tells the peer to stop
    peer.wait()?;
    Ok(())
}

fn pong(base: &str, blocking: bool) -> Result<(), Box<dyn std::error::Error>> {
    let pings = Subscriber::<Payload>::connect(&format!("{base}.ping"))?;
    let pong = Publisher::<Payload>::connect(&format!("{base}.pong"))?;
    loop {
        let first = if blocking {
            pings.recv_timeout(Duration::from_secs(10))?[0]
        } else {
            loop {
                if let Some(sample) = pings.try_recv()? {
                    break sample[0];
                }
                std::hint::spin_loop();
            }
        };
        if first == 0 {
            return Ok(());
        }
        pong.send_copy(&[2; 64])?;
    }
}
