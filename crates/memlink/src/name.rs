//! Object names: one portable syntax, mapped to each platform's namespace.
//!
//! A name is 1 to [`MAX_NAME_LEN`] bytes of letters, digits, `.`, `_`, `-`
//! and `@`, not starting with `.`. For convenience a POSIX-style leading `/`
//! is accepted and dropped (`"/MMFSharedData"` is `"MMFSharedData"`), and so
//! are the Windows namespace prefixes `Global\` and `Local\`: on Windows
//! they select the kernel namespace as usual; elsewhere there is one
//! namespace per machine and the prefix is ignored.
//!
//! On Linux the name is the file name in `/dev/shm`, so a C program calling
//! `shm_open("/NAME")` or Python's `SharedMemory("NAME")` finds the same
//! object. On macOS, where shared-memory names are limited to 31 bytes, a
//! longer name is replaced by a fixed-length digest of it, so every process
//! using the same long name reaches the same object.

use crate::error::{Error, ErrorKind, ObjectKind, Operation};

/// The longest name accepted, in bytes (without a prefix).
pub const MAX_NAME_LEN: usize = 200;

/// A validated object name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    /// The name as the caller wrote it, for messages.
    given: String,
    /// The name without `/` or namespace prefix.
    base: String,
    /// The Windows namespace prefix, if any (`Global\` or `Local\`).
    namespace: Option<&'static str>,
}

impl Name {
    pub(crate) fn parse(
        given: &str,
        operation: Operation,
        object: ObjectKind,
    ) -> Result<Name, Error> {
        let invalid = |why: String| {
            Error::new(operation, object, given, ErrorKind::InvalidName).with_detail(why)
        };
        let (namespace, rest) = if let Some(rest) = given.strip_prefix("Global\\") {
            (Some("Global\\"), rest)
        } else if let Some(rest) = given.strip_prefix("Local\\") {
            (Some("Local\\"), rest)
        } else {
            (None, given.strip_prefix('/').unwrap_or(given))
        };
        if rest.is_empty() {
            return Err(invalid("the name is empty".into()));
        }
        if rest.len() > MAX_NAME_LEN {
            return Err(invalid(format!(
                "the name is {} bytes long; at most {MAX_NAME_LEN} are allowed",
                rest.len()
            )));
        }
        if rest.starts_with('.') {
            return Err(invalid("a name must not start with '.'".into()));
        }
        if let Some(bad) = rest
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
        {
            return Err(invalid(format!(
                "{bad:?} is not allowed; use letters, digits, '.', '_', '-' and '@'"
            )));
        }
        Ok(Name {
            given: given.to_owned(),
            base: rest.to_owned(),
            namespace,
        })
    }

    /// The name as the caller wrote it.
    pub(crate) fn given(&self) -> &str {
        &self.given
    }

    /// The name without `/` or namespace prefix: the file name in `/dev/shm`.
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The Windows kernel-object name: the prefix (if any) and the base.
    #[cfg_attr(not(windows), allow(dead_code))]
    pub(crate) fn windows_name(&self) -> String {
        format!("{}{}", self.namespace.unwrap_or(""), self.base)
    }

    /// The name passed to `shm_open` on platforms without `/dev/shm`:
    /// `/base`, or `/ml_` and a digest when that exceeds `max_len` bytes.
    #[cfg_attr(any(windows, target_os = "linux"), allow(dead_code))]
    pub(crate) fn shm_open_name(&self, max_len: usize) -> String {
        let plain = format!("/{}", self.base);
        if plain.len() <= max_len {
            return plain;
        }
        let digest = fnv1a_128(self.base.as_bytes());
        let mut short = String::from("/ml_");
        for byte in digest {
            short.push_str(&format!("{byte:02x}"));
        }
        short.truncate(max_len);
        short
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Name, Error> {
        Name::parse(s, Operation::Open, ObjectKind::Region)
    }

    #[test]
    fn accepts_plain_and_prefixed_names() {
        assert_eq!(parse("MMFSharedData").unwrap().base(), "MMFSharedData");
        assert_eq!(parse("/psm_1a2b").unwrap().base(), "psm_1a2b");
        let global = parse("Global\\MMFSharedData").unwrap();
        assert_eq!(global.base(), "MMFSharedData");
        assert_eq!(global.windows_name(), "Global\\MMFSharedData");
        assert_eq!(global.given(), "Global\\MMFSharedData");
    }

    #[test]
    fn rejects_bad_names_with_a_reason() {
        let cases = [
            ("", "the name is empty"),
            ("/", "the name is empty"),
            ("a/b", "'/' is not allowed"),
            ("a\\b", "'\\\\' is not allowed"),
            (".hidden", "must not start with '.'"),
            ("with space", "' ' is not allowed"),
            ("Global\\", "the name is empty"),
        ];
        for (name, why) in cases {
            let err = parse(name).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidName, "{name:?}");
            let msg = err.to_string();
            assert!(msg.contains(why), "{name:?}: {msg}");
            assert!(msg.starts_with("cannot open region"), "{msg}");
        }
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(parse(&long)
            .unwrap_err()
            .to_string()
            .contains("at most 200"));
        assert!(parse(&"x".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn long_names_map_deterministically_within_the_limit() {
        let a = parse(&"a".repeat(40)).unwrap().shm_open_name(31);
        let b = parse(&"a".repeat(40)).unwrap().shm_open_name(31);
        let c = parse(&format!("{}b", "a".repeat(39)))
            .unwrap()
            .shm_open_name(31);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 31);
        assert!(a.starts_with("/ml_"));
        assert_eq!(parse("short").unwrap().shm_open_name(31), "/short");
    }
}
