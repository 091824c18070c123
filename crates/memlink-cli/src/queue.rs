//! Work queues in `ls` and `info`.

use std::io::{BufRead, Write};
use std::time::Duration;

use clap::ArgGroup;
use memlink::queue::{
    inspect_queue, Consumer, OnConsumerDeath, QueueInfo, QueueOptions, QueueParticipant,
};

use crate::coordinate::timed_out_or;
use crate::procs::Process;
use crate::{signals, units, waiting, CmdResult};

/// `inspect_queue`, or `None` for an object that is not a queue.
pub fn inspect(name: &str) -> Option<QueueInfo> {
    inspect_queue(name).ok()
}

/// A queue's participants and counters in a few words, for `ls`.
pub fn summary(info: &QueueInfo) -> String {
    let mut text = format!(
        "{} prod, {} cons, {} waiting, {} in progress",
        info.producers.len(),
        info.consumers.len(),
        info.waiting,
        info.in_progress
    );
    if info.redelivered > 0 {
        text.push_str(&format!(", {} redelivered", info.redelivered));
    }
    if info.lost > 0 {
        text.push_str(&format!(", {} lost", info.lost));
    }
    text
}

/// The rows `info` shows for a queue.
pub fn rows(info: &QueueInfo, row: &mut dyn FnMut(&str, String)) {
    let payload = if info.slices {
        format!(
            "slices of {} ({} bytes each), at most {} bytes",
            info.payload_type, info.payload_size, info.max_payload
        )
    } else {
        format!("{} ({} bytes)", info.payload_type, info.payload_size)
    };
    row("payload", payload);
    row(
        "settings",
        format!(
            "{} producers, {} consumers at most; capacity {} per producer; {}",
            info.max_producers,
            info.max_consumers,
            info.capacity,
            match info.on_consumer_death {
                OnConsumerDeath::CountLost => "a dead consumer's messages are counted lost",
                _ => "a dead consumer's messages are redelivered",
            }
        ),
    );
    row(
        "messages",
        format!(
            "{} waiting, {} in progress; {} redelivered, {} lost",
            info.waiting, info.in_progress, info.redelivered, info.lost
        ),
    );
    let members = |list: &[QueueParticipant], consumers: bool| {
        if list.is_empty() {
            return "none".to_owned();
        }
        list.iter()
            .map(|p| {
                let counts = if consumers {
                    format!("took {}, done {}", p.messages, p.done)
                } else {
                    format!("sent {}", p.messages)
                };
                format!("{}  {counts}", Process::new(p.pid).long())
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    row("producers", members(&info.producers, false));
    row("consumers", members(&info.consumers, true));
}

/// Settings for a queue `push` or `pop` makes; a queue that exists keeps
/// its own unless one is given here (then it must match).
#[derive(clap::Args)]
pub struct QueueArgs {
    /// The largest message, in bytes, if this command makes the queue
    /// [default: 4K].
    #[arg(long, value_name = "SIZE", value_parser = units::size)]
    max_size: Option<u64>,
    /// How many unfinished messages each producer may have, if this
    /// command makes the queue [default: 64].
    #[arg(long, value_name = "N")]
    capacity: Option<u32>,
    /// Count a dead consumer's messages lost instead of redelivering them,
    /// if this command makes the queue.
    #[arg(long)]
    count_lost: bool,
}

impl QueueArgs {
    fn options(&self) -> QueueOptions {
        let mut options = QueueOptions::new();
        if let Some(size) = self.max_size {
            options = options.max_slice_len(size);
        }
        if let Some(capacity) = self.capacity {
            options = options.capacity(capacity);
        }
        if self.count_lost {
            options = options.on_consumer_death(OnConsumerDeath::CountLost);
        }
        options
    }
}

#[derive(clap::Args)]
#[command(group(ArgGroup::new("input").required(true).args(["text", "stdin"])))]
pub struct PushArgs {
    /// The queue's name.
    name: String,
    /// '-': push each line of standard input as a message (without its
    /// newline).
    #[arg(value_name = "-", value_parser = ["-"], hide_possible_values = true)]
    stdin: Option<String>,
    /// The message: this text (UTF-8, no NUL added).
    #[arg(short, long)]
    text: Option<String>,
    /// Push the message this many times.
    #[arg(
        short = 'n',
        long,
        value_name = "N",
        default_value = "1",
        conflicts_with = "stdin"
    )]
    count: u64,
    /// Wait until this many consumers are connected before sending (a
    /// queue nobody else holds goes away, messages and all, when this
    /// command ends).
    #[arg(short = 'w', long, value_name = "N", default_value = "0")]
    wait_consumers: usize,
    /// Give up waiting for consumers, or for room, after this long.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = units::interval)]
    timeout: Duration,
    #[command(flatten)]
    queue: QueueArgs,
}

#[derive(clap::Args)]
pub struct PopArgs {
    /// The queue's name. It is made (for byte messages) if it does not
    /// exist; a queue of any payload type is shown as bytes.
    name: String,
    /// Take this many messages, then exit.
    #[arg(short = 'n', long, value_name = "N", default_value = "1")]
    count: u64,
    /// Exit with status 124 if no message comes for this long [default: wait
    /// as long as it takes].
    #[arg(long, value_name = "DURATION", value_parser = units::interval)]
    timeout: Option<Duration>,
    #[command(flatten)]
    queue: QueueArgs,
}

pub fn push(args: PushArgs) -> CmdResult {
    let producer = args.queue.options().producer::<[u8]>(&args.name)?;
    waiting::for_peers(
        &format!("cannot push onto queue \"{}\"", args.name),
        "consumers",
        args.wait_consumers,
        args.timeout,
        || producer.consumer_count(),
    )?;
    let send = |bytes: &[u8]| -> CmdResult {
        producer
            .send_copy_timeout(bytes, args.timeout)
            .map_err(timed_out_or)
    };
    if let Some(text) = &args.text {
        for _ in 0..args.count {
            send(text.as_bytes())?;
        }
    } else {
        for line in std::io::stdin().lock().lines() {
            send(line?.as_bytes())?;
        }
    }
    Ok(())
}

pub fn pop(args: PopArgs) -> CmdResult {
    let consumer = Consumer::connect_any(&args.name, &args.queue.options())?;
    let stop = signals::termination()?;
    let mut out = std::io::stdout().lock();
    let action = format!("cannot pop from queue \"{}\"", args.name);
    for _ in 0..args.count {
        let Some(job) = waiting::for_message(&stop, args.timeout, &action, |wait| {
            consumer.recv_timeout(wait)
        })?
        else {
            return Ok(());
        };
        out.write_all(String::from_utf8_lossy(&job).as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()?;
        // Printed, then acknowledged: a pop killed in between leaves the
        // message to the queue's rule.
        job.done();
    }
    Ok(())
}
