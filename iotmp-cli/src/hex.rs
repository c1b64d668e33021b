//! Hex text as people paste it: `0A 04 08`, `0A0408`, `0x0A, 0x04`, several lines, `#` comments.
//!
//! Every token (a run between whitespace, commas or colons) must hold whole bytes, i.e. an even
//! number of digits: a lone `A` is refused rather than guessed as `0A`, because a dropped digit
//! would shift every following byte and the decoder would report nonsense far from the typo.

use std::fmt::Write as _;

use thiserror::Error;

/// Text that is not hex, with its position (1-based line and column, in characters).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum HexError {
    /// A character that is not a hex digit.
    #[error("line {line}, column {column}: {found:?} is not a hex digit")]
    NotHex {
        /// 1-based line.
        line: usize,
        /// 1-based column of the character.
        column: usize,
        /// The character.
        found: char,
    },
    /// A token with an odd number of digits.
    #[error("line {line}, column {column}: {token:?} has an odd number of hex digits")]
    OddDigits {
        /// 1-based line.
        line: usize,
        /// 1-based column of the token.
        column: usize,
        /// The token.
        token: String,
    },
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || c == ',' || c == ':'
}

/// The tokens of one line: (1-based column, text).
fn tokens(code: &str) -> Vec<(usize, &str)> {
    let mut tokens = Vec::new();
    let mut start: Option<(usize, usize)> = None;
    for (column, (byte, c)) in code.char_indices().enumerate() {
        if is_separator(c) {
            if let Some((from, col)) = start.take() {
                tokens.extend(code.get(from..byte).map(|t| (col + 1, t)));
            }
        } else if start.is_none() {
            start = Some((byte, column));
        }
    }
    if let Some((from, col)) = start {
        tokens.extend(code.get(from..).map(|t| (col + 1, t)));
    }
    tokens
}

/// Parses hex text into bytes.
pub(crate) fn parse(text: &str) -> Result<Vec<u8>, HexError> {
    let mut bytes = Vec::with_capacity(text.len() / 2);
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let code = line.split('#').next().unwrap_or_default();
        for (column, token) in tokens(code) {
            let (digits, skipped) = match token.strip_prefix("0x").or(token.strip_prefix("0X")) {
                Some(rest) => (rest, 2),
                None => (token, 0),
            };
            let mut high: Option<u8> = None;
            for (i, c) in digits.chars().enumerate() {
                let Some(value) = c.to_digit(16) else {
                    return Err(HexError::NotHex {
                        line: line_no,
                        column: column + skipped + i,
                        found: c,
                    });
                };
                // to_digit(16) is below 16, so the narrowing is exact.
                let nibble = value as u8;
                match high.take() {
                    None => high = Some(nibble),
                    Some(h) => bytes.push(h << 4 | nibble),
                }
            }
            if high.is_some() || digits.is_empty() {
                return Err(HexError::OddDigits {
                    line: line_no,
                    column,
                    token: token.to_owned(),
                });
            }
        }
    }
    Ok(bytes)
}

/// Formats bytes the way the spec's vectors do: upper case, one space between bytes.
pub(crate) fn format(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        let _ = write!(text, "{b:02X}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_spellings() {
        let expected = vec![0x0A, 0x04, 0x08, 0x6A];
        for text in [
            "0A 04 08 6A",
            "0a04086a",
            "0A04\n086A\n",
            "0x0A, 0x04, 0x08, 0x6A",
            "0A:04:08:6A",
            "  0A 04 # a comment with 0xFF\n08 6A # more",
            "0x0A04 086a\r\n",
        ] {
            assert_eq!(parse(text), Ok(expected.clone()), "{text:?}");
        }
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(parse("# only a comment\n\n"), Ok(vec![]));
    }

    #[test]
    fn reports_where_it_went_wrong() {
        assert_eq!(
            parse("0A 04\n08 6G"),
            Err(HexError::NotHex {
                line: 2,
                column: 5,
                found: 'G'
            })
        );
        assert_eq!(
            parse("0A A 04"),
            Err(HexError::OddDigits {
                line: 1,
                column: 4,
                token: "A".into()
            })
        );
        assert_eq!(
            parse("0x"),
            Err(HexError::OddDigits {
                line: 1,
                column: 1,
                token: "0x".into()
            })
        );
        assert!(
            parse("0A 04 08 6")
                .unwrap_err()
                .to_string()
                .contains("odd number")
        );
    }

    #[test]
    fn formats_like_the_vectors() {
        assert_eq!(format(&[0x0A, 0xff, 0x00]), "0A FF 00");
        assert_eq!(format(&[]), "");
    }
}
