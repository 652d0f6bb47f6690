//! Untrusted text made safe for a terminal: what a peer, the mailbox server or the daemon says
//! (errors, the message of the day, warnings, offered names, codes, a received text) is shown,
//! never obeyed.
//!
//! A terminal acts on control characters: `ESC ] 0 ; … BEL` sets the window title, `ESC [ 2 J`
//! clears the screen, `ESC [ 8 m` hides what follows, a carriage return overwrites a line, and
//! on some terminals the C1 character U+009B alone starts a control sequence. The bidi
//! embedding, override and isolate controls reorder what follows them on screen (the "Trojan
//! Source" trick), so a name can read as something else. [`escape`] writes all of these as
//! visible escapes, in the form of Python's `repr(text)[1:-1]` (what the reference CLI prints):
//! `\n`, `\r`, `\t`, `\x1b`, `\x7f`, `\x9b`, `\u202e`. Everything else, every printable
//! character of every script and emoji (joiners included), is kept as is.
//!
//! Two layouts:
//!
//! - [`Layout::Line`], for one line of a message: newlines and tabs are escaped too, so a
//!   message stays on its line and cannot fake another (`Error: …\nok? (y/N)`), and a backslash
//!   is doubled, as `repr` does, so that an escape seen is an escape made here.
//! - [`Layout::Text`], for a received text on a terminal: newlines and tabs are kept, so a
//!   multi-line text reads as written, and so are backslashes (a path or a regular expression
//!   reads as sent). A text that goes to a pipe or a file is not escaped at all.
//!
//! Inputs: a `&str` (the control protocol's strings are always UTF-8). Output: the same text
//! when nothing needs escaping (borrowed), else an escaped copy. Pure; no state.

use std::borrow::Cow;
use std::fmt::Write;

/// What the escaped text is part of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// One line of a message: every control character is escaped, newline and tab included,
    /// and a backslash is doubled.
    Line,
    /// A received text on a terminal: newline, tab and backslash are kept; every other control
    /// character is escaped.
    Text,
}

/// `text` as it may reach a terminal in `layout` (module docs).
pub(crate) fn escape(text: &str, layout: Layout) -> Cow<'_, str> {
    let Some(first) = text.find(|c| needs_escape(c, layout)) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        if !needs_escape(c, layout) {
            out.push(c);
            continue;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Writing to a String cannot fail.
            '\0'..='\u{ff}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            _ => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
        }
    }
    Cow::Owned(out)
}

/// One line of a message, escaped: `escape(text, Layout::Line)`.
pub(crate) fn line(text: &str) -> Cow<'_, str> {
    escape(text, Layout::Line)
}

/// Whether `c` is written as an escape in `layout`.
fn needs_escape(c: char, layout: Layout) -> bool {
    match c {
        '\n' | '\t' | '\\' => layout == Layout::Line,
        // C0, DEL, C1.
        '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        // Bidi embeddings and overrides (LRE, RLE, PDF, LRO, RLO) and isolates (LRI, RLI, FSI,
        // PDI).
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The issue's hostile error message.
    const HOSTILE: &str = "\u{1b}]0;PWNED\u{7}\u{1b}[2J\u{1b}[31mEVIL...ok? (y/N) \u{1b}[8m";

    #[test]
    fn every_c0_character_is_escaped_in_a_line() {
        for byte in 0u8..0x20 {
            let c = char::from(byte);
            let expected = match c {
                '\n' => "\\n".to_owned(),
                '\r' => "\\r".to_owned(),
                '\t' => "\\t".to_owned(),
                _ => format!("\\x{byte:02x}"),
            };
            let text = format!("a{c}b");
            assert_eq!(line(&text), format!("a{expected}b"), "{byte:#04x}");
        }
    }

    #[test]
    fn text_keeps_newlines_and_tabs_only() {
        for byte in 0u8..0x20 {
            let c = char::from(byte);
            let text = format!("a{c}b");
            let escaped = escape(&text, Layout::Text);
            if c == '\n' || c == '\t' {
                assert!(matches!(escaped, Cow::Borrowed(_)), "{byte:#04x} is kept");
            } else {
                assert!(!escaped.contains(c), "{byte:#04x} is escaped: {escaped:?}");
                assert_eq!(escaped, line(&text), "{byte:#04x} as in a line");
            }
        }
        assert_eq!(
            escape("one\n\ttwo\r\nthree\\n", Layout::Text),
            "one\n\ttwo\\r\nthree\\n"
        );
    }

    #[test]
    fn del_and_every_c1_character_are_escaped() {
        for layout in [Layout::Line, Layout::Text] {
            assert_eq!(escape("\u{7f}", layout), "\\x7f");
            for code in 0x80u32..0xa0 {
                let c = char::from_u32(code).expect("C1 characters are chars");
                assert_eq!(
                    escape(&c.to_string(), layout),
                    format!("\\x{code:02x}"),
                    "{code:#x}"
                );
            }
        }
        // U+00A0 (no-break space) and Latin-1 letters are printable.
        assert_eq!(line("\u{a0}é"), "\u{a0}é");
    }

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        let escaped = line(HOSTILE);
        assert_eq!(
            escaped,
            "\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mEVIL...ok? (y/N) \\x1b[8m"
        );
        assert!(escaped.chars().all(|c| !c.is_control()), "{escaped:?}");
        assert_eq!(
            escape(HOSTILE, Layout::Text),
            escaped,
            "no newline or backslash in it"
        );
        // CSI as one C1 character, and a carriage return faking a prompt.
        assert_eq!(line("x\u{9b}2Jy\rok? (y/N)"), "x\\x9b2Jy\\rok? (y/N)");
    }

    #[test]
    fn bidi_controls_are_escaped() {
        let text = "invoice\u{202e}fdp.exe \u{2066}a\u{2069} \u{202a}\u{202b}\u{202c}\u{202d}\u{2067}\u{2068}";
        for layout in [Layout::Line, Layout::Text] {
            assert_eq!(
                escape(text, layout),
                "invoice\\u202efdp.exe \\u2066a\\u2069 \
                 \\u202a\\u202b\\u202c\\u202d\\u2067\\u2068"
            );
        }
    }

    #[test]
    fn backslashes_are_doubled_in_a_line_only() {
        assert_eq!(line(r"C:\temp\x1b"), r"C:\\temp\\x1b");
        assert!(matches!(
            escape(r"C:\temp\x1b", Layout::Text),
            Cow::Borrowed(r"C:\temp\x1b")
        ));
    }

    #[test]
    fn valid_unicode_is_kept_and_borrowed() {
        let texts = [
            "",
            "hello",
            "héllo wörld ✓ 日本語 🎉",
            "שלום עולם مرحبا",
            // A family emoji (zero-width joiners) and a flag.
            "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467} \u{1f1eb}\u{1f1f7}",
            "quotes ' \" and spaces  ",
        ];
        for text in texts {
            for layout in [Layout::Line, Layout::Text] {
                let escaped = escape(text, layout);
                assert!(matches!(escaped, Cow::Borrowed(t) if t == text), "{text:?}");
            }
        }
    }

    #[test]
    fn escaping_is_python_repr_without_the_quotes() {
        // repr("a\x00\x1b[0m\x7f\x85\u202e\\b\n\t") in Python 3.11, quotes removed.
        assert_eq!(
            line("a\u{0}\u{1b}[0m\u{7f}\u{85}\u{202e}\\b\n\t"),
            "a\\x00\\x1b[0m\\x7f\\x85\\u202e\\\\b\\n\\t"
        );
    }
}
