//! Object names: one portable syntax for every platform.
//!
//! A name is 1 to [`MAX_NAME_LEN`] bytes of letters, digits, `.`, `_`, `-`
//! and `@`, not starting with `.`. For convenience a POSIX-style leading `/`
//! is accepted and dropped (`"/MMFSharedData"` is `"MMFSharedData"`), and so
//! are the Windows namespace prefixes `Global\` and `Local\`: where the OS
//! has such namespaces they select one as usual; elsewhere there is one
//! namespace per machine and the prefix is ignored.
//!
//! How a name becomes the OS's name for the object (a file name, a
//! `shm_open` name, a kernel-object name) is each platform's business, in
//! `sys/`: this module only validates.

use crate::error::{Error, ErrorKind, ObjectKind, Operation};

/// The longest name accepted, in bytes (without a prefix).
pub const MAX_NAME_LEN: usize = 200;

/// The Windows namespace prefixes a name may start with.
pub(crate) const NAMESPACE_PREFIXES: [&str; 2] = ["Global\\", "Local\\"];

/// A validated object name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    /// The name as the caller wrote it, for messages.
    given: String,
    /// The name without `/` or namespace prefix.
    base: String,
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
        let rest = NAMESPACE_PREFIXES
            .iter()
            .find_map(|prefix| given.strip_prefix(prefix))
            .unwrap_or_else(|| given.strip_prefix('/').unwrap_or(given));
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
        })
    }

    /// The name as the caller wrote it.
    pub(crate) fn given(&self) -> &str {
        &self.given
    }

    /// The name without `/` or namespace prefix: the same for every
    /// spelling of one name. The name as written is this with a prefix from
    /// [`NAMESPACE_PREFIXES`], a `/`, or nothing before it.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }
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
        assert_eq!(global.given(), "Global\\MMFSharedData");
        assert_eq!(parse("Local\\x").unwrap().base(), "x");
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
}
