//! The benchmark itself (Linux: it needs mount namespaces).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memlink::pubsub::{Overflow, Publisher, ServiceOptions, Subscriber};
use memlink_bridge::{Bridge, BridgeConfig};
use zenoh::qos::CongestionControl;
use zenoh::Wait;

const PING: &str = "mlbench.ping";
const PONG: &str = "mlbench.pong";
const TPUT: &str = "mlbench.tput";
const BIG: usize = 64 * 1024;
/// A pong with this bit set says "the throughput batch arrived whole".
const DONE: u64 = 1 << 62;

fn options(max: usize) -> ServiceOptions {
    ServiceOptions::new()
        .overflow(Overflow::Block)
        .max_slice_len(max as u64)
}

fn zenoh_config(listen: Option<&str>, connect: Option<&str>) -> zenoh::Config {
    let mut c = zenoh::Config::default();
    let set = |c: &mut zenoh::Config, k: &str, v: &str| c.insert_json5(k, v).unwrap();
    set(&mut c, "mode", "\"peer\"");
    set(&mut c, "scouting/multicast/enabled", "false");
    set(&mut c, "scouting/gossip/enabled", "false");
    match listen {
        Some(l) => set(&mut c, "listen/endpoints", &format!("[{l:?}]")),
        None => set(&mut c, "listen/endpoints", "[]"),
    }
    if let Some(k) = connect {
        set(&mut c, "connect/endpoints", &format!("[{k:?}]"));
    }
    c
}

fn value_of(bytes: &[u8]) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(v)
}

pub fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--role") {
        let rest: Vec<&str> = args[2..].iter().map(String::as_str).collect();
        match args[1].as_str() {
            "bridge" => bridge(&rest),
            "echo" => echo(&rest),
            "ping" => ping(&rest),
            other => panic!("unknown role {other}"),
        }
        return;
    }
    orchestrate(&args);
}

fn bridge(args: &[&str]) {
    let mut config = BridgeConfig::new(vec!["mlbench.*".to_owned()]);
    match args[0] {
        "listen" => config.listen = vec![args[1].to_owned()],
        _ => config.connect = vec![args[1].to_owned()],
    }
    config.scan_interval = Duration::from_millis(50);
    Bridge::start(config).expect("bridge").run();
}

/// Host B: sends back what comes in, on both paths; counts throughput.
fn echo(args: &[&str]) {
    let session = zenoh::open(zenoh_config(Some(args[0]), None))
        .wait()
        .unwrap();
    let ping_sub = options(64).subscriber::<[u8]>(PING).unwrap();
    let pong_pub = options(64).publisher::<[u8]>(PONG).unwrap();
    let tput_sub = options(BIG).subscriber::<[u8]>(TPUT).unwrap();
    let tput_pong = options(64).publisher::<[u8]>(PONG).unwrap();

    let zpong = Arc::new(
        session
            .declare_publisher("bench/pong")
            .congestion_control(CongestionControl::Block)
            .wait()
            .unwrap(),
    );
    let echo_pong = zpong.clone();
    let _zping = session
        .declare_subscriber("bench/ping")
        .callback(move |s| echo_pong.put(s.payload().clone()).wait().unwrap())
        .wait()
        .unwrap();
    let count = AtomicU64::new(0);
    let tput_done = zpong.clone();
    let _ztput = session
        .declare_subscriber("bench/tput")
        .callback(move |s| {
            let bytes = s.payload().to_bytes();
            // Each sample says its index and the batch's length.
            let (index, total) = (value_of(&bytes), value_of(&bytes[8..]));
            let n = count.fetch_add(1, Ordering::Relaxed) + 1;
            if index + 1 == total {
                count.store(0, Ordering::Relaxed);
                let ok = if n == total { DONE } else { DONE | 1 };
                tput_done.put(ok.to_le_bytes().to_vec()).wait().unwrap();
            }
        })
        .wait()
        .unwrap();

    std::thread::spawn(move || {
        let mut n = 0;
        loop {
            let s = tput_sub.recv().unwrap();
            let (index, total) = (value_of(&s), value_of(&s[8..]));
            n += 1;
            if index + 1 == total {
                let ok = if n == total { DONE } else { DONE | 1 };
                n = 0;
                tput_pong.send_copy(&ok.to_le_bytes()).unwrap();
            }
        }
    });
    println!("ready");
    loop {
        let s = ping_sub.recv().unwrap();
        pong_pub.send_copy(&s).unwrap();
    }
}

struct Ping {
    ping: Publisher<[u8]>,
    pong: Subscriber<[u8]>,
    tput: Publisher<[u8]>,
    zping: zenoh::pubsub::Publisher<'static>,
    ztput: zenoh::pubsub::Publisher<'static>,
    zpong: zenoh::pubsub::Subscriber<zenoh::handlers::FifoChannelHandler<zenoh::sample::Sample>>,
    seq: u64,
}

impl Ping {
    fn bridged_rtt(&mut self) -> Duration {
        self.seq += 1;
        let t = Instant::now();
        let mut s = self.ping.loan_slice_uninit(64).unwrap();
        s[..8].copy_from_slice(&self.seq.to_le_bytes());
        s.send().unwrap();
        loop {
            let r = self.pong.recv_timeout(Duration::from_secs(10)).unwrap();
            if value_of(&r) == self.seq {
                return t.elapsed();
            }
        }
    }

    fn plain_rtt(&mut self) -> Duration {
        self.seq += 1;
        let t = Instant::now();
        let mut buf = vec![0u8; 64];
        buf[..8].copy_from_slice(&self.seq.to_le_bytes());
        self.zping.put(buf).wait().unwrap();
        loop {
            let r = self
                .zpong
                .recv_timeout(Duration::from_secs(10))
                .unwrap()
                .expect("a pong within 10 s");
            if value_of(&r.payload().to_bytes()) == self.seq {
                return t.elapsed();
            }
        }
    }

    fn bridged_tput(&mut self, n: u64, len: usize) -> Duration {
        let t = Instant::now();
        for i in 0..n {
            let mut s = self.tput.loan_slice_uninit(len).unwrap();
            s[..8].copy_from_slice(&i.to_le_bytes());
            s[8..16].copy_from_slice(&n.to_le_bytes());
            s.send().unwrap();
        }
        loop {
            let r = self.pong.recv_timeout(Duration::from_secs(60)).unwrap();
            let v = value_of(&r);
            if v & DONE != 0 {
                assert_eq!(v, DONE, "samples were lost through the bridges");
                return t.elapsed();
            }
        }
    }

    fn plain_tput(&mut self, n: u64, len: usize) -> Duration {
        let t = Instant::now();
        for i in 0..n {
            let mut buf = vec![0u8; len];
            buf[..8].copy_from_slice(&i.to_le_bytes());
            buf[8..16].copy_from_slice(&n.to_le_bytes());
            self.ztput.put(buf).wait().unwrap();
        }
        loop {
            let r = self
                .zpong
                .recv_timeout(Duration::from_secs(60))
                .unwrap()
                .expect("the end of the batch within 60 s");
            let v = value_of(&r.payload().to_bytes());
            if v & DONE != 0 {
                assert_eq!(v, DONE, "samples were lost through Zenoh");
                return t.elapsed();
            }
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Host A: measures.
fn ping(args: &[&str]) {
    let rounds: usize = args[1].parse().unwrap();
    let batch: usize = args[2].parse().unwrap();
    let small_n: u64 = args[3].parse().unwrap();
    let big_n: u64 = args[4].parse().unwrap();
    let session = zenoh::open(zenoh_config(None, Some(args[0])))
        .wait()
        .unwrap();
    let zping = session.declare_publisher("bench/ping").wait().unwrap();
    let ztput = session
        .declare_publisher("bench/tput")
        .congestion_control(CongestionControl::Block)
        .wait()
        .unwrap();
    let zpong = session.declare_subscriber("bench/pong").wait().unwrap();
    let mut p = Ping {
        ping: options(64).publisher::<[u8]>(PING).unwrap(),
        pong: options(64).subscriber::<[u8]>(PONG).unwrap(),
        tput: options(BIG).publisher::<[u8]>(TPUT).unwrap(),
        zping,
        ztput,
        zpong,
        seq: 0,
    };
    // Routes up on both paths: probe until an answer comes.
    let deadline = Instant::now() + Duration::from_secs(60);
    'bridged: loop {
        assert!(Instant::now() < deadline, "no route through the bridges");
        p.seq += 1;
        let mut s = p.ping.loan_slice_uninit(64).unwrap();
        s[..8].copy_from_slice(&p.seq.to_le_bytes());
        s.send().unwrap();
        let until = Instant::now() + Duration::from_millis(100);
        while let Ok(r) = p
            .pong
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            if value_of(&r) == p.seq {
                break 'bridged;
            }
        }
    }
    loop {
        assert!(Instant::now() < deadline, "no plain Zenoh route");
        p.seq += 1;
        let mut buf = vec![0u8; 64];
        buf[..8].copy_from_slice(&p.seq.to_le_bytes());
        p.zping.put(buf).wait().unwrap();
        if let Ok(Some(r)) = p.zpong.recv_timeout(Duration::from_millis(100)) {
            if value_of(&r.payload().to_bytes()) == p.seq {
                break;
            }
        }
    }
    // Warm-up of both paths.
    for _ in 0..batch / 2 {
        p.bridged_rtt();
        p.plain_rtt();
    }

    let (mut bridged, mut plain) = (Vec::new(), Vec::new());
    let mean_us = |f: &mut dyn FnMut() -> Duration| {
        let total: Duration = (0..batch).map(|_| f()).sum();
        total.as_secs_f64() * 1e6 / batch as f64
    };
    for round in 0..rounds {
        // Alternate which goes first.
        if round % 2 == 0 {
            bridged.push(mean_us(&mut || p.bridged_rtt()));
            plain.push(mean_us(&mut || p.plain_rtt()));
        } else {
            plain.push(mean_us(&mut || p.plain_rtt()));
            bridged.push(mean_us(&mut || p.bridged_rtt()));
        }
    }
    let ratios: Vec<f64> = bridged.iter().zip(&plain).map(|(b, z)| b / z).collect();
    let (b, z) = (median(&mut bridged), median(&mut plain));
    println!(
        "round trip 64 B A->B->A: bridge {b:.1} us, plain Zenoh {z:.1} us, ratio {:.2} \
         (medians of {rounds} alternating batches of {batch}; per-batch ratios min {:.2} max {:.2})",
        b / z,
        ratios.iter().cloned().fold(f64::MAX, f64::min),
        ratios.iter().cloned().fold(0.0, f64::max),
    );

    for (len, n, label) in [(64usize, small_n, "64 B"), (BIG, big_n, "64 KiB")] {
        let (mut bridged, mut plain) = (Vec::new(), Vec::new());
        p.bridged_tput(n / 4, len);
        p.plain_tput(n / 4, len);
        for round in 0..rounds {
            let rate = |d: Duration| n as f64 / d.as_secs_f64();
            if round % 2 == 0 {
                bridged.push(rate(p.bridged_tput(n, len)));
                plain.push(rate(p.plain_tput(n, len)));
            } else {
                plain.push(rate(p.plain_tput(n, len)));
                bridged.push(rate(p.bridged_tput(n, len)));
            }
        }
        let (b, z) = (median(&mut bridged), median(&mut plain));
        let mb = |r: f64| r * len as f64 / 1e6;
        println!(
            "throughput {label} A->B: bridge {:.0} samples/s ({:.1} MB/s), plain Zenoh {:.0} \
             samples/s ({:.1} MB/s), plain/bridge {:.2} (medians of {rounds} alternating \
             batches of {n})",
            b,
            mb(b),
            z,
            mb(z),
            z / b
        );
    }
}

/// A simulated host: a process holding a mount namespace with its own
/// tmpfs on /dev/shm.
struct Host(Child);

impl Host {
    fn new() -> Host {
        let mut child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg("mount -t tmpfs -o size=512m memlink-bench /dev/shm && echo ready && exec cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the host's namespace was not made");
        Host(child)
    }

    fn spawn(&self, cpu: Option<&str>, args: &[&str]) -> Child {
        let exe = std::env::current_exe().unwrap();
        let mut c = Command::new("nsenter");
        c.arg(format!("--mount=/proc/{}/ns/mnt", self.0.id()))
            .arg("--");
        if let Some(cpu) = cpu {
            c.args(["taskset", "-c", cpu]);
        }
        c.arg(exe).arg("--role").args(args);
        c.stdout(Stdio::piped()).spawn().expect("a bench process")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn orchestrate(args: &[String]) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bridge_bench: needs root (a mount namespace per simulated host)");
        std::process::exit(2);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let pin = args
        .iter()
        .position(|a| a == "--pin")
        .map(|i| args[i + 1].clone());
    let (cpu_a, cpu_b) = match pin.as_deref() {
        None => (None, None),
        Some("same") => (Some("0"), Some("0")),
        Some("different") => (Some("0"), Some("1")),
        Some(other) => panic!("--pin same|different, not {other}"),
    };
    let (rounds, batch, small, big) = if quick {
        ("3", "200", "2000", "200")
    } else {
        ("11", "2000", "50000", "2000")
    };
    let (a, b) = (Host::new(), Host::new());
    let bridges = format!("tcp/127.0.0.1:{}", free_port());
    let plain = format!("tcp/127.0.0.1:{}", free_port());
    let mut children = vec![
        a.spawn(cpu_a, &["bridge", "listen", &bridges]),
        b.spawn(cpu_b, &["bridge", "connect", &bridges]),
    ];
    let mut echo = b.spawn(cpu_b, &["echo", &plain]);
    let mut line = String::new();
    BufReader::new(echo.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "echo did not start");
    children.push(echo);
    println!(
        "bridge_bench: pin {}; {} rounds",
        pin.as_deref().unwrap_or("none (2 vCPUs shared)"),
        rounds
    );
    let mut ping = a.spawn(cpu_a, &["ping", &plain, rounds, batch, small, big]);
    for line in BufReader::new(ping.stdout.take().unwrap()).lines() {
        println!("{}", line.unwrap());
    }
    let status = ping.wait().unwrap();
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert!(status.success(), "ping failed: {status}");
}
