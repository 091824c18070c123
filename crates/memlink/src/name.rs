//! Object names: one portable syntax for every platform.
//!
//! A name is 1 to [`MAX_NAME_LEN`] bytes of letters, digits, `.`, `_`, `-`
//! and `@`, not starting with `.`. For convenience a POSIX-style leading `/`
//! is accepted and dropped (`"/MMFSharedData"` is `"MMFSharedData"`), and so
//! are the Windows namespace prefixes `Global\` and `Local\`: where the OS
//! has such namespaces they select one as usual; elsewhere there is one
//! namespace per machine and the prefix is ignored.
//!
//! That syntax is for what memlink creates. To open, inspect or remove an
//! object that exists already, any name the OS accepts will do (see
//! [`Name::parse_existing`]), so that foreign objects whose names fall
//! outside the portable syntax (`with space`, `.hidden`, `probeW Map 2`)
//! can be reached too.
//!
//! How a name becomes the OS's name for the object (a file name, a
//! `shm_open` name, a kernel-object name) is each platform's business, in
//! `sys/`: this module only validates.

use crate::error::{Error, ErrorKind, ObjectKind, Operation};

/// The longest name memlink creates, in bytes (without a prefix).
pub const MAX_NAME_LEN: usize = 200;

/// The longest name accepted for an object that exists already: the
/// longest file name Linux and the BSDs allow (`NAME_MAX`).
const MAX_EXISTING_NAME_LEN: usize = 255;

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
    /// Parses a name in the portable syntax, for creating an object.
    pub(crate) fn parse(
        given: &str,
        operation: Operation,
        object: ObjectKind,
    ) -> Result<Name, Error> {
        let invalid = |why: String| {
            Error::new(operation, object, given, ErrorKind::InvalidName).with_detail(why)
        };
        let rest = strip_prefix(given);
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
        let rest = strip_prefix(given);
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
        })
    }

    /// The name with `suffix` added, for an object memlink derives from
    /// this one (the mutex beside a `Shared` value): it may exceed
    /// [`MAX_NAME_LEN`] by the suffix, so that every valid name has one.
    pub(crate) fn with_suffix(&self, suffix: &str) -> Name {
        Name {
            given: format!("{}{suffix}", self.given),
            base: format!("{}{suffix}", self.base),
        }
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

/// `given` without its namespace prefix or POSIX-style leading `/`.
fn strip_prefix(given: &str) -> &str {
    NAMESPACE_PREFIXES
        .iter()
        .find_map(|prefix| given.strip_prefix(prefix))
        .unwrap_or_else(|| given.strip_prefix('/').unwrap_or(given))
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
}
