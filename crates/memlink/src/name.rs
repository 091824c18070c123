//! Object names: one portable syntax, mapped to each platform's namespace.
//!
//! A name is 1 to [`MAX_NAME_LEN`] bytes of letters, digits, `.`, `_`, `-`
//! and `@`, not starting with `.`. For convenience a POSIX-style leading `/`
//! is accepted and dropped (`"/MMFSharedData"` is `"MMFSharedData"`), and so
//! are the Windows namespace prefixes `Global\` and `Local\`: on Windows
//! they select the kernel namespace as usual; elsewhere there is one
//! namespace per machine and the prefix is ignored.
//!
//! That syntax is for what memlink creates. To open, inspect or remove an
//! object that exists already, any name the OS accepts will do (see
//! [`Name::parse_existing`]), so that foreign objects whose names fall
//! outside the portable syntax (`with space`, `.hidden`, `probeW Map 2`)
//! can be reached too.
//!
//! On Linux the name is the file name in `/dev/shm`, so a C program calling
//! `shm_open("/NAME")` or Python's `SharedMemory("NAME")` finds the same
//! object. On macOS, where shared-memory names are limited to 31 bytes, a
//! longer name is replaced by a fixed-length digest of it, so every process
//! using the same long name reaches the same object.

use crate::error::{Error, ErrorKind, ObjectKind, Operation};

/// The longest name memlink creates, in bytes (without a prefix).
pub const MAX_NAME_LEN: usize = 200;

/// The longest name accepted for an object that exists already: the
/// longest file name Linux and the BSDs allow (`NAME_MAX`).
const MAX_EXISTING_NAME_LEN: usize = 255;

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
    /// Parses a name in the portable syntax, for creating an object.
    pub(crate) fn parse(
        given: &str,
        operation: Operation,
        object: ObjectKind,
    ) -> Result<Name, Error> {
        let invalid = |why: String| {
            Error::new(operation, object, given, ErrorKind::InvalidName).with_detail(why)
        };
        let (namespace, rest) = split_prefix(given);
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

    /// Parses the name of an object that may exist already, for opening,
    /// inspecting or removing it: the portable syntax, or any other name the
    /// OS accepts (no NUL, no path separator, not `.` or `..`, at most 255
    /// bytes).
    pub(crate) fn parse_existing(
        given: &str,
        operation: Operation,
        object: ObjectKind,
    ) -> Result<Name, Error> {
        let portable = Name::parse(given, operation, object);
        let Err(refusal) = portable else {
            return portable;
        };
        let (namespace, rest) = split_prefix(given);
        let os_accepts = !rest.is_empty()
            && rest.len() <= MAX_EXISTING_NAME_LEN
            && rest != "."
            && rest != ".."
            && !rest.contains('\0')
            && !rest.contains(crate::sys::NAME_SEPARATOR);
        if !os_accepts {
            return Err(refusal);
        }
        Ok(Name {
            given: given.to_owned(),
            base: rest.to_owned(),
            namespace,
        })
    }

    /// The name with `suffix` added, for an object memlink derives from
    /// this one (the mutex beside a `Shared` value): it may exceed
    /// [`MAX_NAME_LEN`] by the suffix, so that every valid name has one.
    pub(crate) fn with_suffix(&self, suffix: &str) -> Name {
        Name {
            given: format!("{}{suffix}", self.given),
            base: format!("{}{suffix}", self.base),
            namespace: self.namespace,
        }
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

/// Splits off a Windows namespace prefix or a POSIX-style leading `/`.
fn split_prefix(given: &str) -> (Option<&'static str>, &str) {
    if let Some(rest) = given.strip_prefix("Global\\") {
        (Some("Global\\"), rest)
    } else if let Some(rest) = given.strip_prefix("Local\\") {
        (Some("Local\\"), rest)
    } else {
        (None, given.strip_prefix('/').unwrap_or(given))
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
    fn existing_objects_may_have_any_name_the_os_accepts() {
        let existing = |s: &str| Name::parse_existing(s, Operation::Open, ObjectKind::Region);
        assert_eq!(existing("with space").unwrap().base(), "with space");
        assert_eq!(existing(".hidden").unwrap().base(), ".hidden");
        assert_eq!(existing("probeW Map 2").unwrap().base(), "probeW Map 2");
        assert_eq!(existing(&"x".repeat(255)).unwrap().base().len(), 255);
        for bad in ["", "/", ".", "..", "a\0b", &"x".repeat(256)] {
            let err = existing(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidName, "{bad:?}");
        }
        let separator = format!("a{}b", crate::sys::NAME_SEPARATOR);
        assert_eq!(
            existing(&separator).unwrap_err().kind(),
            ErrorKind::InvalidName
        );
        // Creating keeps the portable syntax.
        assert!(Name::parse("with space", Operation::Create, ObjectKind::Region).is_err());
    }

    #[test]
    fn a_suffix_may_take_a_name_past_the_portable_limit() {
        let name = parse(&"x".repeat(MAX_NAME_LEN))
            .unwrap()
            .with_suffix(".lock");
        assert_eq!(name.base().len(), MAX_NAME_LEN + 5);
        assert!(name.given().ends_with(".lock"));
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
