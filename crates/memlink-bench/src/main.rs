//! `memlink-bench`: memlink's publish/subscribe measured against iceoryx2,
//! a Unix socket, a pipe, a bare futex ping-pong and the hardware floor,
//! between two processes, in one run, alternating batches.
//!
//! Linux only: iceoryx2 and the futex references are measured there. On
//! other systems the binary says so and exits.

#[cfg(target_os = "linux")]
mod linux;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "memlink-bench runs on Linux only: it compares memlink with iceoryx2 and with \
         futexes there; on this system run `memlink bench` instead"
    );
    std::process::ExitCode::FAILURE
}
