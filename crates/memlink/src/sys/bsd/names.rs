//! How a name becomes the names this backend uses: the `shm_open` name of
//! the object, and the file name of its sidecar. Plain string functions,
//! so they are tested on Linux too.

use crate::name::Name;

/// The longest name `shm_open` accepts, counting the leading `/`.
#[cfg(target_vendor = "apple")]
const SHM_NAME_MAX: usize = 31; // PSHMNAMLEN
#[cfg(not(target_vendor = "apple"))]
const SHM_NAME_MAX: usize = 255;

/// The name passed to `shm_open` for `name`.
pub(super) fn shm_object_name(name: &Name) -> String {
    shm_open_name(name.base(), SHM_NAME_MAX)
}

/// `/base`, or `/ml_` and a digest of `base` when that exceeds `max_len`
/// bytes: so every process using the same long name reaches the same object.
fn shm_open_name(base: &str, max_len: usize) -> String {
    let plain = format!("/{base}");
    if plain.len() <= max_len {
        return plain;
    }
    let digest = fnv1a_128(base.as_bytes());
    let mut short = String::from("/ml_");
    for byte in digest {
        short.push_str(&format!("{byte:02x}"));
    }
    short.truncate(max_len);
    short
}

/// 128-bit FNV-1a: stable across versions and platforms, which is all the
/// long-name mapping needs (it is not a defence against chosen collisions).
fn fnv1a_128(bytes: &[u8]) -> [u8; 16] {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut hash = OFFSET;
    for &b in bytes {
        hash ^= u128::from(b);
        hash = hash.wrapping_mul(PRIME);
    }
    hash.to_be_bytes()
}

/// The sidecar file name for the base name `base`.
///
/// Names are case-sensitive, but `/tmp` may not be (APFS, macOS's default,
/// is not), so the file name is the base name in lower case followed, when
/// it had capitals, by `+` and a bitmap of their positions in hex (bit
/// `i % 8` of byte `i / 8` for position `i`, trailing zero bytes left out):
/// `MMFSharedData` is `mmfshareddata+0f02`. No name contains `+`, so the
/// mapping can be undone ([`base_from_sidecar`]); a name of 200 bytes gives
/// at most 251, within the usual file-name limit of 255.
pub(super) fn sidecar_file_name(base: &str) -> String {
    let mut bits: Vec<u8> = Vec::new();
    for (i, c) in base.bytes().enumerate() {
        if c.is_ascii_uppercase() {
            if bits.len() <= i / 8 {
                bits.resize(i / 8 + 1, 0);
            }
            bits[i / 8] |= 1 << (i % 8);
        }
    }
    let mut file = base.to_ascii_lowercase();
    if !bits.is_empty() {
        file.push('+');
        for byte in bits {
            file.push_str(&format!("{byte:02x}"));
        }
    }
    file
}

/// The base name that the sidecar file name `file` stands for, or `None`
/// for a file memlink would not have made.
pub(super) fn base_from_sidecar(file: &str) -> Option<String> {
    let (lower, hex) = match file.split_once('+') {
        Some((lower, hex)) => (lower, hex),
        None => (file, ""),
    };
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return None;
    }
    let mut base = lower.as_bytes().to_vec();
    for (index, pair) in hex.as_bytes().chunks(2).enumerate() {
        let byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        for bit in 0..8 {
            if byte & (1 << bit) != 0 {
                base.get_mut(index * 8 + bit)?.make_ascii_uppercase();
            }
        }
    }
    let base = String::from_utf8(base).ok()?;
    // Only the one spelling memlink writes maps back (this rejects capitals
    // outside the bitmap, bits on non-letters, padding, signs, ...).
    (sidecar_file_name(&base) == file).then_some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_names_survive_case_folding_and_map_back() {
        assert_eq!(sidecar_file_name("psm_1a2b"), "psm_1a2b");
        assert_eq!(sidecar_file_name("MMFSharedData"), "mmfshareddata+0f02");
        assert_ne!(sidecar_file_name("Foo"), sidecar_file_name("foo"));
        let long = format!("{}Z", "A".repeat(199));
        for base in ["psm_1a2b", "MMFSharedData", "a.B-c_D@9", "x", long.as_str()] {
            let file = sidecar_file_name(base);
            assert!(file.len() <= 255, "{file}");
            assert!(!file.bytes().any(|c| c.is_ascii_uppercase()), "{file}");
            assert_eq!(base_from_sidecar(&file).as_deref(), Some(base));
        }
        for junk in [
            "Foo", "foo+", "foo+0", "foo+00", "foo+08", "foo++1", "a+0f02", "ab+zz",
        ] {
            assert_eq!(base_from_sidecar(junk), None, "{junk}");
        }
    }

    #[test]
    fn long_names_map_deterministically_within_the_limit() {
        let a = shm_open_name(&"a".repeat(40), 31);
        let b = shm_open_name(&"a".repeat(40), 31);
        let c = shm_open_name(&format!("{}b", "a".repeat(39)), 31);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 31);
        assert!(a.starts_with("/ml_"));
        assert_eq!(shm_open_name("short", 31), "/short");
        assert_eq!(shm_open_name(&"a".repeat(200), 255).len(), 201);
    }

    #[test]
    fn shm_names_drop_the_namespace_prefix() {
        let parse = |s| Name::parse(s, crate::Operation::Open, crate::ObjectKind::Region).unwrap();
        assert_eq!(shm_object_name(&parse("Global\\abc")), "/abc");
        assert_eq!(shm_object_name(&parse("/abc")), "/abc");
    }
}
