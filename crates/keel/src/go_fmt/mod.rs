//! The few renderings of Go's `fmt` that etcd's text formats rely on: `%q` of a
//! byte slice (Go's `strconv.Quote`) and `%v` of slices (`[1 2 3]`).
//!
//! They are `Display` adapters so that log lines can use them without building
//! an intermediate `String`. The module sits at the bottom of the crate (the
//! wire types' error texts and the state machine's log lines quote with it);
//! [`crate::describe`] re-exports the quoting for applications.

mod print_table;

use std::fmt::{self, Write as _};

use print_table::PRINTABLE;

/// Go's `%q` of a `[]byte`: a double-quoted Go string literal, exactly as
/// `strconv.Quote(string(data))` writes it. Valid UTF-8 that Go deems
/// printable is kept as is (also outside ASCII); `\a \b \f \n \r \t \v`, `\\`
/// and `\"` are escaped by name; other control characters become `\xNN`,
/// other unprintable runes `\uNNNN` or `\UNNNNNNNN`, and every byte that is
/// not part of valid UTF-8 `\xNN`.
#[derive(Clone, Copy, Debug)]
pub struct GoQuoted<'a>(pub &'a [u8]);

/// Go's `%v` of a slice: the elements' own `%v` forms, space-separated, in
/// brackets (`[1 2 3]`; an empty or nil slice is `[]`). For `u8` elements this
/// is also how Go prints a `[]byte` with `%v` (`[114 101 113]`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GoSlice<'a, T>(pub(crate) &'a [T]);

/// [`GoQuoted`] as a `String`; the default entry formatter of etcd's
/// `DescribeEntry` and the one its interaction tests use.
pub fn go_quote(data: &[u8]) -> String {
    GoQuoted(data).to_string()
}

/// Whether Go's `strconv.IsPrint` holds for `c`: letters, marks, numbers,
/// punctuation, symbols and the ASCII space (Unicode 15.0.0, as Go 1.26).
pub(crate) fn go_is_print(c: char) -> bool {
    let c = u32::from(c);
    if c < 0x80 {
        return (0x20..0x7f).contains(&c);
    }
    // The last range starting at or before `c` decides.
    let after = PRINTABLE.partition_point(|&(first, _)| first <= c);
    after > 0 && c <= PRINTABLE[after - 1].1
}

impl fmt::Display for GoQuoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for chunk in self.0.utf8_chunks() {
            let valid = chunk.valid();
            // Runs of plain ASCII are copied in one go: the common case.
            let mut rest = valid;
            while !rest.is_empty() {
                let plain = rest
                    .bytes()
                    .position(|b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')
                    .unwrap_or(rest.len());
                f.write_str(&rest[..plain])?;
                rest = &rest[plain..];
                let mut chars = rest.chars();
                if let Some(c) = chars.next() {
                    write_escaped_rune(f, c)?;
                    rest = chars.as_str();
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        f.write_char('"')
    }
}

/// One rune of a Go quoted string (quote character `"`).
fn write_escaped_rune(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    if c == '"' || c == '\\' {
        f.write_char('\\')?;
        return f.write_char(c);
    }
    if go_is_print(c) {
        return f.write_char(c);
    }
    match c {
        '\u{07}' => f.write_str("\\a"),
        '\u{08}' => f.write_str("\\b"),
        '\u{0c}' => f.write_str("\\f"),
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        '\u{0b}' => f.write_str("\\v"),
        c if c < ' ' || c == '\u{7f}' => write!(f, "\\x{:02x}", u32::from(c)),
        c if u32::from(c) < 0x10000 => write!(f, "\\u{:04x}", u32::from(c)),
        c => write!(f, "\\U{:08x}", u32::from(c)),
    }
}

impl<T: fmt::Display> fmt::Display for GoSlice<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('[')?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char(' ')?;
            }
            write!(f, "{v}")?;
        }
        f.write_char(']')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected strings are what Go's `fmt.Sprintf("%q", []byte(..))` prints.
    #[test]
    fn quote_matches_go() {
        let cases: &[(&[u8], &str)] = &[
            (b"", r#""""#),
            (b"prop_1", r#""prop_1""#),
            (b"a b~", r#""a b~""#),
            (b"\"quoted\" \\ back", r#""\"quoted\" \\ back""#),
            (b"'single'", r#""'single'""#),
            (b"\x07\x08\x0c\n\r\t\x0b", r#""\a\b\f\n\r\t\v""#),
            (b"\x00\x01\x1b\x1f\x7f", r#""\x00\x01\x1b\x1f\x7f""#),
            // Invalid UTF-8: every offending byte on its own.
            (b"\x80\xff\xfe", r#""\x80\xff\xfe""#),
            (b"a\xc3", r#""a\xc3""#),
            (b"\xc3\x28", r#""\xc3(""#),
            (b"\xe2\x82", r#""\xe2\x82""#),
            (b"\xe2\x82(", r#""\xe2\x82(""#),
            // Surrogates and overlong forms are invalid in Go too.
            (b"\xed\xa0\x80", r#""\xed\xa0\x80""#),
            (b"\xc0\xaf", r#""\xc0\xaf""#),
            (b"\xf4\x90\x80\x80", r#""\xf4\x90\x80\x80""#),
            // Printable non-ASCII stays.
            ("héllo wörld".as_bytes(), "\"héllo wörld\""),
            ("日本語".as_bytes(), "\"日本語\""),
            ("\u{1F600}".as_bytes(), "\"\u{1F600}\""),
            ("\u{FFFD}".as_bytes(), "\"\u{FFFD}\""),
            ("e\u{301}".as_bytes(), "\"e\u{301}\""),
            // Unprintable non-ASCII: C1 controls, NBSP (a space other than
            // U+0020), soft hyphen (Cf), BOM, line separator, private use,
            // unassigned, and a supplementary-plane format character.
            ("\u{80}\u{9f}".as_bytes(), r#""\u0080\u009f""#),
            ("\u{a0}".as_bytes(), r#""\u00a0""#),
            ("\u{ad}".as_bytes(), r#""\u00ad""#),
            ("\u{feff}".as_bytes(), r#""\ufeff""#),
            ("\u{2028}".as_bytes(), r#""\u2028""#),
            ("\u{e000}".as_bytes(), r#""\ue000""#),
            ("\u{378}".as_bytes(), r#""\u0378""#),
            ("\u{e0001}".as_bytes(), r#""\U000e0001""#),
            ("\u{10ffff}".as_bytes(), r#""\U0010ffff""#),
            // Mixed.
            (b"k=\xffv\n", r#""k=\xffv\n""#),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn is_print_edges() {
        for c in [' ', '~', 'a', '\u{a1}', '\u{ac}', '\u{ae}', '\u{377}', '\u{fffd}'] {
            assert!(go_is_print(c), "{c:?}");
        }
        for c in ['\u{1f}', '\u{7f}', '\u{a0}', '\u{ad}', '\u{378}', '\u{3000}', '\u{10ffff}'] {
            assert!(!go_is_print(c), "{c:?}");
        }
        // Unicode 15.0 additions are printable (e.g. U+1FAE8, U+31350).
        assert!(go_is_print('\u{1fae8}'));
        assert!(go_is_print('\u{31350}'));
    }

    #[test]
    fn print_table_is_sorted_and_disjoint() {
        assert!(PRINTABLE.iter().all(|&(a, b)| a <= b));
        assert!(PRINTABLE.windows(2).all(|w| w[0].1 + 1 < w[1].0));
    }

    #[test]
    fn slices_print_like_go_v() {
        assert_eq!(GoSlice::<u64>(&[]).to_string(), "[]");
        assert_eq!(GoSlice(&[1u64, 2, 3]).to_string(), "[1 2 3]");
        assert_eq!(GoSlice(b"req").to_string(), "[114 101 113]");
        assert_eq!(GoSlice(&[true, false]).to_string(), "[true false]");
    }
}
