//! Both processes' ends of every contender, and what each side does in a
//! batch: the driver times its side, the peer serves.
//!
//! "ping" services carry driver → peer, "pong" services peer → driver; each
//! process builds the same set with the directions swapped. Every message
//! carries a number the other side checks, so a benchmark that loses or
//! mixes up messages fails instead of reporting a figure.

use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::prelude::*;
use memlink::pubsub::{Overflow, ServiceOptions};
use memlink::reqresp::RpcOptions;
use memlink::{Access, Region, ViewMut};

use super::sys::{futex_wait, futex_wake, spin, SILENCE};
use super::{fail, Context, Res};

/// A 64-byte message.
pub type Msg = [u64; 8];
/// The slice sizes of the zero-copy round trips.
pub const SLICE_4K: usize = 4096;
pub const SLICE_1M: usize = 1 << 20;
/// How many messages the one-way streams keep in flight at most (memlink's
/// capacity, iceoryx2's subscriber buffer, the ring's length).
pub const STREAM_DEPTH: usize = 64;
/// The subscriber counts of the send-cost figures.
pub const SUBSCRIBER_COUNTS: [usize; 3] = [1, 8, 64];

type MlPublisher<T> = memlink::pubsub::Publisher<T>;
type MlSubscriber<T> = memlink::pubsub::Subscriber<T>;
type IxPublisher<T> = iceoryx2::port::publisher::Publisher<ipc::Service, T, ()>;
type IxSubscriber<T> = iceoryx2::port::subscriber::Subscriber<ipc::Service, T, ()>;
type MlClient = memlink::reqresp::Client<Msg, Msg>;
type MlServer = memlink::reqresp::Server<Msg, Msg>;
type IxClient = iceoryx2::port::client::Client<ipc::Service, Msg, (), Msg, ()>;
type IxServer = iceoryx2::port::server::Server<ipc::Service, Msg, (), Msg, ()>;
/// iceoryx2 slices of bytes that may be left unwritten: only a few words of
/// each sample are touched, and reading the rest is never needed.
type Bytes = [MaybeUninit<u8>];
/// The publisher and subscriber of a slice round trip.
type MlSlices = (MlPublisher<[u8]>, MlSubscriber<[u8]>);
type IxSlices = (IxPublisher<Bytes>, IxSubscriber<Bytes>);

/// What a batch exercises; the peer is told by its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    FloorOneLine,
    FloorTwoLines,
    FloorPayload,
    MemlinkPoll,
    IceoryxPoll,
    MemlinkSlice4K,
    MemlinkSlice1M,
    IceoryxSlice4K,
    IceoryxSlice1M,
    Futex,
    MemlinkBlocking,
    IceoryxEvent,
    UnixSocket,
    Pipe,
    MemlinkStream,
    IceoryxStream,
    RingStream,
    RpcMemlinkPoll,
    RpcMemlinkYield,
    RpcMemlinkBlocking,
    RpcIceoryxPoll,
    RpcIceoryxYield,
}

impl Contender {
    const ALL: [Contender; 22] = [
        Contender::FloorOneLine,
        Contender::FloorTwoLines,
        Contender::FloorPayload,
        Contender::MemlinkPoll,
        Contender::IceoryxPoll,
        Contender::MemlinkSlice4K,
        Contender::MemlinkSlice1M,
        Contender::IceoryxSlice4K,
        Contender::IceoryxSlice1M,
        Contender::Futex,
        Contender::MemlinkBlocking,
        Contender::IceoryxEvent,
        Contender::UnixSocket,
        Contender::Pipe,
        Contender::MemlinkStream,
        Contender::IceoryxStream,
        Contender::RingStream,
        Contender::RpcMemlinkPoll,
        Contender::RpcMemlinkYield,
        Contender::RpcMemlinkBlocking,
        Contender::RpcIceoryxPoll,
        Contender::RpcIceoryxYield,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Contender::FloorOneLine => "floor-1",
            Contender::FloorTwoLines => "floor-2",
            Contender::FloorPayload => "floor-payload",
            Contender::MemlinkPoll => "memlink-poll",
            Contender::IceoryxPoll => "iceoryx2-poll",
            Contender::MemlinkSlice4K => "memlink-4k",
            Contender::MemlinkSlice1M => "memlink-1m",
            Contender::IceoryxSlice4K => "iceoryx2-4k",
            Contender::IceoryxSlice1M => "iceoryx2-1m",
            Contender::Futex => "futex",
            Contender::MemlinkBlocking => "memlink-recv",
            Contender::IceoryxEvent => "iceoryx2-event",
            Contender::UnixSocket => "unix-socket",
            Contender::Pipe => "pipe",
            Contender::MemlinkStream => "memlink-stream",
            Contender::IceoryxStream => "iceoryx2-stream",
            Contender::RingStream => "ring-stream",
            Contender::RpcMemlinkPoll => "rpc-memlink-poll",
            Contender::RpcMemlinkYield => "rpc-memlink-yield",
            Contender::RpcMemlinkBlocking => "rpc-memlink-recv",
            Contender::RpcIceoryxPoll => "rpc-iceoryx2-poll",
            Contender::RpcIceoryxYield => "rpc-iceoryx2-yield",
        }
    }

    pub fn from_key(key: &str) -> Option<Contender> {
        Contender::ALL.into_iter().find(|c| c.key() == key)
    }

    /// One-way streams end with the peer saying it has every message.
    pub fn is_stream(self) -> bool {
        matches!(
            self,
            Contender::MemlinkStream | Contender::IceoryxStream | Contender::RingStream
        )
    }
}

/// How a request/response side waits for the other.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Busy polling.
    Spin,
    /// Polling, giving the CPU up between polls (for the same vCPU).
    Yield,
    /// The blocking receive.
    Block,
}

/// The library behind a send-cost figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Library {
    Memlink,
    Iceoryx2,
}

/// Which end this process is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Driver,
    Peer,
}

/// Offsets in the shared region of the bare references. Each word has its
/// own 128-byte block, so neither it nor the adjacent-line prefetch shares
/// a cache line with another word.
const ONE_LINE: usize = 0;
const PING: usize = 128;
const PONG: usize = 256;
const FUTEX_PING: usize = 384;
const FUTEX_PONG: usize = 512;
const RING_HEAD: usize = 640;
const RING_TAIL: usize = 768;
const PING_PAYLOAD: usize = 896;
const PONG_PAYLOAD: usize = 1024;
const RING_SLOTS: usize = 1152;
const SHARED_SIZE: usize = RING_SLOTS + STREAM_DEPTH * std::mem::size_of::<Msg>();

/// The region of the bare references: a memlink region, used as plain
/// shared memory.
struct Shared {
    view: ViewMut,
    _region: Region,
}

impl Shared {
    fn new(side: Side, name: &str) -> Res<Shared> {
        let region = match side {
            Side::Driver => Region::create(name, SHARED_SIZE as u64),
            Side::Peer => Region::open(name, Access::ReadWrite),
        }
        .context("the shared region of the references")?;
        let view = region
            .map_mut(..)
            .context("mapping the shared region of the references")?;
        if view.len() < SHARED_SIZE || view.as_ptr().align_offset(4096) != 0 {
            return Err(fail("the shared region of the references is too small"));
        }
        Ok(Shared {
            view,
            _region: region,
        })
    }

    fn base(&self) -> *mut u8 {
        self.view.as_ptr().cast_mut()
    }

    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `offset` is one of the constants above, 8-byte aligned and
        // inside the page-aligned mapping of SHARED_SIZE bytes (checked in
        // `new`), which lives as long as `self`. Both processes access these
        // bytes only through atomics.
        unsafe { AtomicU64::from_ptr(self.base().add(offset).cast()) }
    }

    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: as in `u64_at`.
        unsafe { AtomicU32::from_ptr(self.base().add(offset).cast()) }
    }

    /// The 64-byte message line of ping (driver) or pong (peer).
    fn payload_line(&self, offset: usize) -> *mut Msg {
        // SAFETY: PING_PAYLOAD and PONG_PAYLOAD are 64-byte aligned blocks
        // inside the mapping.
        unsafe { self.base().add(offset).cast() }
    }

    fn ring_slot(&self, index: u64) -> *mut Msg {
        let slot = index as usize % STREAM_DEPTH;
        // SAFETY: the slot lies inside the mapping (RING_SLOTS + 64 slots of
        // 64 bytes = SHARED_SIZE); 64-byte aligned.
        unsafe {
            self.base()
                .add(RING_SLOTS + slot * std::mem::size_of::<Msg>())
                .cast()
        }
    }
}

/// Every endpoint of one process.
pub struct Ends {
    side: Side,
    shared: Shared,
    socket: Option<UnixStream>,
    ml_tx: MlPublisher<Msg>,
    ml_rx: MlSubscriber<Msg>,
    ml_tx_4k: MlPublisher<[u8]>,
    ml_rx_4k: MlSubscriber<[u8]>,
    ml_tx_1m: MlPublisher<[u8]>,
    ml_rx_1m: MlSubscriber<[u8]>,
    ml_stream_tx: Option<MlPublisher<Msg>>,
    ml_stream_rx: Option<MlSubscriber<Msg>>,
    ml_cost_tx: Vec<MlPublisher<Msg>>,
    _ml_cost_rx: Vec<MlSubscriber<Msg>>,
    ix_tx: IxPublisher<Msg>,
    ix_rx: IxSubscriber<Msg>,
    ix_notifier: Notifier<ipc::Service>,
    ix_listener: Listener<ipc::Service>,
    ix_tx_4k: IxPublisher<Bytes>,
    ix_rx_4k: IxSubscriber<Bytes>,
    ix_tx_1m: IxPublisher<Bytes>,
    ix_rx_1m: IxSubscriber<Bytes>,
    ix_stream_tx: Option<IxPublisher<Msg>>,
    ix_stream_rx: Option<IxSubscriber<Msg>>,
    ix_cost_tx: Vec<IxPublisher<Msg>>,
    _ix_cost_rx: Vec<IxSubscriber<Msg>>,
    /// Request/response: the driver is the client, the peer the server.
    ml_rpc_client: Option<MlClient>,
    ml_rpc_server: Option<MlServer>,
    ix_rpc_client: Option<IxClient>,
    ix_rpc_server: Option<IxServer>,
    /// Kept for the ports above (dropped last).
    _node: Node<ipc::Service>,
}

/// The memlink settings of a point-to-point service: one publisher, one
/// subscriber (what iceoryx2's own benchmark sets up for itself too).
fn ml_pair() -> ServiceOptions {
    ServiceOptions::new().max_publishers(1).max_subscribers(1)
}

fn ml_slices(len: usize) -> ServiceOptions {
    // Few slots: each is `len` bytes, and a round trip has one in flight.
    ml_pair()
        .max_slice_len(len as u64)
        .capacity(4)
        .max_loans(2)
        .max_borrowed(2)
}

fn ix_name(tag: &str, what: &str) -> Res<ServiceName> {
    let name = format!("memlink-bench/{tag}/{what}");
    ServiceName::new(&name).context(format!("the iceoryx2 service name {name}"))
}

impl Ends {
    /// Makes (driver) or joins (peer) everything. The driver makes every
    /// service before it starts the peer, so the two never race to create
    /// one; the peer connects the socket the driver listens on.
    pub fn new(side: Side, tag: &str) -> Res<Ends> {
        let (out, inp) = match side {
            Side::Driver => ("ping", "pong"),
            Side::Peer => ("pong", "ping"),
        };
        let ml = |what: &str| format!("{tag}-{what}");
        let shared = Shared::new(side, &ml("shared"))?;
        let socket = match side {
            Side::Driver => None,
            Side::Peer => Some(connect_socket(tag)?),
        };

        let ml_tx = ml_pair()
            .publisher::<Msg>(&ml(out))
            .context(format!("memlink publisher {}", ml(out)))?;
        let ml_rx = ml_pair()
            .subscriber::<Msg>(&ml(inp))
            .context(format!("memlink subscriber {}", ml(inp)))?;
        let slices = |len: usize, dir: &str| -> Res<MlSlices> {
            let tx = ml(&format!("{out}-{dir}"));
            let rx = ml(&format!("{inp}-{dir}"));
            Ok((
                ml_slices(len)
                    .publisher::<[u8]>(&tx)
                    .context(format!("memlink publisher {tx}"))?,
                ml_slices(len)
                    .subscriber::<[u8]>(&rx)
                    .context(format!("memlink subscriber {rx}"))?,
            ))
        };
        let (ml_tx_4k, ml_rx_4k) = slices(SLICE_4K, "4k")?;
        let (ml_tx_1m, ml_rx_1m) = slices(SLICE_1M, "1m")?;
        let stream_options = ml_pair()
            .capacity(STREAM_DEPTH as u32)
            .overflow(Overflow::Block);
        let stream = ml("stream");
        let (ml_stream_tx, ml_stream_rx) = match side {
            Side::Driver => (
                Some(
                    stream_options
                        .publisher::<Msg>(&stream)
                        .context(format!("memlink publisher {stream}"))?,
                ),
                None,
            ),
            Side::Peer => (
                None,
                Some(
                    stream_options
                        .subscriber::<Msg>(&stream)
                        .context(format!("memlink subscriber {stream}"))?,
                ),
            ),
        };
        // Send cost: every service allows 64 subscribers; the peer connects
        // 1, 8 or 64 idle ones. Overwrite: a send never waits for them.
        let cost_options = ServiceOptions::new()
            .max_publishers(1)
            .max_subscribers(64)
            .overflow(Overflow::Overwrite);
        let (mut ml_cost_tx, mut ml_cost_rx) = (Vec::new(), Vec::new());
        for count in SUBSCRIBER_COUNTS {
            let name = ml(&format!("cost-{count}"));
            match side {
                Side::Driver => ml_cost_tx.push(
                    cost_options
                        .publisher::<Msg>(&name)
                        .context(format!("memlink publisher {name}"))?,
                ),
                Side::Peer => {
                    for _ in 0..count {
                        ml_cost_rx.push(
                            cost_options
                                .subscriber::<Msg>(&name)
                                .context(format!("memlink subscriber {name}"))?,
                        );
                    }
                }
            }
        }

        let node = NodeBuilder::new()
            .create::<ipc::Service>()
            .context("iceoryx2 node")?;
        let ix_pair = |what: &str| -> Res<_> {
            let name = ix_name(tag, what)?;
            node.service_builder(&name)
                .publish_subscribe::<Msg>()
                .max_publishers(1)
                .max_subscribers(1)
                .open_or_create()
                .context(format!("iceoryx2 service {name}"))
        };
        let ix_tx = ix_pair(out)?
            .publisher_builder()
            .create()
            .context("iceoryx2 publisher")?;
        let ix_rx = ix_pair(inp)?
            .subscriber_builder()
            .create()
            .context("iceoryx2 subscriber")?;
        let ix_event = |what: &str| -> Res<_> {
            let name = ix_name(tag, &format!("{what}-event"))?;
            node.service_builder(&name)
                .event()
                .open_or_create()
                .context(format!("iceoryx2 event service {name}"))
        };
        let ix_notifier = ix_event(out)?
            .notifier_builder()
            .create()
            .context("iceoryx2 notifier")?;
        let ix_listener = ix_event(inp)?
            .listener_builder()
            .create()
            .context("iceoryx2 listener")?;
        let ix_slices = |len: usize, dir: &str| -> Res<IxSlices> {
            let service = |what: &str| -> Res<_> {
                let name = ix_name(tag, &format!("{what}-{dir}"))?;
                node.service_builder(&name)
                    .publish_subscribe::<Bytes>()
                    .max_publishers(1)
                    .max_subscribers(1)
                    .open_or_create()
                    .context(format!("iceoryx2 service {name}"))
            };
            let tx = service(out)?
                .publisher_builder()
                .initial_max_slice_len(len)
                .create()
                .context("iceoryx2 slice publisher")?;
            let rx = service(inp)?
                .subscriber_builder()
                .create()
                .context("iceoryx2 slice subscriber")?;
            Ok((tx, rx))
        };
        let (ix_tx_4k, ix_rx_4k) = ix_slices(SLICE_4K, "4k")?;
        let (ix_tx_1m, ix_rx_1m) = ix_slices(SLICE_1M, "1m")?;
        // Every message delivered: no safe overflow (a full subscriber
        // buffer is never overwritten), and the publisher retries until the
        // subscriber has room (RetryUntilDelivered, iceoryx2's default,
        // set here explicitly).
        let stream_service = {
            let name = ix_name(tag, "stream")?;
            node.service_builder(&name)
                .publish_subscribe::<Msg>()
                .max_publishers(1)
                .max_subscribers(1)
                .enable_safe_overflow(false)
                .subscriber_max_buffer_size(STREAM_DEPTH)
                .open_or_create()
                .context(format!("iceoryx2 service {name}"))?
        };
        let (ix_stream_tx, ix_stream_rx) = match side {
            Side::Driver => (
                Some(
                    stream_service
                        .publisher_builder()
                        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                        .create()
                        .context("iceoryx2 stream publisher")?,
                ),
                None,
            ),
            Side::Peer => (
                None,
                Some(
                    stream_service
                        .subscriber_builder()
                        .create()
                        .context("iceoryx2 stream subscriber")?,
                ),
            ),
        };
        let (mut ix_cost_tx, mut ix_cost_rx) = (Vec::new(), Vec::new());
        for count in SUBSCRIBER_COUNTS {
            let name = ix_name(tag, &format!("cost-{count}"))?;
            // Safe overflow (the default): a send to a full subscriber
            // buffer replaces its oldest sample, so idle subscribers never
            // hold a send up.
            let service = node
                .service_builder(&name)
                .publish_subscribe::<Msg>()
                .max_publishers(1)
                .max_subscribers(64)
                .open_or_create()
                .context(format!("iceoryx2 service {name}"))?;
            match side {
                Side::Driver => ix_cost_tx.push(
                    service
                        .publisher_builder()
                        .create()
                        .context(format!("iceoryx2 publisher on {name}"))?,
                ),
                Side::Peer => {
                    for _ in 0..count {
                        ix_cost_rx.push(
                            service
                                .subscriber_builder()
                                .create()
                                .context(format!("iceoryx2 subscriber on {name}"))?,
                        );
                    }
                }
            }
        }

        // Request/response, one client and one server (iceoryx2's defaults
        // otherwise; memlink's too).
        let rpc = ml("rpc");
        let rpc_options = RpcOptions::new().max_clients(1);
        let (ml_rpc_client, ml_rpc_server) = match side {
            Side::Driver => (
                Some(
                    rpc_options
                        .client::<Msg, Msg>(&rpc)
                        .context(format!("memlink client {rpc}"))?,
                ),
                None,
            ),
            Side::Peer => (
                None,
                Some(
                    rpc_options
                        .server::<Msg, Msg>(&rpc)
                        .context(format!("memlink server {rpc}"))?,
                ),
            ),
        };
        let rpc_service = {
            let name = ix_name(tag, "rpc")?;
            node.service_builder(&name)
                .request_response::<Msg, Msg>()
                .max_clients(1)
                .max_servers(1)
                .open_or_create()
                .context(format!("iceoryx2 request/response service {name}"))?
        };
        let (ix_rpc_client, ix_rpc_server) = match side {
            Side::Driver => (
                Some(
                    rpc_service
                        .client_builder()
                        .create()
                        .context("iceoryx2 client")?,
                ),
                None,
            ),
            Side::Peer => (
                None,
                Some(
                    rpc_service
                        .server_builder()
                        .create()
                        .context("iceoryx2 server")?,
                ),
            ),
        };

        Ok(Ends {
            side,
            shared,
            socket,
            ml_tx,
            ml_rx,
            ml_tx_4k,
            ml_rx_4k,
            ml_tx_1m,
            ml_rx_1m,
            ml_stream_tx,
            ml_stream_rx,
            ml_cost_tx,
            _ml_cost_rx: ml_cost_rx,
            ix_tx,
            ix_rx,
            ix_notifier,
            ix_listener,
            ix_tx_4k,
            ix_rx_4k,
            ix_tx_1m,
            ix_rx_1m,
            ix_stream_tx,
            ix_stream_rx,
            ix_cost_tx,
            _ix_cost_rx: ix_cost_rx,
            ml_rpc_client,
            ml_rpc_server,
            ix_rpc_client,
            ix_rpc_server,
            _node: node,
        })
    }

    /// The driver's end of the Unix socket, once the peer has connected.
    pub fn set_socket(&mut self, socket: UnixStream) -> Res {
        socket
            .set_read_timeout(Some(SILENCE))
            .context("setting the Unix socket's timeout")?;
        self.socket = Some(socket);
        Ok(())
    }

    /// One batch of `n` on this process's side. `pipe` is the control pipe
    /// (the pipe contender's channel): for the driver, to and from the peer;
    /// for the peer, its standard input and output.
    pub fn run(
        &mut self,
        contender: Contender,
        n: u32,
        pipe_in: &mut impl Read,
        pipe_out: &mut impl Write,
    ) -> Res {
        let driver = self.side == Side::Driver;
        match contender {
            Contender::FloorOneLine => self.one_line(n),
            Contender::FloorTwoLines => self.two_lines(n, false),
            Contender::FloorPayload => self.two_lines(n, true),
            Contender::Futex => self.futex(n),
            Contender::MemlinkPoll => ml_round_trips(driver, n, &self.ml_tx, &self.ml_rx, |rx| {
                spin(|| rx.try_recv().context("memlink try_recv").transpose())
                    .unwrap_or_else(|| Err(silent()))
            }),
            Contender::MemlinkBlocking => {
                ml_round_trips(driver, n, &self.ml_tx, &self.ml_rx, |rx| {
                    rx.recv_timeout(SILENCE).context("memlink recv")
                })
            }
            Contender::IceoryxPoll => self.ix_round_trips(n, false),
            Contender::IceoryxEvent => self.ix_round_trips(n, true),
            Contender::MemlinkSlice4K => {
                ml_slice_round_trips(driver, n, SLICE_4K, &self.ml_tx_4k, &self.ml_rx_4k)
            }
            Contender::MemlinkSlice1M => {
                ml_slice_round_trips(driver, n, SLICE_1M, &self.ml_tx_1m, &self.ml_rx_1m)
            }
            Contender::IceoryxSlice4K => {
                ix_slice_round_trips(driver, n, SLICE_4K, &self.ix_tx_4k, &self.ix_rx_4k)
            }
            Contender::IceoryxSlice1M => {
                ix_slice_round_trips(driver, n, SLICE_1M, &self.ix_tx_1m, &self.ix_rx_1m)
            }
            Contender::UnixSocket => {
                let socket = self.socket.as_ref().expect("connected at start");
                stream_round_trips(driver, n, &mut &*socket, &mut &*socket, "Unix socket")
            }
            Contender::Pipe => stream_round_trips(driver, n, pipe_in, pipe_out, "pipe"),
            Contender::MemlinkStream => self.ml_stream(n),
            Contender::IceoryxStream => self.ix_stream(n),
            Contender::RingStream => self.ring_stream(n),
            Contender::RpcMemlinkPoll => self.ml_rpc(n, Wait::Spin),
            Contender::RpcMemlinkYield => self.ml_rpc(n, Wait::Yield),
            Contender::RpcMemlinkBlocking => self.ml_rpc(n, Wait::Block),
            Contender::RpcIceoryxPoll => self.ix_rpc(n, false),
            Contender::RpcIceoryxYield => self.ix_rpc(n, true),
        }
    }

    /// Request/response round trips over memlink: the driver sends a
    /// request and takes its one response and the end; the peer answers
    /// each request with the number it carries.
    fn ml_rpc(&self, n: u32, wait: Wait) -> Res {
        let poll = |yielding: bool| {
            move || {
                if yielding {
                    std::thread::yield_now();
                }
            }
        };
        for i in 0..u64::from(n) {
            if let Some(client) = &self.ml_rpc_client {
                let mut pending = client.try_send_copy(&message(i)).context("memlink send")?;
                let got = match wait {
                    Wait::Block => *pending
                        .recv_timeout(SILENCE)
                        .context("memlink recv")?
                        .ok_or_else(|| fail("the answer ended empty"))?,
                    Wait::Spin | Wait::Yield => {
                        let pause = poll(wait == Wait::Yield);
                        spin(|| {
                            pause();
                            pending
                                .try_recv()
                                .map(|r| r.map(|r| *r))
                                .context("memlink try_recv")
                                .transpose()
                        })
                        .unwrap_or_else(|| Err(silent()))?
                    }
                };
                expect(&got, i)?;
                // The end travels with a one-response answer.
                if !pending.is_ended() {
                    return Err(fail("memlink: the answer did not end with its response"));
                }
            } else {
                let server = self.ml_rpc_server.as_ref().expect("the peer serves");
                let request = match wait {
                    Wait::Block => server.recv_timeout(SILENCE).context("memlink recv")?,
                    Wait::Spin | Wait::Yield => {
                        let pause = poll(wait == Wait::Yield);
                        spin(|| {
                            pause();
                            server.try_recv().context("memlink try_recv").transpose()
                        })
                        .unwrap_or_else(|| Err(silent()))?
                    }
                };
                let value = check(&request)?;
                request
                    .respond(&message(value))
                    .context("memlink respond")?;
            }
        }
        Ok(())
    }

    /// Request/response round trips over iceoryx2, polling (its
    /// request/response has no blocking receive); `yielding` gives the CPU
    /// up between polls.
    fn ix_rpc(&self, n: u32, yielding: bool) -> Res {
        let pause = || {
            if yielding {
                std::thread::yield_now();
            }
        };
        for i in 0..u64::from(n) {
            if let Some(client) = &self.ix_rpc_client {
                let pending = client
                    .send_copy(message(i))
                    .context("iceoryx2 send request")?;
                let response = spin(|| {
                    pause();
                    pending
                        .receive()
                        .context("iceoryx2 receive response")
                        .transpose()
                })
                .unwrap_or_else(|| Err(silent()))?;
                expect(response.payload(), i)?;
            } else {
                let server = self.ix_rpc_server.as_ref().expect("the peer serves");
                let request = spin(|| {
                    pause();
                    server
                        .receive()
                        .context("iceoryx2 receive request")
                        .transpose()
                })
                .unwrap_or_else(|| Err(silent()))?;
                let value = check(request.payload())?;
                request
                    .send_copy(message(value))
                    .context("iceoryx2 send response")?;
            }
        }
        Ok(())
    }

    /// One cache line, written by turns: the driver makes the counter odd,
    /// the peer even.
    fn one_line(&self, n: u32) -> Res {
        let line = self.shared.u64_at(ONE_LINE);
        for _ in 0..n {
            if self.side == Side::Driver {
                // Relaxed: this process wrote the last (even) value itself
                // or read it with Acquire below.
                let value = line.load(Ordering::Relaxed);
                // Release/Acquire: pair with the other side's load/store.
                line.store(value + 1, Ordering::Release);
                spin(|| (line.load(Ordering::Acquire) == value + 2).then_some(()))
                    .ok_or_else(silent)?;
            } else {
                let value = spin(|| Some(line.load(Ordering::Acquire)).filter(|v| v % 2 == 1))
                    .ok_or_else(silent)?;
                line.store(value + 1, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Two cache lines: the driver writes ping, the peer answers on pong.
    /// With `payload`, each side first writes a 64-byte message in a line
    /// of its own and the other reads it after the signal: the least a
    /// design that signals apart from the payload moves (two lines each
    /// way).
    fn two_lines(&self, n: u32, payload: bool) -> Res {
        let (ping, pong) = (self.shared.u64_at(PING), self.shared.u64_at(PONG));
        let (ping_msg, pong_msg) = (
            self.shared.payload_line(PING_PAYLOAD),
            self.shared.payload_line(PONG_PAYLOAD),
        );
        for _ in 0..n {
            if self.side == Side::Driver {
                // Relaxed: only this process writes ping.
                let value = ping.load(Ordering::Relaxed) + 1;
                if payload {
                    // SAFETY: the peer reads this line only between this
                    // ping and its pong, which this process waits for.
                    unsafe { ping_msg.write_volatile(message(value)) };
                }
                // Release/Acquire: pair with the peer's Acquire/Release (and
                // publish the message line).
                ping.store(value, Ordering::Release);
                spin(|| (pong.load(Ordering::Acquire) == value).then_some(()))
                    .ok_or_else(silent)?;
                if payload {
                    // SAFETY: written by the peer before its pong (Acquire
                    // above); not rewritten before the next ping.
                    expect(&unsafe { pong_msg.read_volatile() }, value)?;
                }
            } else {
                let last = pong.load(Ordering::Relaxed);
                let value = spin(|| Some(ping.load(Ordering::Acquire)).filter(|&v| v != last))
                    .ok_or_else(silent)?;
                if payload {
                    // SAFETY: written by the driver before its ping (Acquire
                    // above); not rewritten before this process's pong.
                    let got = check(&unsafe { ping_msg.read_volatile() })?;
                    // SAFETY: the driver reads this line only after the pong
                    // below, and this process rewrites it only after the
                    // next ping.
                    unsafe { pong_msg.write_volatile(message(got)) };
                }
                pong.store(value, Ordering::Release);
            }
        }
        Ok(())
    }

    /// A bare futex ping-pong: store, wake, sleep until answered. Both
    /// sides always make the wake call (no sleeping flag).
    fn futex(&self, n: u32) -> Res {
        let (ping, pong) = (
            self.shared.u32_at(FUTEX_PING),
            self.shared.u32_at(FUTEX_PONG),
        );
        let (mine, theirs) = match self.side {
            Side::Driver => (ping, pong),
            Side::Peer => (pong, ping),
        };
        for _ in 0..n {
            if self.side == Side::Driver {
                // Relaxed: only this process writes its word.
                let value = mine.load(Ordering::Relaxed).wrapping_add(1);
                // Release/Acquire: pair with the peer's Acquire/Release.
                mine.store(value, Ordering::Release);
                futex_wake(mine);
                wait_word(theirs, |v| v == value)?;
            } else {
                let last = mine.load(Ordering::Relaxed);
                let value = wait_word(theirs, |v| v != last)?;
                mine.store(value, Ordering::Release);
                futex_wake(mine);
            }
        }
        Ok(())
    }

    fn ix_round_trips(&self, n: u32, blocking: bool) -> Res {
        let receive = || -> Res<_> {
            if !blocking {
                return spin(|| self.ix_rx.receive().context("iceoryx2 receive").transpose())
                    .unwrap_or_else(|| Err(silent()));
            }
            let deadline = Instant::now() + SILENCE;
            loop {
                // Wait first, then take: the notification is consumed with
                // the sample it announces, so none is left over to wake the
                // next wait early.
                self.ix_listener
                    .timed_wait(|_| {}, SILENCE)
                    .context("iceoryx2 listener wait")?;
                if let Some(sample) = self.ix_rx.receive().context("iceoryx2 receive")? {
                    return Ok(sample);
                }
                if Instant::now() >= deadline {
                    return Err(silent());
                }
            }
        };
        let send = |value: u64| -> Res {
            self.ix_tx
                .loan_uninit()
                .context("iceoryx2 loan")?
                .write_payload(message(value))
                .send()
                .context("iceoryx2 send")?;
            if blocking {
                self.ix_notifier.notify().context("iceoryx2 notify")?;
            }
            Ok(())
        };
        for i in 0..u64::from(n) {
            if self.side == Side::Driver {
                send(i)?;
                let sample = receive()?;
                expect(sample.payload(), i)?;
            } else {
                let sample = receive()?;
                let value = check(sample.payload())?;
                drop(sample);
                send(value)?;
            }
        }
        Ok(())
    }

    fn ml_stream(&self, n: u32) -> Res {
        for i in 0..u64::from(n) {
            if let Some(tx) = &self.ml_stream_tx {
                let mut sample = tx.loan_uninit().context("memlink loan")?;
                *sample = message(i);
                sample.send().context("memlink send")?;
            } else {
                let rx = self.ml_stream_rx.as_ref().expect("the peer subscribes");
                let sample = spin(|| rx.try_recv().context("memlink try_recv").transpose())
                    .unwrap_or_else(|| Err(silent()))?;
                expect(&sample, i)?;
            }
        }
        Ok(())
    }

    fn ix_stream(&self, n: u32) -> Res {
        for i in 0..u64::from(n) {
            if let Some(tx) = &self.ix_stream_tx {
                tx.loan_uninit()
                    .context("iceoryx2 loan")?
                    .write_payload(message(i))
                    .send()
                    .context("iceoryx2 send")?;
            } else {
                let rx = self.ix_stream_rx.as_ref().expect("the peer subscribes");
                let sample = spin(|| rx.receive().context("iceoryx2 receive").transpose())
                    .unwrap_or_else(|| Err(silent()))?;
                expect(sample.payload(), i)?;
            }
        }
        Ok(())
    }

    /// A bare single-producer single-consumer ring of 64-byte slots: the
    /// driver writes the head, the peer the tail, each caching the other.
    fn ring_stream(&self, n: u32) -> Res {
        let (head, tail) = (self.shared.u64_at(RING_HEAD), self.shared.u64_at(RING_TAIL));
        if self.side == Side::Driver {
            // Relaxed: only this process writes the head.
            let start = head.load(Ordering::Relaxed);
            // Acquire: pairs with the peer's Release of the tail: its reads
            // of a slot happen before this process rewrites it.
            let mut seen_tail = tail.load(Ordering::Acquire);
            for i in 0..u64::from(n) {
                let at = start + i;
                if at - seen_tail >= STREAM_DEPTH as u64 {
                    seen_tail = spin(|| {
                        Some(tail.load(Ordering::Acquire)).filter(|&t| at - t < STREAM_DEPTH as u64)
                    })
                    .ok_or_else(silent)?;
                }
                // SAFETY: the slot is free (the tail is past it) and only
                // this process writes slots.
                unsafe { self.shared.ring_slot(at).write_volatile(message(i)) };
                // Release: publishes the slot; pairs with the peer's Acquire.
                head.store(at + 1, Ordering::Release);
            }
        } else {
            // Relaxed: only this process writes the tail.
            let start = tail.load(Ordering::Relaxed);
            let mut seen_head = head.load(Ordering::Acquire);
            for i in 0..u64::from(n) {
                let at = start + i;
                if seen_head <= at {
                    seen_head = spin(|| Some(head.load(Ordering::Acquire)).filter(|&h| h > at))
                        .ok_or_else(silent)?;
                }
                // SAFETY: the slot was published by the head's Release
                // (read with Acquire) and is not rewritten before the tail
                // moves past it.
                let msg = unsafe { self.shared.ring_slot(at).read_volatile() };
                expect(&msg, i)?;
                // Release: pairs with the driver's Acquire of the tail.
                tail.store(at + 1, Ordering::Release);
            }
        }
        Ok(())
    }

    /// `n` sends of 64 bytes on the service with `subscribers` idle
    /// subscribers (driver only; the peer's subscribers never take).
    pub fn send_cost(&self, library: Library, subscribers: usize, n: u32) -> Res {
        let k = SUBSCRIBER_COUNTS
            .iter()
            .position(|&c| c == subscribers)
            .expect("one of SUBSCRIBER_COUNTS");
        for i in 0..u64::from(n) {
            match library {
                Library::Memlink => {
                    let mut sample = self.ml_cost_tx[k].loan_uninit().context("memlink loan")?;
                    *sample = message(i);
                    sample.send().context("memlink send")?;
                }
                Library::Iceoryx2 => {
                    self.ix_cost_tx[k]
                        .loan_uninit()
                        .context("iceoryx2 loan")?
                        .write_payload(message(i))
                        .send()
                        .context("iceoryx2 send")?;
                }
            }
        }
        Ok(())
    }
}

/// The peer's end of the Unix socket.
fn connect_socket(tag: &str) -> Res<UnixStream> {
    let address = socket_address(tag)?;
    let socket = UnixStream::connect_addr(&address).context("connecting the Unix socket")?;
    socket
        .set_read_timeout(Some(SILENCE))
        .context("setting the Unix socket's timeout")?;
    Ok(socket)
}

/// An abstract-namespace address: nothing in the file system to clean up.
pub fn socket_address(tag: &str) -> Res<SocketAddr> {
    SocketAddr::from_abstract_name(tag.as_bytes()).context("the Unix socket address")
}

/// The message numbered `value`: its first and last words.
fn message(value: u64) -> Msg {
    let mut msg = [0u64; 8];
    msg[0] = value;
    msg[7] = !value;
    msg
}

/// The number a message carries, if it is whole.
fn check(msg: &Msg) -> Res<u64> {
    if msg[7] != !msg[0] {
        return Err(fail(format!("a message arrived torn: {msg:?}")));
    }
    Ok(msg[0])
}

fn expect(msg: &Msg, value: u64) -> Res {
    let got = check(msg)?;
    if got != value {
        return Err(fail(format!(
            "message {value} expected, message {got} arrived"
        )));
    }
    Ok(())
}

fn silent() -> Box<dyn std::error::Error + Send + Sync> {
    fail(format!(
        "the other process did not answer for {} s",
        SILENCE.as_secs()
    ))
}

/// Sleeps on `word` until `done` accepts its value; returns it.
fn wait_word(word: &AtomicU32, done: impl Fn(u32) -> bool) -> Res<u32> {
    let deadline = Instant::now() + SILENCE;
    loop {
        // Acquire: pairs with the other side's Release store.
        let value = word.load(Ordering::Acquire);
        if done(value) {
            return Ok(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(silent());
        }
        futex_wait(word, value, deadline - now);
    }
}

/// Round trips of 64-byte messages over a pair of memlink services.
fn ml_round_trips<'a>(
    driver: bool,
    n: u32,
    tx: &MlPublisher<Msg>,
    rx: &'a MlSubscriber<Msg>,
    receive: impl Fn(&'a MlSubscriber<Msg>) -> Res<memlink::pubsub::Sample<'a, Msg>>,
) -> Res {
    let send = |value: u64| -> Res {
        let mut sample = tx.loan_uninit().context("memlink loan")?;
        *sample = message(value);
        sample.send().context("memlink send")
    };
    for i in 0..u64::from(n) {
        if driver {
            send(i)?;
            expect(&*receive(rx)?, i)?;
        } else {
            let value = check(&*receive(rx)?)?;
            send(value)?;
        }
    }
    Ok(())
}

/// Offsets of the words a slice round trip touches: first, middle, last.
fn touched(len: usize) -> [usize; 3] {
    [0, (len / 2) & !7, len - 8]
}

/// Round trips of `len`-byte slices, zero-copy: each side writes three
/// words of the slice it sends and reads them back from the one it gets.
fn ml_slice_round_trips(
    driver: bool,
    n: u32,
    len: usize,
    tx: &MlPublisher<[u8]>,
    rx: &MlSubscriber<[u8]>,
) -> Res {
    let send = |value: u64| -> Res {
        let mut sample = tx.loan_slice_uninit(len).context("memlink loan")?;
        for at in touched(len) {
            sample[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        sample.send().context("memlink send")
    };
    let receive = || -> Res<u64> {
        let sample = spin(|| rx.try_recv().context("memlink try_recv").transpose())
            .unwrap_or_else(|| Err(silent()))?;
        let words = touched(len)
            .map(|at| u64::from_le_bytes(sample[at..at + 8].try_into().expect("8 bytes")));
        if sample.len() != len || words[1] != words[0] || words[2] != words[0] {
            return Err(fail(format!(
                "a {len}-byte slice arrived as {} bytes holding {words:?}",
                sample.len()
            )));
        }
        Ok(words[0])
    };
    for i in 0..u64::from(n) {
        if driver {
            send(i)?;
            let got = receive()?;
            if got != i {
                return Err(fail(format!("slice {i} expected, slice {got} arrived")));
            }
        } else {
            let value = receive()?;
            send(value)?;
        }
    }
    Ok(())
}

/// `ml_slice_round_trips` over iceoryx2.
fn ix_slice_round_trips(
    driver: bool,
    n: u32,
    len: usize,
    tx: &IxPublisher<Bytes>,
    rx: &IxSubscriber<Bytes>,
) -> Res {
    let send = |value: u64| -> Res {
        let mut sample = tx.loan_slice_uninit(len).context("iceoryx2 loan")?;
        let bytes = sample.payload_mut();
        for at in touched(len) {
            for (k, b) in value.to_le_bytes().into_iter().enumerate() {
                bytes[at + k].write(MaybeUninit::new(b));
            }
        }
        // SAFETY: the elements are `MaybeUninit<u8>`, valid whatever their
        // bytes, so every element is initialised as the type requires.
        let sample = unsafe { sample.assume_init() };
        sample.send().context("iceoryx2 send")?;
        Ok(())
    };
    let receive = || -> Res<u64> {
        let sample = spin(|| rx.receive().context("iceoryx2 receive").transpose())
            .unwrap_or_else(|| Err(silent()))?;
        let bytes = sample.payload();
        if bytes.len() != len {
            return Err(fail(format!(
                "a {len}-byte slice arrived as {} bytes",
                bytes.len()
            )));
        }
        let words = touched(len).map(|at| {
            let mut word = [0u8; 8];
            for (k, b) in word.iter_mut().enumerate() {
                // SAFETY: the sender wrote these bytes before it sent the
                // sample (the only bytes read).
                *b = unsafe { bytes[at + k].assume_init() };
            }
            u64::from_le_bytes(word)
        });
        if words[1] != words[0] || words[2] != words[0] {
            return Err(fail(format!("a {len}-byte slice arrived torn: {words:?}")));
        }
        Ok(words[0])
    };
    for i in 0..u64::from(n) {
        if driver {
            send(i)?;
            let got = receive()?;
            if got != i {
                return Err(fail(format!("slice {i} expected, slice {got} arrived")));
            }
        } else {
            let value = receive()?;
            send(value)?;
        }
    }
    Ok(())
}

/// Round trips of 64 bytes over a byte stream (Unix socket or pipe).
fn stream_round_trips(
    driver: bool,
    n: u32,
    input: &mut impl Read,
    output: &mut impl Write,
    what: &str,
) -> Res {
    let mut buffer = [0u8; 64];
    for i in 0..u64::from(n) {
        if driver {
            let mut out = [0u8; 64];
            out[..8].copy_from_slice(&i.to_le_bytes());
            output
                .write_all(&out)
                .context(format!("writing to the {what}"))?;
            output.flush().context(format!("writing to the {what}"))?;
            input
                .read_exact(&mut buffer)
                .context(format!("reading from the {what}"))?;
            let got = u64::from_le_bytes(buffer[..8].try_into().expect("8 bytes"));
            if got != i {
                return Err(fail(format!(
                    "{what}: message {i} expected, message {got} arrived"
                )));
            }
        } else {
            input
                .read_exact(&mut buffer)
                .context(format!("reading from the {what}"))?;
            output
                .write_all(&buffer)
                .context(format!("writing to the {what}"))?;
            output.flush().context(format!("writing to the {what}"))?;
        }
    }
    Ok(())
}
