//! Region life cycle against the bare system calls doing the same work, in
//! one run: `cargo bench -p memlink --bench regions`.
//!
//! Each case runs in batches; the figure is the median time per cycle over
//! the batches, which is steadier than the mean on a shared machine.

#[cfg(unix)]
mod common;

fn main() {
    #[cfg(unix)]
    posix::run();
    #[cfg(not(unix))]
    println!("(the bare-call reference is written for POSIX only)");
}

/// The cases, against the POSIX calls doing the same work.
#[cfg(unix)]
mod posix {
    use std::hint::black_box;
    use std::time::Duration;

    use memlink::{Access, Region, RegionOptions};

    use super::common::compare;

    const SIZE: usize = 4096;
    const PER_BATCH: usize = 500;

    fn report(label: &str, (ours, reference, ratio): (Duration, Duration, f64)) {
        println!(
            "{label:<44} {:>9.2} µs {:>9.2} µs {:>7.2}x",
            ours.as_secs_f64() * 1e6,
            reference.as_secs_f64() * 1e6,
            ratio
        );
    }

    mod bare {
        use std::ffi::CString;

        fn check(ok: bool, what: &str) {
            assert!(ok, "{what}: {}", std::io::Error::last_os_error());
        }

        /// shm_open(O_CREAT|O_EXCL) + ftruncate + mmap + write + munmap + close
        /// + shm_unlink.
        pub fn create_write_close(name: &CString, text: &[u8]) {
            // SAFETY: plain libc calls with checked results; the mapping is
            // written within its length and unmapped before the fd is closed.
            unsafe {
                let fd = libc::shm_open(
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
                    0o600,
                );
                check(fd >= 0, "shm_open");
                check(
                    libc::ftruncate(fd, super::SIZE as libc::off_t) == 0,
                    "ftruncate",
                );
                let ptr = libc::mmap(
                    std::ptr::null_mut(),
                    super::SIZE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                );
                check(ptr != libc::MAP_FAILED, "mmap");
                std::ptr::copy_nonoverlapping(text.as_ptr(), ptr.cast(), text.len());
                libc::munmap(ptr, super::SIZE);
                libc::close(fd);
                check(libc::shm_unlink(name.as_ptr()) == 0, "shm_unlink");
            }
        }

        /// shm_open(O_RDONLY) + fstat (for the size) + mmap + read + munmap +
        /// close.
        pub fn open_read_close(name: &CString) -> u8 {
            // SAFETY: as above; the object is SIZE bytes, held by the caller.
            unsafe {
                let fd = libc::shm_open(name.as_ptr(), libc::O_RDONLY, 0);
                check(fd >= 0, "shm_open");
                let mut st: libc::stat = std::mem::zeroed();
                check(libc::fstat(fd, &mut st) == 0, "fstat");
                let ptr = libc::mmap(
                    std::ptr::null_mut(),
                    st.st_size as usize,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    fd,
                    0,
                );
                check(ptr != libc::MAP_FAILED, "mmap");
                let byte = std::ptr::read_volatile(ptr.cast::<u8>());
                libc::munmap(ptr, st.st_size as usize);
                libc::close(fd);
                byte
            }
        }
    }

    pub fn run() {
        let name = format!("memlink-bench-{}", std::process::id());
        let text = b"Hello from process 1, through named shared memory!\0";

        println!(
            "{:<44} {:>12} {:>12} {:>8}",
            "4 KiB region, per cycle (median)", "memlink", "bare calls", "ratio"
        );
        let c_name = std::ffi::CString::new(format!("/{name}-bare")).unwrap();
        let name_ref = name.as_str();
        let create_cycle = |options: RegionOptions| {
            move || {
                let region = options.create(name_ref, SIZE as u64).unwrap();
                region.map_mut(..).unwrap().write_at(0, text).unwrap();
            }
        };
        let figures = compare(PER_BATCH, create_cycle(RegionOptions::new()), || {
            bare::create_write_close(&c_name, text)
        });
        report("create+map+write+unmap+close (reserved)", figures);
        let figures = compare(
            PER_BATCH,
            create_cycle(RegionOptions::new().reserve(false)),
            || bare::create_write_close(&c_name, text),
        );
        report("create+map+write+unmap+close (not reserved)", figures);

        let _holder = Region::create(&name, SIZE as u64).unwrap();
        bare::create_write_close(&c_name, text);
        let bare_holder = RegionOptions::new()
            .lifetime(memlink::Lifetime::Persistent)
            .create(&format!("{name}-bare"), SIZE as u64)
            .unwrap();
        let figures = compare(
            PER_BATCH,
            || {
                let region = Region::open(&name, Access::ReadOnly).unwrap();
                black_box(region.map(..).unwrap().to_vec()[0]);
            },
            || {
                black_box(bare::open_read_close(&c_name));
            },
        );
        report("open+map+read+unmap+close", figures);
        drop(bare_holder);
        memlink::remove(&format!("{name}-bare")).unwrap();
    }
}
