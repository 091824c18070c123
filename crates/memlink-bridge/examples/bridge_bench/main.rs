//! The bridge against plain Zenoh, between two simulated hosts.
//!
//! Two hosts on one machine as in the tests (a mount namespace each, with
//! its own tmpfs on `/dev/shm`; needs root), a bridge on each joined over
//! `tcp/127.0.0.1`, and two processes: `ping` on host A and `echo` on host
//! B. The same two processes also hold a plain Zenoh session each, joined
//! directly over `tcp/127.0.0.1`. In the same run, alternating batches:
//!
//! - round trip of a 64-byte sample: A's memlink service -> bridge A ->
//!   bridge B -> B's service -> echo -> B's service -> bridge B -> bridge A
//!   -> A's service -> ping, against ping's Zenoh put -> echo's Zenoh
//!   subscriber -> put -> ping's subscriber;
//! - throughput from A to B of 64-byte and 64 KiB samples, through the
//!   bridges (memlink publisher on A, subscriber on B, slow subscribers
//!   block publishers) against Zenoh puts (congestion control: block).
//!
//! `cargo run --release -p memlink-bridge --example bridge_bench [-- --quick]`
//! (as root). `--pin same|different` puts all processes on vCPU 0, or the
//! ping side on vCPU 0 and the echo side on vCPU 1.

#[cfg(target_os = "linux")]
mod linux;

fn main() {
    #[cfg(target_os = "linux")]
    linux::main();
    #[cfg(not(target_os = "linux"))]
    eprintln!("bridge_bench runs on Linux only (it simulates two hosts with mount namespaces)");
}
