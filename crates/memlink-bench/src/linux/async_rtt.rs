//! The async round trip: memlink's `recv_async` with a tokio
//! current-thread runtime in each process (both sides async), against
//! memlink's blocking `recv` and a tokio `UnixStream` ping-pong, 64 B,
//! pinned on one vCPU and on two. Batches alternate (one of each
//! contender per round, after a round to warm up); each batch starts its
//! own peer (this binary again, told its part through the environment)
//! and times only the round trips. Figures are medians; ratios are the
//! medians of the per-batch ratios.

use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memlink::pubsub::{Publisher, Subscriber};

use super::{fail, median, sys, Context, Res};

const PEER_VAR: &str = "MEMLINK_BENCH_ASYNC_PEER";
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Async,
    Blocking,
    Socket,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Async, Kind::Blocking, Kind::Socket];
    fn key(self) -> &'static str {
        match self {
            Kind::Async => "async",
            Kind::Blocking => "blocking",
            Kind::Socket => "socket",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Kind::Async => "memlink recv_async (tokio)",
            Kind::Blocking => "memlink recv() blocking",
            Kind::Socket => "tokio UnixStream",
        }
    }
}

fn runtime() -> Res<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime")
}

/// In the peer process (started by [`measure`]): serves its batch and
/// exits. `None` when this process is not such a peer.
pub fn peer_from_env() -> Option<Res> {
    let spec = std::env::var(PEER_VAR).ok()?;
    Some(serve(&spec))
}

fn serve(spec: &str) -> Res {
    let words: Vec<&str> = spec.split(' ').collect();
    let [kind, tag, cpu, count] = words[..] else {
        return Err(fail(format!("bad async peer spec {spec:?}")));
    };
    let count: u64 = count.parse().context("count")?;
    sys::pin_to(cpu.parse().context("cpu")?)?;
    let (ping, pong) = (format!("{tag}-ping"), format!("{tag}-pong"));
    match kind {
        "async" => runtime()?.block_on(async {
            let sub = Subscriber::<[u64; 8]>::connect(&ping)?;
            let publisher = Publisher::<[u64; 8]>::connect(&pong)?;
            ready();
            for n in 0..count + 1 {
                let m = *sub.recv_async().await?;
                check(m[0], n)?;
                publisher.send_copy(&[n; 8])?;
            }
            Ok(())
        }),
        "blocking" => {
            let sub = Subscriber::<[u64; 8]>::connect(&ping)?;
            let publisher = Publisher::<[u64; 8]>::connect(&pong)?;
            ready();
            for n in 0..count + 1 {
                let m = *sub.recv_timeout(TIMEOUT)?;
                check(m[0], n)?;
                publisher.send_copy(&[n; 8])?;
            }
            Ok(())
        }
        "socket" => runtime()?.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let addr = SocketAddr::from_abstract_name(tag.as_bytes()).context("address")?;
            // The driver listens already; it accepts after this line.
            ready();
            let std = UnixStream::connect_addr(&addr).context("connecting")?;
            std.set_nonblocking(true).context("nonblocking")?;
            let mut stream = tokio::net::UnixStream::from_std(std).context("registering")?;
            let mut buf = [0u8; 64];
            for n in 0..count + 1 {
                stream.read_exact(&mut buf).await.context("reading")?;
                check(buf[0].into(), n % 256)?;
                stream.write_all(&buf).await.context("writing")?;
            }
            Ok(())
        }),
        _ => Err(fail(format!("unknown async peer kind {kind:?}"))),
    }
}

fn ready() {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready").and_then(|()| out.flush());
}

fn check(got: u64, want: u64) -> Res {
    if got == want {
        Ok(())
    } else {
        Err(fail(format!("got message {got}, expected {want}")))
    }
}

/// One batch of `count` round trips of `kind`, the peer pinned to
/// `cpu`; µs per round trip.
fn batch(kind: Kind, tag: &str, cpu: usize, count: u64) -> Res<f64> {
    let (ping, pong) = (format!("{tag}-ping"), format!("{tag}-pong"));
    let listener = match kind {
        Kind::Socket => Some(
            UnixListener::bind_addr(
                &SocketAddr::from_abstract_name(tag.as_bytes()).context("address")?,
            )
            .context("listening")?,
        ),
        _ => None,
    };
    // Joined before the peer, so that neither misses the other's first
    // sample.
    let services = match kind {
        Kind::Socket => None,
        _ => Some((
            Publisher::<[u64; 8]>::connect(&ping)?,
            Subscriber::<[u64; 8]>::connect(&pong)?,
        )),
    };
    let exe = std::env::current_exe().context("finding this program")?;
    let mut child = Command::new(exe)
        .env(PEER_VAR, format!("{} {tag} {cpu} {count}", kind.key()))
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the async peer")?;
    let mut line = [0u8; 6];
    child
        .stdout
        .take()
        .expect("piped")
        .read_exact(&mut line)
        .context("waiting for the async peer")?;
    let elapsed = match (kind, services, listener) {
        (Kind::Async, Some((publisher, sub)), _) => runtime()?.block_on(async {
            publisher.send_copy(&[0; 8])?; // warm-up round trip
            check(sub.recv_async().await?[0], 0)?;
            let start = Instant::now();
            for n in 1..=count {
                publisher.send_copy(&[n; 8])?;
                check(sub.recv_async().await?[0], n)?;
            }
            Res::Ok(start.elapsed())
        })?,
        (Kind::Blocking, Some((publisher, sub)), _) => {
            publisher.send_copy(&[0; 8])?;
            check(sub.recv_timeout(TIMEOUT)?[0], 0)?;
            let start = Instant::now();
            for n in 1..=count {
                publisher.send_copy(&[n; 8])?;
                check(sub.recv_timeout(TIMEOUT)?[0], n)?;
            }
            start.elapsed()
        }
        (_, _, Some(listener)) => {
            let (std, _) = listener.accept().context("accepting")?;
            runtime()?.block_on(async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                std.set_nonblocking(true).context("nonblocking")?;
                let mut stream = tokio::net::UnixStream::from_std(std).context("registering")?;
                let mut buf = [0u8; 64];
                let mut start = Instant::now();
                for n in 0..=count {
                    if n == 1 {
                        start = Instant::now();
                    }
                    buf[0] = (n % 256) as u8;
                    stream.write_all(&buf).await.context("writing")?;
                    stream.read_exact(&mut buf).await.context("reading")?;
                    check(buf[0].into(), n % 256)?;
                }
                Res::Ok(start.elapsed())
            })?
        }
        _ => unreachable!("each kind has its ends"),
    };
    let status = child.wait().context("waiting for the async peer")?;
    if !status.success() {
        return Err(fail(format!("the async peer failed: {status}")));
    }
    Ok(elapsed.as_secs_f64() * 1e6 / count as f64)
}

/// Measures every contender on one vCPU and on two, `rounds` rounds
/// after one to warm up, and prints the figures and ratios.
pub fn measure(rounds: usize, quick: bool, cpus: [usize; 2]) -> Res {
    let mut out = std::io::stdout().lock();
    for (place, cpu, count) in [
        ("same vCPU", cpus[0], if quick { 300 } else { 3000 }),
        ("different vCPUs", cpus[1], if quick { 100 } else { 600 }),
    ] {
        let mut figures: Vec<Vec<f64>> = vec![Vec::new(); Kind::ALL.len()];
        for round in 0..=rounds {
            for (k, &kind) in Kind::ALL.iter().enumerate() {
                let tag = format!("memlink-bench-async-{}-{round}-{k}", std::process::id());
                let us = batch(kind, &tag, cpu, count)
                    .context(format!("measuring {} ({place})", kind.label()))?;
                if round > 0 {
                    figures[k].push(us);
                }
            }
        }
        writeln!(
            out,
            "Async round trip 64 B, {place} (CPUs {} and {cpu}), median of {rounds} batches",
            cpus[0]
        )
        .context("writing")?;
        for (k, kind) in Kind::ALL.iter().enumerate() {
            writeln!(
                out,
                "  {:<28} {:>8.2} µs",
                kind.label(),
                median(figures[k].iter().copied())
            )
            .context("writing")?;
        }
        for (reference, aim) in [(1, Some(1.5)), (2, None)] {
            let ratio = median(
                figures[0]
                    .iter()
                    .zip(&figures[reference])
                    .map(|(a, r)| a / r),
            );
            let aim = aim.map_or(String::new(), |x| {
                format!(
                    "  (aim ≤ {x:.2}x: {})",
                    if ratio <= x { "met" } else { "MISSED" }
                )
            });
            writeln!(
                out,
                "  ratio {} / {}: {ratio:.2}x{aim}",
                Kind::Async.key(),
                Kind::ALL[reference].key()
            )
            .context("writing")?;
        }
    }
    Ok(())
}
