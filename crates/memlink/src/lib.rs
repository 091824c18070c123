//! memlink: named shared memory and inter-process communication, with the
//! Windows rules on every platform.
//!
//! A process creates a named region of a given size; others open it by name,
//! read-only or read-write, and map views of it. The name lives while some
//! process holds a handle to it, and goes away with the last one, even when
//! the holders crash (on Windows natively; on Linux by the protocol described
//! in the platform layer). The bytes are the plain OS object, with no header,
//! so any program using `shm_open` / `OpenFileMapping` with the same name
//! sees the same memory.
//!
//! ```
//! use memlink::{Access, ErrorKind, Region};
//! # let name = format!("memlink-doc-lib-{}", std::process::id());
//! let region = Region::create(&name, 4096)?;
//! region.map_mut(..)?.write_at(0, b"hi\0")?;
//!
//! let reader = Region::open(&name, Access::ReadOnly)?;
//! assert_eq!(reader.map(0..2)?.to_vec(), b"hi");
//!
//! drop(reader);
//! drop(region); // the last handle: the name is gone
//! let err = Region::open(&name, Access::ReadOnly).unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::NotFound);
//! # Ok::<(), memlink::Error>(())
//! ```

#![warn(missing_docs)]

mod error;
mod messaging;
mod name;
mod object;
pub mod pubsub;
pub mod queue;
mod region;
pub mod reqresp;
mod shared;
mod sync;
mod sys;
mod types;
pub mod wait;

pub use bytemuck::Pod;
pub use error::{Error, ErrorKind, ObjectKind, Operation, Result};
pub use name::MAX_NAME_LEN;
pub use object::{inspect, list, reap, remove, remove_unheld};
pub use region::{Region, RegionOptions, View, ViewMut};
pub use shared::{Shared, SharedGuard};
pub use sync::{Event, Mutex, MutexGuard, Semaphore, SyncOptions};
pub use types::{Access, Disposition, EventReset, Lifetime, ObjectInfo, Origin, ReapReport, State};
