//! Work-queue throughput: the driver produces 64-byte messages into a
//! memlink work queue as fast as backpressure lets it; one or three
//! consumer processes (this binary again, started with the hidden
//! `--queue-consumer`) take and acknowledge them, pinned to the peer's CPU.
//!
//! A batch ends when every consumer has taken its *pill* (one per consumer
//! after the messages): a consumer stops at its pill, so each takes exactly
//! one, and it acknowledged everything it took before. The consumers
//! receive through the library's blocking `recv` (poll briefly, yield,
//! sleep), which is how a job queue is used, and what lets three of them
//! share one CPU.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use memlink::queue::{Consumer, Producer, QueueOptions};

use super::ends::{Msg, STREAM_DEPTH};
use super::sys::{self, SILENCE};
use super::{fail, Context, Res};

/// The most consumers a batch uses.
pub const CONSUMERS: usize = 3;
const PILL: u64 = u64::MAX;

fn options() -> QueueOptions {
    QueueOptions::new().capacity(STREAM_DEPTH as u32)
}

fn message(value: u64) -> Msg {
    let mut msg = [0u64; 8];
    msg[0] = value;
    msg[7] = !value;
    msg
}

struct ConsumerProcess {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
}

impl ConsumerProcess {
    fn line(&mut self) -> Res<String> {
        let mut line = String::new();
        if self
            .from
            .read_line(&mut line)
            .context("reading from a consumer")?
            == 0
        {
            return Err(fail(
                "a queue consumer process has ended (its error, if any, is above)",
            ));
        }
        Ok(line.trim_end().to_owned())
    }

    fn tell(&mut self, line: &str) -> Res {
        writeln!(self.to, "{line}")
            .and_then(|()| self.to.flush())
            .context("writing to a consumer")
    }
}

/// The driver's side: the producer and the consumer processes.
pub struct Bench {
    producer: Producer<Msg>,
    consumers: Vec<ConsumerProcess>,
    /// How many consumers the prepared batch uses.
    batch: usize,
}

impl Bench {
    /// Makes the queue `<tag>-queue` and starts the consumer processes.
    pub fn start(tag: &str) -> Res<Bench> {
        let name = format!("{tag}-queue");
        let producer = options()
            .producer::<Msg>(&name)
            .context("connecting the queue's producer")?;
        let exe = std::env::current_exe().context("finding this program")?;
        let mut consumers = Vec::new();
        for _ in 0..CONSUMERS {
            let mut child = Command::new(&exe)
                .args(["--queue-consumer", &name])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .context("starting a queue consumer process")?;
            let to = child.stdin.take().expect("piped");
            let from = BufReader::new(child.stdout.take().expect("piped"));
            let mut consumer = ConsumerProcess { child, to, from };
            let ready = consumer.line()?;
            if ready != "ready" {
                return Err(fail(format!("a queue consumer said {ready:?}, not ready")));
            }
            consumers.push(consumer);
        }
        Ok(Bench {
            producer,
            consumers,
            batch: 1,
        })
    }

    /// Readies `consumers` consumers, pinned to `cpu`, for the next batch.
    pub fn prepare(&mut self, consumers: usize, cpu: usize) -> Res {
        self.batch = consumers;
        for c in &mut self.consumers[..consumers] {
            c.tell(&format!("batch {cpu}"))?;
            let go = c.line()?;
            if go != "go" {
                return Err(fail(format!("a queue consumer said {go:?}, not go")));
            }
        }
        Ok(())
    }

    /// Sends `n` messages and a pill per consumer; returns when every
    /// consumer has finished, with the CPU time they spent.
    pub fn run(&mut self, n: u32) -> Res<Duration> {
        for i in 0..u64::from(n) {
            let mut loan = self
                .producer
                .loan_timeout(SILENCE)
                .context("memlink queue loan")?;
            *loan = message(i);
            loan.send();
        }
        for _ in 0..self.batch {
            self.producer
                .send_copy_timeout(&message(PILL), SILENCE)
                .context("memlink queue send")?;
        }
        let mut cpu = Duration::ZERO;
        for c in &mut self.consumers[..self.batch] {
            let done = c.line()?;
            let nanos = done
                .strip_prefix("done ")
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| fail(format!("a queue consumer said {done:?}, not done")))?;
            cpu += Duration::from_nanos(nanos);
        }
        Ok(cpu)
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        for mut c in self.consumers.drain(..) {
            drop(c.to);
            // The consumer ends when its standard input closes.
            let _ = c.child.wait();
        }
    }
}

/// A consumer process: takes batches until its standard input closes.
pub fn serve(name: &str) -> Res {
    let consumer: Consumer<Msg> = options()
        .consumer(name)
        .context("connecting a queue consumer")?;
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let mut say = |what: &str| {
        writeln!(output, "{what}")
            .and_then(|()| output.flush())
            .context("writing to the driver")
    };
    say("ready")?;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line).context("reading a command")? == 0 {
            return Ok(());
        }
        let cpu = line
            .trim_end()
            .strip_prefix("batch ")
            .and_then(|c| c.parse::<usize>().ok())
            .ok_or_else(|| fail(format!("not a command: {:?}", line.trim_end())))?;
        sys::pin_to(cpu)?;
        say("go")?;
        let start = sys::thread_cpu_time();
        loop {
            let job = consumer
                .recv_timeout(SILENCE)
                .context("memlink queue receive")?;
            if job[7] != !job[0] {
                return Err(fail(format!("message {} arrived torn", job[0])));
            }
            if job[0] == PILL {
                break;
            }
        }
        let cpu = sys::thread_cpu_time().saturating_sub(start);
        say(&format!("done {}", cpu.as_nanos()))?;
    }
}
