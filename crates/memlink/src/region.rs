//! Regions: named shared-memory objects, and views of them.

use std::fmt;
use std::ops::{Bound, Deref, DerefMut, RangeBounds};

use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::object::{Access, CreateSpec, Lifetime};
use crate::sys;

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
/// view[..6].copy_from_slice(b"hello\0");
/// drop(view);
///
/// // Another process (here the same one) opens it by name.
/// let reader = Region::open(&name, Access::ReadOnly)?;
/// let view = reader.map(0..5)?;
/// assert_eq!(&view[..], b"hello");
/// # Ok::<(), memlink::Error>(())
/// ```
pub struct Region {
    handle: sys::Handle,
    name: Name,
    access: Access,
}

/// Whether [`Region::create_or_open`] made the region or found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// This call created the region.
    Created,
    /// The region existed and was opened.
    Opened,
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
        // Each failure below means another process won a race since the
        // last step, so the next step's outcome differs; a few rounds are
        // plenty, the bound only guards against a livelock.
        for _ in 0..1000 {
            match sys::Handle::create(&parsed, ObjectKind::Region, &spec) {
                Ok(handle) => return Ok((self.wrap(handle, parsed), Disposition::Created)),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.reframe(op)),
            }
            match sys::Handle::open(&parsed, ObjectKind::Region, Access::ReadWrite) {
                Ok(handle) => return Ok((self.wrap(handle, parsed), Disposition::Opened)),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.reframe(op)),
            }
        }
        Err(
            Error::new(op, ObjectKind::Region, name, ErrorKind::AlreadyExists)
                .with_detail("the name kept appearing and disappearing"),
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
        let parsed = Name::parse(name, Operation::Open, ObjectKind::Region)?;
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
        Ok(View { mapping, offset })
    }

    /// Maps a writable view of `range`. A read-only handle gives an
    /// [`ErrorKind::ReadOnly`] error.
    ///
    /// The bytes are shared with every process that maps the region, so
    /// writes by others can appear at any time; coordinate them with the
    /// named synchronization objects, as with any shared memory.
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
        Ok(ViewMut { mapping, offset })
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

/// A read-only view of a region. Derefs to `[u8]`; unmapped on drop.
pub struct View {
    mapping: sys::Mapping,
    offset: u64,
}

/// A writable view of a region. Derefs to `[u8]` both ways; unmapped on drop.
pub struct ViewMut {
    mapping: sys::Mapping,
    offset: u64,
}

macro_rules! view_common {
    ($ty:ident) => {
        impl $ty {
            /// Where the view starts in the region.
            pub fn offset(&self) -> u64 {
                self.offset
            }

            /// The address of the first byte, for atomics or volatile access.
            pub fn as_ptr(&self) -> *const u8 {
                self.mapping.as_ptr()
            }
        }

        impl Deref for $ty {
            type Target = [u8];

            fn deref(&self) -> &[u8] {
                // SAFETY: the mapping is `len` readable bytes that live as
                // long as `self`. Other processes may write them at any time;
                // that is the contract of shared memory, documented on
                // `Region::map_mut`.
                unsafe { std::slice::from_raw_parts(self.mapping.as_ptr(), self.mapping.len()) }
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
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
}

impl DerefMut for ViewMut {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` writable bytes (mapped with
        // PROT_WRITE / FILE_MAP_WRITE) owned by this view for its lifetime;
        // `&mut self` keeps this process from aliasing it through the view.
        unsafe { std::slice::from_raw_parts_mut(self.mapping.as_ptr(), self.mapping.len()) }
    }
}
