//! Hex dumps: `xxd`'s layout for `read --hex`, a byte-per-cell layout for
//! `watch` (which needs room to mark changed bytes).

use std::fmt::Write as _;
use std::io::{self, Write};

use anstyle::{Effects, Style};

use crate::text::Encoding;

/// Bytes per dump line.
pub const WIDTH: usize = 16;

const ZERO: Style = Style::new().effects(Effects::DIMMED);
const CHANGED: Style = Style::new().effects(Effects::INVERT.insert(Effects::BOLD));

/// How many hex digits the offsets of a dump ending at `end` need (at
/// least 8, as `xxd` prints them).
pub fn offset_digits(end: u64) -> usize {
    let bits = 64 - end.saturating_sub(1).leading_zeros() as usize;
    bits.div_ceil(4).max(8)
}

fn ascii(byte: u8) -> char {
    if byte.is_ascii_graphic() || byte == b' ' {
        byte as char
    } else {
        '.'
    }
}

/// A dump in `xxd`'s layout, written a piece at a time:
/// `00000010: 4865 6c6c 6f00 ...  Hello...`. With `squeeze`, a run of
/// lines equal to the one before is shown as one `*` line (as `hexdump`
/// and `xxd -a` do); the last line is always shown. With `colour`, zero
/// bytes are dimmed. Memory stays one line, whatever the dump's length.
pub struct Xxd {
    /// Where the next line starts in the region, and where the dump ends.
    at: u64,
    end: u64,
    digits: usize,
    squeeze: bool,
    colour: bool,
    previous: Option<[u8; WIDTH]>,
    /// `previous` over and over, to skip a whole piece of repeats with one
    /// comparison (a large zeroed region is mostly that).
    repeated: Vec<u8>,
    skipping: bool,
    text: String,
}

impl Xxd {
    /// A dump of the bytes `base..end` of the region.
    pub fn new(base: u64, end: u64, squeeze: bool, colour: bool) -> Xxd {
        Xxd {
            at: base,
            end,
            digits: offset_digits(end),
            squeeze,
            colour,
            previous: None,
            repeated: Vec::new(),
            skipping: false,
            text: String::with_capacity(128),
        }
    }

    /// Writes the next `bytes` of the dump. Every piece but the last must
    /// be a whole number of lines ([`WIDTH`] bytes).
    pub fn write(&mut self, out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
        if self.squeeze && self.repeats(bytes) {
            if !self.skipping {
                self.skip(out)?;
            }
            self.at += bytes.len() as u64;
            return Ok(());
        }
        for line in bytes.chunks(WIDTH) {
            let start = self.at;
            self.at += line.len() as u64;
            let last = self.at >= self.end;
            if self.squeeze && !last && self.previous.as_ref().map(|p| &p[..]) == Some(line) {
                if !self.skipping {
                    self.skip(out)?;
                }
                continue;
            }
            self.skipping = false;
            if line.len() == WIDTH {
                self.previous = Some(line.try_into().expect("a whole line"));
            }
            self.line(out, start, line)?;
        }
        Ok(())
    }

    /// Whether `bytes` are whole lines equal to the last one shown, none
    /// of them the dump's last line.
    fn repeats(&mut self, bytes: &[u8]) -> bool {
        let Some(previous) = self.previous else {
            return false;
        };
        if bytes.len() % WIDTH != 0 || self.at + bytes.len() as u64 >= self.end {
            return false;
        }
        if self.repeated.len() < bytes.len() || self.repeated[..WIDTH] != previous {
            self.repeated = previous.repeat(bytes.len() / WIDTH);
        }
        bytes == &self.repeated[..bytes.len()]
    }

    /// Starts a run of repeated lines: one `*`.
    fn skip(&mut self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(b"*\n")?;
        // What follows may be far away: let a reader (`head`) see this
        // much now.
        out.flush()?;
        self.skipping = true;
        Ok(())
    }

    fn line(&mut self, out: &mut impl Write, start: u64, line: &[u8]) -> io::Result<()> {
        let (text, digits, colour) = (&mut self.text, self.digits, self.colour);
        text.clear();
        // Writing to a String cannot fail.
        let _ = write!(text, "{start:0digits$x}:");
        for (j, &byte) in line.iter().enumerate() {
            if j % 2 == 0 {
                text.push(' ');
            }
            push_styled(text, colour && byte == 0, ZERO, |t| push_hex(t, byte));
        }
        // Pad a short last line so its text lines up with the others.
        let missing = WIDTH - line.len();
        let pad = missing * 2 + missing / 2 + 2;
        text.extend(std::iter::repeat_n(' ', pad));
        for &byte in line {
            push_styled(text, colour && byte == 0, ZERO, |t| t.push(ascii(byte)));
        }
        text.push('\n');
        out.write_all(text.as_bytes())
    }
}

/// Writes all of `bytes`, which start at `base`, as one [`Xxd`] dump.
pub fn xxd(
    out: &mut impl Write,
    bytes: &[u8],
    base: u64,
    squeeze: bool,
    colour: bool,
) -> io::Result<()> {
    Xxd::new(base, base + bytes.len() as u64, squeeze, colour).write(out, bytes)
}

fn push_hex(text: &mut String, byte: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    text.push(DIGITS[usize::from(byte >> 4)] as char);
    text.push(DIGITS[usize::from(byte & 0xf)] as char);
}

/// Pushes what `push` writes, in `style` when `styled`.
fn push_styled(text: &mut String, styled: bool, style: Style, push: impl FnOnce(&mut String)) {
    if styled {
        let _ = write!(text, "{style}");
        push(text);
        let _ = write!(text, "{style:#}");
    } else {
        push(text);
    }
}

/// One line of `watch`'s view: `00000010  48 65 6c ... |Hello...|`, with
/// the bytes whose `changed` flag is set highlighted (reverse video) when
/// `colour`, or marked with a `*` before them when not. The text column
/// shows a character per byte, or per two bytes for UTF-16LE.
pub fn watch_line(
    line: &[u8],
    changed: &[bool],
    offset: u64,
    digits: usize,
    colour: bool,
    encoding: Encoding,
) -> String {
    let mut text = format!("{offset:0digits$x} ");
    for (j, (&byte, &new)) in line.iter().zip(changed).enumerate() {
        let gap = if j == 8 { " " } else { "" };
        let mark = if new && !colour { '*' } else { ' ' };
        text.push_str(gap);
        text.push(mark);
        if new && colour {
            text.push_str(&format!("{CHANGED}{byte:02x}{CHANGED:#}"));
        } else {
            text.push_str(&format!("{byte:02x}"));
        }
    }
    let missing = WIDTH - line.len();
    let pad = missing * 3 + usize::from(line.len() <= 8);
    text.push_str(&format!("{:pad$}  |", ""));
    let width = encoding.nul().len();
    for (cell, new) in line.chunks(width).zip(changed.chunks(width)) {
        let shown = match *cell {
            [byte] => ascii(byte),
            [low, high] => narrow_char(u16::from_le_bytes([low, high])),
            _ => unreachable!("cells are one or two bytes"),
        };
        if new.contains(&true) && colour {
            text.push_str(&format!("{CHANGED}{shown}{CHANGED:#}"));
        } else {
            text.push(shown);
        }
    }
    text.push('|');
    text
}

/// A UTF-16 code unit as one terminal column: printable Latin-1 as
/// itself, anything else (wider, control, half a pair) as '.'.
fn narrow_char(unit: u16) -> char {
    match unit {
        0x20..=0x7e | 0xa0..=0xff => char::from(unit as u8),
        _ => '.',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(bytes: &[u8], base: u64, squeeze: bool) -> String {
        let mut out = Vec::new();
        let mut xxd = Xxd::new(base, base + bytes.len() as u64, squeeze, false);
        // In pieces of two lines, as `read` feeds it in chunks.
        for piece in bytes.chunks(2 * WIDTH) {
            xxd.write(&mut out, piece).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn dims_zero_bytes_in_colour() {
        let mut out = Vec::new();
        Xxd::new(0, 2, false, true).write(&mut out, b"a\0").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(&format!("00000000: 61{ZERO}00{ZERO:#}")),
            "{text:?}"
        );
    }

    #[test]
    fn matches_xxd() {
        // `printf 'Hello, shared memory!\n' | xxd`
        assert_eq!(
            dump(b"Hello, shared memory!\n", 0, false),
            "00000000: 4865 6c6c 6f2c 2073 6861 7265 6420 6d65  Hello, shared me\n\
             00000010: 6d6f 7279 210a                           mory!.\n"
        );
        assert_eq!(
            dump(b"abc", 0x20, false),
            "00000020: 6162 63                                  abc\n"
        );
    }

    #[test]
    fn squeezes_repeated_lines_but_keeps_the_last() {
        let mut bytes = b"hi".to_vec();
        bytes.resize(64, 0);
        let text = dump(&bytes, 0, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[1].starts_with("00000010: 0000"), "{text}");
        assert_eq!(lines[2], "*");
        assert!(lines[3].starts_with("00000030: 0000"), "{text}");
    }

    #[test]
    fn whole_pieces_of_repeats_are_skipped_as_lines_are() {
        let mut bytes = b"hi".to_vec();
        bytes.resize(16 * 100, 0);
        bytes.extend_from_slice(b"end");
        let mut out = Vec::new();
        let mut xxd = Xxd::new(0, bytes.len() as u64, true, false);
        for piece in bytes.chunks(16 * 10) {
            xxd.write(&mut out, piece).unwrap();
        }
        assert_eq!(String::from_utf8(out).unwrap(), dump(&bytes, 0, true));
        assert_eq!(dump(&bytes, 0, true).lines().count(), 4);
    }

    #[test]
    fn offsets_grow_past_4_gib() {
        assert_eq!(offset_digits(0x1000), 8);
        assert_eq!(offset_digits(0x1_0000_0000), 8);
        assert_eq!(offset_digits(0x1_0000_0001), 9);
    }

    #[test]
    fn watch_lines_mark_changes_without_colour() {
        let mut changed = [false; 16];
        changed[1] = true;
        let line = watch_line(b"Hello, shared me", &changed, 0, 8, false, Encoding::Utf8);
        assert_eq!(
            line,
            "00000000  48*65 6c 6c 6f 2c 20 73  68 61 72 65 64 20 6d 65  |Hello, shared me|"
        );
        let short = watch_line(b"abc", &[false; 3], 16, 8, false, Encoding::Utf8);
        assert_eq!(short.len(), line.len() - 13, "{short}");
        assert!(short.ends_with("  |abc|"), "{short}");
    }

    #[test]
    fn watch_lines_show_utf16_text_a_character_per_two_bytes() {
        let wide = Encoding::Utf16Le.encode("Hello, w", false);
        let line = watch_line(&wide, &[false; 16], 0, 8, false, Encoding::Utf16Le);
        assert!(line.ends_with("  |Hello, w|"), "{line}");
    }
}
