//! Regions: named shared-memory objects, and views of them.

use std::fmt;
use std::ops::{Bound, RangeBounds};

use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::object::create_or_open;
use crate::sys::{self, CreateSpec};
use crate::types::{Access, Disposition, Lifetime};

/// A named shared-memory region: the seeds' file mapping backed by the
/// paging file.
///
/// A `Region` is a handle. The name lives while some process holds a handle
/// (unless the region was made [`Lifetime::Persistent`]); dropping the last
/// one removes the name, as closing the last handle does on Windows. Views
/// ([`Region::map`], [`Region::map_mut`]) are independent of the handle:
/// a view may outlive it and keeps its memory valid.
///
/// ```
/// use memlink::{Access, Region};
/// # let name = format!("memlink-doc-region-{}", std::process::id());
/// let region = Region::create(&name, 4096)?;
/// let mut view = region.map_mut(..)?;
/// view.write_at(0, b"hello\0")?;
/// drop(view);
///
/// // Another process (here the same one) opens it by name.
/// let reader = Region::open(&name, Access::ReadOnly)?;
/// let view = reader.map(0..5)?;
/// assert_eq!(view.to_vec(), b"hello");
/// # Ok::<(), memlink::Error>(())
/// ```
pub struct Region {
    handle: sys::Handle,
    name: Name,
    access: Access,
}

/// Options for creating a region.
///
/// ```
/// use memlink::{Lifetime, RegionOptions};
/// # let name = format!("memlink-doc-options-{}", std::process::id());
/// let region = RegionOptions::new()
///     .lifetime(Lifetime::LastHandle)
///     .mode(0o640)
///     .reserve(true)
///     .create(&name, 1 << 20)?;
/// assert_eq!(region.size(), 1 << 20);
/// # Ok::<(), memlink::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RegionOptions {
    lifetime: Lifetime,
    mode: u32,
    reserve: bool,
}

impl Default for RegionOptions {
    fn default() -> Self {
        RegionOptions::new()
    }
}

impl RegionOptions {
    /// The defaults: [`Lifetime::LastHandle`], private to the creating user,
    /// memory reserved up front.
    pub fn new() -> RegionOptions {
        RegionOptions {
            lifetime: Lifetime::LastHandle,
            mode: 0o600,
            reserve: true,
        }
    }

    /// How long the region lives. [`Lifetime::Persistent`] is an
    /// [`ErrorKind::Unsupported`] error on Windows.
    pub fn lifetime(mut self, lifetime: Lifetime) -> RegionOptions {
        self.lifetime = lifetime;
        self
    }

    /// Who may open the region, as Unix permission bits (default `0o600`,
    /// the creating user only). On Windows, any bit for group or others
    /// grants access to every user; otherwise the default DACL applies.
    pub fn mode(mut self, mode: u32) -> RegionOptions {
        self.mode = mode & 0o777;
        self
    }

    /// Whether to reserve the memory when the region is created (default
    /// yes). Reserving makes a shortage of shared memory an error here,
    /// instead of a `SIGBUS` when a page is first touched. Without it a
    /// large region costs nothing until it is written. On Windows the
    /// system always charges the full size at creation.
    pub fn reserve(mut self, reserve: bool) -> RegionOptions {
        self.reserve = reserve;
        self
    }

    /// Creates a region of `size` bytes; the name must be free.
    pub fn create(&self, name: &str, size: u64) -> Result<Region> {
        let parsed = Name::parse(name, Operation::Create, ObjectKind::Region)?;
        let spec = self.spec(name, size, Operation::Create)?;
        let handle = sys::Handle::create(&parsed, ObjectKind::Region, &spec)?;
        Ok(Region {
            handle,
            name: parsed,
            access: Access::ReadWrite,
        })
    }

    /// Creates the region, or opens it read-write if it exists (then its
    /// size is the existing one). Says which happened.
    pub fn create_or_open(&self, name: &str, size: u64) -> Result<(Region, Disposition)> {
        let op = Operation::CreateOrOpen;
        let parsed = Name::parse(name, op, ObjectKind::Region)?;
        let spec = self.spec(name, size, op)?;
        let kind = ObjectKind::Region;
        create_or_open(
            &parsed,
            kind,
            |n| Ok(self.wrap(sys::Handle::create(n, kind, &spec)?, n.clone())),
            |n| Ok(self.wrap(sys::Handle::open(n, kind, Access::ReadWrite)?, n.clone())),
        )
    }

    fn wrap(&self, handle: sys::Handle, name: Name) -> Region {
        Region {
            handle,
            name,
            access: Access::ReadWrite,
        }
    }

    fn spec(&self, name: &str, size: u64, op: Operation) -> Result<CreateSpec> {
        if size == 0 {
            return Err(
                Error::new(op, ObjectKind::Region, name, ErrorKind::InvalidArgument)
                    .with_detail("a region cannot have a size of 0"),
            );
        }
        Ok(CreateSpec {
            size,
            lifetime: self.lifetime,
            mode: self.mode,
            reserve: self.reserve,
        })
    }
}

impl Region {
    /// Creates a region of `size` bytes with the default options
    /// ([`RegionOptions::new`]). A taken name is an
    /// [`ErrorKind::AlreadyExists`] error; a size of 0 is an
    /// [`ErrorKind::InvalidArgument`] error.
    pub fn create(name: &str, size: u64) -> Result<Region> {
        RegionOptions::new().create(name, size)
    }

    /// Opens an existing region. A missing name is an
    /// [`ErrorKind::NotFound`] error.
    pub fn open(name: &str, access: Access) -> Result<Region> {
        let parsed = Name::parse_existing(name, Operation::Open, ObjectKind::Region)?;
        let handle = sys::Handle::open(&parsed, ObjectKind::Region, access)?;
        Ok(Region {
            handle,
            name: parsed,
            access,
        })
    }

    /// Creates the region with the default options, or opens it read-write
    /// if it exists; says which happened.
    pub fn create_or_open(name: &str, size: u64) -> Result<(Region, Disposition)> {
        RegionOptions::new().create_or_open(name, size)
    }

    /// The region's size in bytes, as the OS reports it. On Windows, a
    /// handle that opened the region sees the size rounded up to a whole
    /// page (4 KiB): the kernel keeps no finer size for a section; the
    /// handle that created it reports the size it asked for.
    pub fn size(&self) -> u64 {
        self.handle.size()
    }

    /// The name this handle was made or opened with.
    pub fn name(&self) -> &str {
        self.name.given()
    }

    /// How this handle may use the region.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Maps a read-only view of `range` (any byte range inside the region,
    /// `..` for all of it). Offsets need no alignment.
    pub fn map(&self, range: impl RangeBounds<u64>) -> Result<View> {
        let (offset, len) = self.resolve(&range)?;
        let mapping = self.handle.map(offset, len, false)?;
        Ok(View {
            mapping,
            offset,
            name: self.name.clone(),
        })
    }

    /// Maps a writable view of `range`. A read-only handle gives an
    /// [`ErrorKind::ReadOnly`] error.
    ///
    /// The bytes are shared with every process that maps the region, so
    /// writes by others can appear at any time; coordinate them with the
    /// named synchronization objects, as with any shared memory. That is
    /// why views copy bytes in and out rather than lend out slices.
    pub fn map_mut(&self, range: impl RangeBounds<u64>) -> Result<ViewMut> {
        if self.access == Access::ReadOnly {
            return Err(Error::new(
                Operation::Map,
                ObjectKind::Region,
                self.name.given(),
                ErrorKind::ReadOnly,
            )
            .with_detail("it was opened with Access::ReadOnly"));
        }
        let (offset, len) = self.resolve(&range)?;
        let mapping = self.handle.map(offset, len, true)?;
        Ok(ViewMut {
            mapping,
            offset,
            name: self.name.clone(),
        })
    }

    /// Copies `buf.len()` bytes from `offset` in the region into `buf`,
    /// without mapping a view.
    ///
    /// This is the way to read a region made without reserving its memory
    /// ([`RegionOptions::reserve`]`(false)`): on Linux it reads with
    /// `pread`, which returns the zeros of a page never written without
    /// allocating it, where touching that page through a view takes it from
    /// `/dev/shm` (and a large read of a sparse region could fill it). A
    /// range past the end of the region is an [`ErrorKind::InvalidArgument`]
    /// error. Elsewhere it copies through a temporary view.
    ///
    /// ```
    /// use memlink::{Access, Region};
    /// # let name = format!("memlink-doc-read-at-{}", std::process::id());
    /// let region = Region::create(&name, 4096)?;
    /// region.write_at(100, b"hello")?;
    /// let mut buf = [0u8; 5];
    /// Region::open(&name, Access::ReadOnly)?.read_at(100, &mut buf)?;
    /// assert_eq!(&buf, b"hello");
    /// # Ok::<(), memlink::Error>(())
    /// ```
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if buf.is_empty() {
            return self.check_range(Operation::Read, offset, 0);
        }
        self.check_range(Operation::Read, offset, buf.len())?;
        self.handle.read_at(offset, buf)
    }

    /// Copies `data` into the region at `offset`, without mapping a view.
    ///
    /// On Linux it writes with `pwrite`, so a region made without
    /// reserving, whose pages no longer fit in `/dev/shm`, gives an
    /// [`ErrorKind::OutOfMemory`] error (saying how much was written and
    /// what holds the space) where a store through a view would kill the
    /// process with `SIGBUS`. A read-only handle gives an
    /// [`ErrorKind::ReadOnly`] error; a range past the end of the region an
    /// [`ErrorKind::InvalidArgument`] error, and nothing is written.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        if self.access == Access::ReadOnly {
            return Err(Error::new(
                Operation::Write,
                ObjectKind::Region,
                self.name.given(),
                ErrorKind::ReadOnly,
            )
            .with_detail("it was opened with Access::ReadOnly"));
        }
        self.check_range(Operation::Write, offset, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        self.handle.write_at(offset, data)
    }

    /// Checks that `len` bytes at `offset` are inside the region.
    fn check_range(&self, operation: Operation, offset: u64, len: usize) -> Result<()> {
        let size = self.size();
        match offset.checked_add(len as u64) {
            Some(end) if end <= size => Ok(()),
            _ => Err(Error::new(
                operation,
                ObjectKind::Region,
                self.name.given(),
                ErrorKind::InvalidArgument,
            )
            .with_detail(format!(
                "{len} bytes at offset {offset} go past the end of the region (size {size})"
            ))),
        }
    }

    /// Checks `range` against the size; returns its offset and length.
    fn resolve(&self, range: &impl RangeBounds<u64>) -> Result<(u64, usize)> {
        let size = self.size();
        let bad = |what: String| {
            Error::new(
                Operation::Map,
                ObjectKind::Region,
                self.name.given(),
                ErrorKind::InvalidArgument,
            )
            .with_detail(what)
        };
        let start = match range.start_bound() {
            Bound::Included(&s) => Some(s),
            Bound::Excluded(&s) => s.checked_add(1),
            Bound::Unbounded => Some(0),
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.checked_add(1),
            Bound::Excluded(&e) => Some(e),
            Bound::Unbounded => Some(size),
        };
        let (Some(start), Some(end)) = (start, end) else {
            return Err(bad("the range overflows".into()));
        };
        if start >= end {
            return Err(bad(format!("the range {start}..{end} is empty")));
        }
        if end > size {
            return Err(bad(format!(
                "the range {start}..{end} is past the end of the region (size {size})"
            )));
        }
        let len = usize::try_from(end - start).map_err(|_| {
            bad(format!(
                "{} bytes do not fit in the address space",
                end - start
            ))
        })?;
        Ok((start, len))
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("name", &self.name.given())
            .field("size", &self.size())
            .field("access", &self.access)
            .finish()
    }
}

/// A read-only view of a region; unmapped on drop.
///
/// The bytes are shared with every process that maps the region and may
/// change under the view at any time, so the view does not hand out `&[u8]`
/// (the compiler may assume such a slice never changes): it copies bytes
/// out with [`read_at`](View::read_at) or [`to_vec`](View::to_vec), or gives
/// the address for atomics. [`as_slice`](View::as_slice) is there, unsafe,
/// for callers who keep writers away by other means.
///
/// ```
/// use memlink::{Access, Region};
/// # let name = format!("memlink-doc-view-{}", std::process::id());
/// let region = Region::create(&name, 4096)?;
/// region.map_mut(..)?.write_at(0, b"hello")?;
/// let view = Region::open(&name, Access::ReadOnly)?.map(1..5)?;
/// assert_eq!(view.to_vec(), b"ello");
/// let mut two = [0u8; 2];
/// view.read_at(2, &mut two)?;
/// assert_eq!(&two, b"lo");
/// # Ok::<(), memlink::Error>(())
/// ```
pub struct View {
    mapping: sys::Mapping,
    offset: u64,
    name: Name,
}

/// A writable view of a region; unmapped on drop. Writes with
/// [`write_at`](ViewMut::write_at) and [`fill`](ViewMut::fill), reads as a
/// [`View`] does; see there for why there is no safe `&mut [u8]`.
pub struct ViewMut {
    mapping: sys::Mapping,
    offset: u64,
    name: Name,
}

macro_rules! view_common {
    ($ty:ident) => {
        impl $ty {
            /// Where the view starts in the region.
            pub fn offset(&self) -> u64 {
                self.offset
            }

            /// How many bytes the view covers.
            pub fn len(&self) -> usize {
                self.mapping.len()
            }

            /// Whether the view covers no bytes (never: empty ranges are
            /// refused when mapping).
            pub fn is_empty(&self) -> bool {
                self.mapping.len() == 0
            }

            /// The address of the first byte, for atomics or volatile access.
            pub fn as_ptr(&self) -> *const u8 {
                self.mapping.as_ptr()
            }

            /// Copies `buf.len()` bytes from `at` (relative to the view) into
            /// `buf`. A range past the end of the view is an
            /// [`ErrorKind::InvalidArgument`] error.
            pub fn read_at(&self, at: usize, buf: &mut [u8]) -> Result<()> {
                check_within(
                    &self.name,
                    Operation::Read,
                    self.offset,
                    self.len(),
                    at,
                    buf.len(),
                )?;
                // SAFETY: `at..at + buf.len()` is inside the mapping (just
                // checked), which is readable and lives as long as `self`;
                // `buf` is a distinct local buffer. A raw copy asserts
                // nothing about the bytes staying unchanged meanwhile.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        self.mapping.as_ptr().add(at),
                        buf.as_mut_ptr(),
                        buf.len(),
                    )
                };
                Ok(())
            }

            /// A copy of the view's bytes as they are now.
            pub fn to_vec(&self) -> Vec<u8> {
                let mut copy = vec![0; self.len()];
                self.read_at(0, &mut copy)
                    .expect("the whole view is within the view");
                copy
            }

            /// The view's bytes as a slice.
            ///
            /// # Safety
            ///
            /// While the slice lives, nothing may write these bytes: no
            /// other view in this process, no other process (coordinate
            /// with a named mutex, for example). The OS, not Rust, shares
            /// them, so Rust cannot check this.
            pub unsafe fn as_slice(&self) -> &[u8] {
                // SAFETY: the mapping is `len` readable bytes that live as
                // long as `self`; the caller promises no writer meanwhile.
                unsafe { std::slice::from_raw_parts(self.mapping.as_ptr(), self.len()) }
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("region", &self.name.given())
                    .field("offset", &self.offset)
                    .field("len", &self.mapping.len())
                    .finish()
            }
        }
    };
}

view_common!(View);
view_common!(ViewMut);

impl ViewMut {
    /// The address of the first byte, writable.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.mapping.as_ptr()
    }

    /// Copies `data` into the view at `at` (relative to the view). A range
    /// past the end of the view is an [`ErrorKind::InvalidArgument`] error,
    /// and nothing is written.
    pub fn write_at(&mut self, at: usize, data: &[u8]) -> Result<()> {
        check_within(
            &self.name,
            Operation::Write,
            self.offset,
            self.len(),
            at,
            data.len(),
        )?;
        // SAFETY: `at..at + data.len()` is inside the mapping (just
        // checked), which is writable (PROT_WRITE / FILE_MAP_WRITE) and
        // lives as long as `self`; `data` is not in the mapping's pages
        // unless the caller copies a view into itself, which `&mut self`
        // and a `&[u8]` of it cannot both exist for.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.mapping.as_ptr().add(at), data.len())
        };
        Ok(())
    }

    /// Sets every byte of the view to `byte`.
    pub fn fill(&mut self, byte: u8) {
        // SAFETY: the whole mapping is writable and lives as long as `self`.
        unsafe { std::ptr::write_bytes(self.mapping.as_ptr(), byte, self.len()) };
    }

    /// The view's bytes as a mutable slice.
    ///
    /// # Safety
    ///
    /// While the slice lives, nothing else may read or write these bytes:
    /// no other view in this process (of this or another handle), no other
    /// process. The OS, not Rust, shares them, so Rust cannot check this.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` writable bytes that live as long as
        // `self`; the caller promises exclusive access meanwhile.
        unsafe { std::slice::from_raw_parts_mut(self.mapping.as_ptr(), self.len()) }
    }
}

/// Checks that `len` bytes at `at` fit in a view of `view_len` bytes.
fn check_within(
    name: &Name,
    operation: Operation,
    view_offset: u64,
    view_len: usize,
    at: usize,
    len: usize,
) -> Result<()> {
    match at.checked_add(len) {
        Some(end) if end <= view_len => Ok(()),
        _ => Err(Error::new(operation, ObjectKind::Region, name.given(), ErrorKind::InvalidArgument)
            .with_detail(format!(
                "{len} bytes at {at} go past the end of the view ({view_len} bytes at offset {view_offset})"
            ))),
    }
}
