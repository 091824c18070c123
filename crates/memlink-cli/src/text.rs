//! Text in a region: UTF-8, or UTF-16LE as Windows programs built with
//! UNICODE (the seeds) keep it, each ended by a NUL of its own width.

/// The `--encoding` / `--utf16` options of the commands that read or write
/// text.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct EncodingArgs {
    /// How the text is stored: utf-8, utf-16le or auto (--help tells how
    /// auto decides).
    ///
    /// utf-16le is Windows' wide strings (wchar_t, as UNICODE programs such
    /// as the seeds keep text): two bytes a character and a two-byte NUL.
    /// Auto reads UTF-16LE
    /// where the bytes plainly are that: up to a two-byte NUL they decode
    /// as UTF-16LE with no control characters, and the first character and
    /// more than half of them are below U+0100, so every other byte is 0 (a
    /// Windows program's string of Latin text); or where they decode so
    /// but are not plain UTF-8 (as most Chinese in UTF-16LE). Otherwise
    /// UTF-8. Writing, auto keeps the encoding of the text
    /// already at the offset; where there is none (zero bytes, a new
    /// region) it is UTF-16LE on Windows and UTF-8 elsewhere.
    #[arg(
        short,
        long,
        value_enum,
        value_name = "ENCODING",
        default_value = "auto",
        hide_possible_values = true
    )]
    encoding: Choice,
    /// The same as --encoding utf-16le.
    #[arg(long, conflicts_with = "encoding")]
    utf16: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Choice {
    Auto,
    #[value(name = "utf-8", alias = "utf8")]
    Utf8,
    #[value(
        name = "utf-16le",
        alias = "utf16le",
        alias = "utf-16",
        alias = "utf16"
    )]
    Utf16Le,
}

/// A text encoding that a region's bytes are read or written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16Le,
}

/// The encoding new text gets where nothing says otherwise: Windows'
/// own wide strings there, UTF-8 elsewhere.
pub const NATIVE: Encoding = if cfg!(windows) {
    Encoding::Utf16Le
} else {
    Encoding::Utf8
};

/// How many bytes [`detect`] needs to see at most.
pub const SAMPLE: usize = 4096;

impl EncodingArgs {
    /// The encoding the user chose; `None` for auto.
    pub fn chosen(&self) -> Option<Encoding> {
        match (self.utf16, self.encoding) {
            (true, _) | (false, Choice::Utf16Le) => Some(Encoding::Utf16Le),
            (false, Choice::Utf8) => Some(Encoding::Utf8),
            (false, Choice::Auto) => None,
        }
    }

    /// The encoding to read `sample` (the first bytes of the text) in.
    pub fn for_reading(&self, sample: &[u8]) -> Encoding {
        self.chosen()
            .unwrap_or_else(|| detect(sample).unwrap_or(Encoding::Utf8))
    }

    /// The encoding to write new text in over `existing` (the bytes there
    /// now).
    pub fn for_writing(&self, existing: &[u8]) -> Encoding {
        self.chosen()
            .unwrap_or_else(|| detect(existing).unwrap_or(NATIVE))
    }

    /// The encoding for text written into a new region.
    pub fn for_new_region(&self) -> Encoding {
        self.chosen().unwrap_or(NATIVE)
    }
}

impl Encoding {
    /// The NUL that ends a text.
    pub fn nul(self) -> &'static [u8] {
        match self {
            Encoding::Utf8 => &[0],
            Encoding::Utf16Le => &[0, 0],
        }
    }

    /// For messages: `UTF-16LE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf16Le => "UTF-16LE",
        }
    }

    /// As `--encoding` takes it.
    pub fn option_value(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Utf16Le => "utf-16le",
        }
    }

    /// `text` in this encoding, followed by its NUL when `nul`.
    pub fn encode(self, text: &str, nul: bool) -> Vec<u8> {
        let mut bytes = match self {
            Encoding::Utf8 => text.as_bytes().to_vec(),
            Encoding::Utf16Le => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        };
        if nul {
            bytes.extend_from_slice(self.nul());
        }
        bytes
    }

    /// Where the text in `bytes` ends: at its NUL (aligned to the width of
    /// a character), or `None` if there is none in `bytes`.
    pub fn text_len(self, bytes: &[u8]) -> Option<usize> {
        match self {
            Encoding::Utf8 => bytes.iter().position(|&b| b == 0),
            Encoding::Utf16Le => bytes
                .chunks_exact(2)
                .position(|unit| unit == [0, 0])
                .map(|units| units * 2),
        }
    }

    /// The text of `bytes` (which hold no NUL), with anything that does
    /// not decode shown as U+FFFD.
    pub fn decode(self, bytes: &[u8]) -> String {
        match self {
            Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Encoding::Utf16Le => {
                let units: Vec<u16> = bytes
                    .chunks_exact(2)
                    .map(|unit| u16::from_le_bytes([unit[0], unit[1]]))
                    .collect();
                let mut text = String::from_utf16_lossy(&units);
                if bytes.len() % 2 == 1 {
                    text.push(char::REPLACEMENT_CHARACTER);
                }
                text
            }
        }
    }
}

fn is_plain(c: char) -> bool {
    !c.is_control() || matches!(c, '\t' | '\n' | '\r')
}

/// The encoding of the text at the start of `bytes` by the rule in
/// `--help` (see [`EncodingArgs`]); `None` when there is no text there
/// (the first character is a NUL either way).
pub fn detect(bytes: &[u8]) -> Option<Encoding> {
    let bytes = &bytes[..bytes.len().min(SAMPLE)];
    let utf8_len = Encoding::Utf8.text_len(bytes).unwrap_or(bytes.len());
    let utf16_len = Encoding::Utf16Le
        .text_len(bytes)
        .unwrap_or(bytes.len() & !1);
    if utf8_len == 0 {
        return None;
    }
    let units = bytes[..utf16_len]
        .chunks_exact(2)
        .map(|unit| u16::from_le_bytes([unit[0], unit[1]]));
    let mut chars = 0usize;
    let mut narrow = 0usize;
    for c in char::decode_utf16(units) {
        match c {
            Ok(c) if is_plain(c) => {
                chars += 1;
                narrow += usize::from(u32::from(c) < 0x100);
            }
            _ => return Some(Encoding::Utf8),
        }
    }
    // bytes[1] == 0: the first character is below U+0100.
    if chars == 0 {
        return Some(Encoding::Utf8);
    }
    // bytes[1] == 0: the first character is below U+0100.
    if bytes[1] == 0 && narrow * 2 > chars {
        return Some(Encoding::Utf16Le);
    }
    // Text with no narrow characters (Chinese, say) has no zero bytes: it
    // is UTF-16LE if it is not plain UTF-8 (a character cut off at the
    // end of the sample is not held against it).
    let utf8 = &bytes[..utf8_len];
    let plain_utf8 = match std::str::from_utf8(utf8) {
        Ok(text) => text.chars().all(is_plain),
        Err(e) => {
            e.error_len().is_none()
                && std::str::from_utf8(&utf8[..e.valid_up_to()])
                    .is_ok_and(|text| text.chars().all(is_plain))
        }
    };
    Some(if plain_utf8 {
        Encoding::Utf8
    } else {
        Encoding::Utf16Le
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wide(text: &str) -> Vec<u8> {
        let mut bytes = Encoding::Utf16Le.encode(text, true);
        bytes.resize(64, 0);
        bytes
    }

    fn narrow(text: &str) -> Vec<u8> {
        let mut bytes = Encoding::Utf8.encode(text, true);
        bytes.resize(64, 0);
        bytes
    }

    #[test]
    fn the_seeds_wide_text_is_utf16() {
        assert_eq!(
            detect(&wide("Hello from process 1")),
            Some(Encoding::Utf16Le)
        );
        assert_eq!(
            detect(&wide("Message from the first process.")),
            Some(Encoding::Utf16Le)
        );
        assert_eq!(detect(&wide("é")), Some(Encoding::Utf16Le));
    }

    #[test]
    fn utf8_text_of_any_length_is_utf8() {
        for text in ["a", "ab", "abc", "hello", "hello, world", "héllo"] {
            let found = detect(&narrow(text));
            // A single ASCII character reads the same either way.
            if text.len() > 1 {
                assert_eq!(found, Some(Encoding::Utf8), "{text:?}");
            }
        }
        // Leftovers of a longer text after the NUL do not make it wide.
        assert_eq!(detect(b"abc\0o, world\0"), Some(Encoding::Utf8));
        let mut over_wide = Encoding::Utf8.encode("narrow \u{e9}", true);
        over_wide.extend(Encoding::Utf16Le.encode("wide text", true));
        assert_eq!(detect(&over_wide), Some(Encoding::Utf8));
    }

    #[test]
    fn text_with_no_zero_byte_is_utf16_if_it_is_not_utf8() {
        assert_eq!(detect(&wide("中文")), Some(Encoding::Utf16Le));
        assert_eq!(detect(&narrow("hi")), Some(Encoding::Utf8));
        assert_eq!(detect(&narrow("hello, world")), Some(Encoding::Utf8));
        assert_eq!(detect(&narrow("中文")), Some(Encoding::Utf8));
    }

    #[test]
    fn no_text_is_none() {
        assert_eq!(detect(&[0; 16]), None);
        assert_eq!(detect(&[]), None);
    }

    #[test]
    fn wide_text_ends_at_an_aligned_two_byte_nul() {
        // "A" then U+0100 (00 01): the zero bytes at 1..3 are not a NUL.
        let bytes = [0x41, 0, 0, 1, 0, 0];
        assert_eq!(Encoding::Utf16Le.text_len(&bytes), Some(4));
        assert_eq!(Encoding::Utf16Le.decode(&bytes[..4]), "A\u{100}");
        assert_eq!(Encoding::Utf16Le.encode("Hi", true), b"H\0i\0\0\0");
    }
}
