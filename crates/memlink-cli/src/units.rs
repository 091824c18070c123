//! Parsing and showing sizes, offsets, permission bits and intervals.
//!
//! The parsers are clap value parsers: a bad value is a usage error (exit
//! status 2) whose message says what was expected.

use std::time::Duration;

use humansize::{FormatSizeOptions, BINARY};

/// Units in sizes are powers of 1024, whichever way they are written
/// (`4K` = `4KB` = `4KiB` = 4096), as memory sizes usually are.
const SIZE_UNITS: parse_size::Config = parse_size::Config::new().with_binary();

const SIZE_HELP: &str =
    "expected a number of bytes, optionally with a unit: 4096, 4K, 4KiB, 1MiB, 2G";

/// A byte count with an optional unit (`4096`, `4KiB`, `1M`, `2G`), or
/// hexadecimal with `0x`.
pub fn size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16)
            .map_err(|_| format!("{text:?} is not a hexadecimal number"));
    }
    SIZE_UNITS
        .parse_size(text)
        .map_err(|_| SIZE_HELP.to_owned())
}

/// The largest region any system makes: file sizes are signed 64-bit
/// numbers (`off_t`, and Windows' section sizes too).
pub const MAX_REGION_SIZE: u64 = i64::MAX as u64;

/// A region size: like [`size`], but not zero, and no larger than
/// [`MAX_REGION_SIZE`].
pub fn region_size(text: &str) -> Result<u64, String> {
    match size(text)? {
        0 => Err("a region cannot have a size of 0".to_owned()),
        n if n > MAX_REGION_SIZE => Err(format!(
            "a region can have at most {MAX_REGION_SIZE} bytes (2^63 - 1)"
        )),
        n => Ok(n),
    }
}

/// A length to read or watch: like [`size`], but not zero.
pub fn length(text: &str) -> Result<u64, String> {
    match size(text)? {
        0 => Err("the length must be at least 1 byte".to_owned()),
        n => Ok(n),
    }
}

/// An offset: a byte count with an optional unit, or hexadecimal with `0x`
/// (as `xxd -s` takes it).
pub fn offset(text: &str) -> Result<u64, String> {
    size(text).map_err(|_| {
        "expected a byte offset: 256, 4K, 1MiB, or hexadecimal such as 0x100".to_owned()
    })
}

/// `1 byte`, `2 bytes`.
pub fn bytes(count: u64) -> String {
    if count == 1 {
        "1 byte".to_owned()
    } else {
        format!("{count} bytes")
    }
}

/// `name` as one word for a POSIX shell: unchanged if it is only letters,
/// digits and `@%+=:,./_-`, else in single quotes (a `'` in it as `'\''`),
/// so a hint such as `memlink rm 'Global\x'` can be pasted as it is.
pub fn shell_quote(name: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !name.is_empty() && name.chars().all(plain) {
        name.to_owned()
    } else {
        format!("'{}'", name.replace('\'', "'\\''"))
    }
}

/// Unix permission bits in octal (`600`, `0640`, `0o644`).
pub fn mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 && !digits.is_empty() => Ok(mode),
        _ => Err("expected octal permission bits from 000 to 777, such as 600 or 0644".to_owned()),
    }
}

/// How often to redraw: a duration with a unit (`100ms`, `1s`, `1m`), or a
/// bare number of seconds (`0.5`), as `watch -n` takes it.
pub fn interval(text: &str) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(text).or_else(|e| {
        text.parse::<f64>()
            .ok()
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or(e)
    });
    match parsed {
        Ok(d) if d >= Duration::from_millis(10) => Ok(d),
        Ok(_) => Err("the interval must be at least 10ms".to_owned()),
        Err(_) => Err("expected a duration such as 100ms, 1s or 0.5".to_owned()),
    }
}

/// How long to wait: like [`interval`], but 0 is allowed (do not wait).
pub fn timeout(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .ok()
        .or_else(|| {
            text.parse::<f64>()
                .ok()
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        })
        .ok_or_else(|| "expected a duration such as 100ms, 5s, 1m or 0.5".to_owned())
}

/// A size for people: `512 B`, `4 KiB`, `12.1 KiB`, `3 GiB`.
pub fn human_size(bytes: u64) -> String {
    let options = FormatSizeOptions::from(BINARY).decimal_places(1);
    humansize::format_size(bytes, options)
}

/// A size for people with the exact count: `4 KiB (4096 bytes)`.
pub fn human_size_exact(bytes: u64) -> String {
    if bytes < 1024 {
        self::bytes(bytes)
    } else {
        format!("{} ({bytes} bytes)", human_size(bytes))
    }
}

/// Permission bits as `ls -l` shows them, with the octal: `0600 (rw-------)`.
pub fn human_mode(mode: u32) -> String {
    let mut text = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    format!("{:04o} ({text})", mode & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("4KiB"), Ok(4096));
        assert_eq!(size("4K"), Ok(4096));
        assert_eq!(size("1MiB"), Ok(1 << 20));
        assert_eq!(size("2G"), Ok(2 << 30));
        assert!(size("12Q").is_err());
        assert!(size("-1").is_err());
        assert!(region_size("0").is_err());
        assert!(length("0K").is_err());
        assert_eq!(size("0x1000"), Ok(4096));
        assert_eq!(region_size("9223372036854775807"), Ok(i64::MAX as u64));
        assert!(region_size("18446744073709551615").is_err());
    }

    #[test]
    fn counts_and_names_read_well() {
        assert_eq!(bytes(1), "1 byte");
        assert_eq!(bytes(2), "2 bytes");
        assert_eq!(human_size_exact(1), "1 byte");
        assert_eq!(shell_quote("demo-1.x"), "demo-1.x");
        assert_eq!(shell_quote("Global\\x"), "'Global\\x'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn offsets_take_hex() {
        assert_eq!(offset("0x100"), Ok(256));
        assert_eq!(offset("1K"), Ok(1024));
        assert!(offset("0xzz").is_err());
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(mode("600"), Ok(0o600));
        assert_eq!(mode("0644"), Ok(0o644));
        assert_eq!(mode("0o640"), Ok(0o640));
        assert!(mode("800").is_err());
        assert!(mode("1777").is_err());
        assert!(mode("").is_err());
    }

    #[test]
    fn intervals_take_units_or_seconds() {
        assert_eq!(interval("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(interval("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(interval("2"), Ok(Duration::from_secs(2)));
        assert!(interval("1ms").is_err());
        assert!(interval("soon").is_err());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(12345), "12.1 KiB");
        assert_eq!(human_size(100), "100 B");
        assert_eq!(human_size_exact(4096), "4 KiB (4096 bytes)");
        assert_eq!(human_mode(0o640), "0640 (rw-r-----)");
    }
}
