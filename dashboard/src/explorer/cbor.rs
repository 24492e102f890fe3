//! A small CBOR (RFC 8949) decoder for the payload viewer: a payload becomes indented
//! diagnostic notation (section 8: `{"t": 21.5, 1: h'01ff'}`), one item per line inside
//! maps and arrays. Definite and indefinite lengths, tags, simple values and half,
//! single and double floats. Peer input: every length is checked against the bytes
//! that are there, nesting is bounded, and nothing panics.

use std::fmt::Write;

/// Nesting deeper than this is refused (a hostile payload could nest deeply).
const MAX_DEPTH: usize = 64;

/// Why a payload is not CBOR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// The payload ends inside an item.
    #[error("ends inside an item at byte {0}")]
    Truncated(usize),
    /// A reserved additional-information value (28 to 30), or a misplaced break.
    #[error("malformed item at byte {0}")]
    Malformed(usize),
    /// A text string that is not UTF-8.
    #[error("text string at byte {0} is not UTF-8")]
    Utf8(usize),
    /// Nesting beyond [`MAX_DEPTH`].
    #[error("nested more than {MAX_DEPTH} deep")]
    TooDeep,
    /// Bytes after the first item.
    #[error("{0} bytes after the first item")]
    Trailing(usize),
}

/// `payload` (exactly one CBOR item) in indented diagnostic notation.
pub fn render(payload: &[u8]) -> Result<String, CborError> {
    let mut decoder = Decoder {
        bytes: payload,
        at: 0,
    };
    let mut out = String::new();
    decoder.item(&mut out, 0)?;
    match payload.len() - decoder.at {
        0 => Ok(out),
        rest => Err(CborError::Trailing(rest)),
    }
}

/// Whether `payload` is exactly one CBOR map or array: what the viewer guesses CBOR
/// for (a lone number or string could be anything).
pub fn looks_like(payload: &[u8]) -> bool {
    matches!(payload.first().map(|b| b >> 5), Some(4 | 5)) && render(payload).is_ok()
}

/// The reading position in the payload.
struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// What an item's head says.
enum Head {
    /// Major type and its argument.
    Value(u8, u64),
    /// Major type of an indefinite-length item.
    Indefinite(u8),
    /// A float of this many bytes (2, 4 or 8) with these bits.
    Float(u8, u64),
    /// The "break" stop code.
    Break,
}

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CborError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(CborError::Truncated(self.at))?;
        let bytes = &self.bytes[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn head(&mut self) -> Result<Head, CborError> {
        let start = self.at;
        let first = self.take(1)?[0];
        let (major, info) = (first >> 5, first & 0x1f);
        let argument = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let bytes = self.take(1 << (info - 24))?;
                bytes.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b))
            }
            31 if major == 7 => return Ok(Head::Break),
            31 if matches!(major, 2..=5) => return Ok(Head::Indefinite(major)),
            _ => return Err(CborError::Malformed(start)),
        };
        if major == 7 && (25..=27).contains(&info) {
            return Ok(Head::Float(1 << (info - 24), argument));
        }
        Ok(Head::Value(major, argument))
    }

    /// A length argument as a `usize` no larger than the bytes left (each element
    /// takes at least one byte), so a huge declared length fails instead of looping.
    fn length(&self, n: u64) -> Result<usize, CborError> {
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len() - self.at)
            .ok_or(CborError::Truncated(self.at))
    }

    fn item(&mut self, out: &mut String, depth: usize) -> Result<(), CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::TooDeep);
        }
        let start = self.at;
        match self.head()? {
            Head::Break => Err(CborError::Malformed(start)),
            Head::Value(0, n) => {
                let _ = write!(out, "{n}");
                Ok(())
            }
            Head::Value(1, n) => {
                let _ = write!(out, "{}", -1 - i128::from(n));
                Ok(())
            }
            Head::Value(2, n) => {
                let n = self.length(n)?;
                let bytes = self.take(n)?;
                out.push_str("h'");
                for b in bytes {
                    let _ = write!(out, "{b:02x}");
                }
                out.push('\'');
                Ok(())
            }
            Head::Value(3, n) => {
                let n = self.length(n)?;
                let bytes = self.take(n)?;
                let text = std::str::from_utf8(bytes).map_err(|_| CborError::Utf8(start))?;
                out.push_str(&serde_json::Value::from(text).to_string());
                Ok(())
            }
            Head::Value(4, n) => {
                let n = self.length(n)?;
                self.sequence(out, depth, ('[', ']'), Some(n), false)
            }
            Head::Value(5, n) => {
                let n = self.length(n)?;
                self.sequence(out, depth, ('{', '}'), Some(n), true)
            }
            Head::Value(6, tag) => {
                let _ = write!(out, "{tag}(");
                self.item(out, depth + 1)?;
                out.push(')');
                Ok(())
            }
            Head::Value(7, n) => {
                simple(out, n);
                Ok(())
            }
            Head::Float(width, bits) => {
                let value = match width {
                    2 => half(bits as u16),
                    4 => f64::from(f32::from_bits(bits as u32)),
                    _ => f64::from_bits(bits),
                };
                float(out, value);
                Ok(())
            }
            Head::Value(_, _) => Err(CborError::Malformed(start)),
            Head::Indefinite(2 | 3) => {
                // Chunks of the same major type, shown as such: (_ h'01', h'02').
                out.push_str("(_ ");
                let mut first = true;
                loop {
                    let chunk = self.at;
                    if let Head::Break = self.peek_break()? {
                        break;
                    }
                    if !first {
                        out.push_str(", ");
                    }
                    first = false;
                    self.item(out, depth + 1)?;
                    if self.bytes[chunk] >> 5 != self.bytes[start] >> 5 {
                        return Err(CborError::Malformed(chunk));
                    }
                }
                out.push(')');
                Ok(())
            }
            Head::Indefinite(4) => self.sequence(out, depth, ('[', ']'), None, false),
            Head::Indefinite(_) => self.sequence(out, depth, ('{', '}'), None, true),
        }
    }

    /// Consumes a break if one is next.
    fn peek_break(&mut self) -> Result<Head, CborError> {
        match self.bytes.get(self.at) {
            None => Err(CborError::Truncated(self.at)),
            Some(0xff) => {
                self.at += 1;
                Ok(Head::Break)
            }
            Some(_) => Ok(Head::Value(0, 0)),
        }
    }

    /// An array or map of `count` entries (`None`: until a break), one per line.
    fn sequence(
        &mut self,
        out: &mut String,
        depth: usize,
        (open, close): (char, char),
        count: Option<usize>,
        pairs: bool,
    ) -> Result<(), CborError> {
        out.push(open);
        let indent = "  ".repeat(depth + 1);
        let mut n = 0;
        loop {
            match count {
                Some(count) if n == count => break,
                None => {
                    if let Head::Break = self.peek_break()? {
                        break;
                    }
                }
                _ => {}
            }
            out.push_str(if n == 0 { "\n" } else { ",\n" });
            out.push_str(&indent);
            self.item(out, depth + 1)?;
            if pairs {
                out.push_str(": ");
                self.item(out, depth + 1)?;
            }
            n += 1;
        }
        if n > 0 {
            out.push('\n');
            out.push_str(&"  ".repeat(depth));
        }
        out.push(close);
        Ok(())
    }
}

/// Major type 7 below 24 and with a one-byte argument: simple values.
fn simple(out: &mut String, n: u64) {
    let _ = match n {
        20 => write!(out, "false"),
        21 => write!(out, "true"),
        22 => write!(out, "null"),
        23 => write!(out, "undefined"),
        other => write!(out, "simple({other})"),
    };
}

/// A float as diagnostic notation writes it (`1.0`, `1.1`, `5.960464477539063e-8`,
/// `Infinity`, `NaN`).
fn float(out: &mut String, value: f64) {
    let _ = match value {
        v if v.is_nan() => write!(out, "NaN"),
        v if v.is_infinite() => write!(out, "{}Infinity", if v < 0.0 { "-" } else { "" }),
        v => write!(out, "{v:?}"),
    };
}

/// An IEEE 754 half-precision float (RFC 8949, appendix D).
fn half(bits: u16) -> f64 {
    let exponent = (bits >> 10) & 0x1f;
    let mantissa = f64::from(bits & 0x3ff);
    let value = match exponent {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (mantissa + 1024.0) * 2f64.powi(i32::from(e) - 25),
    };
    if bits & 0x8000 != 0 { -value } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn scalars_follow_the_rfcs_examples() {
        // RFC 8949, appendix A.
        for (cbor, diagnostic) in [
            ("00", "0"),
            ("17", "23"),
            ("1818", "24"),
            ("1903e8", "1000"),
            ("1bffffffffffffffff", "18446744073709551615"),
            ("20", "-1"),
            ("3903e7", "-1000"),
            ("f93c00", "1.0"),
            ("f9c400", "-4.0"),
            ("f97c00", "Infinity"),
            ("f90001", "5.960464477539063e-8"),
            ("fa47c35000", "100000.0"),
            ("fb3ff199999999999a", "1.1"),
            ("f4", "false"),
            ("f5", "true"),
            ("f6", "null"),
            ("f7", "undefined"),
            ("f0", "simple(16)"),
            (
                "c074323031332d30332d32315432303a30343a30305a",
                "0(\"2013-03-21T20:04:00Z\")",
            ),
            ("4401020304", "h'01020304'"),
            ("6449455446", "\"IETF\""),
            ("62225c", "\"\\\"\\\\\""),
            ("5f42010243030405ff", "(_ h'0102', h'030405')"),
        ] {
            assert_eq!(render(&hex(cbor)).as_deref(), Ok(diagnostic), "{cbor}");
        }
    }

    #[test]
    fn maps_and_arrays_are_indented() {
        // {"a": 1, "b": [2, 3]}
        assert_eq!(
            render(&hex("a26161016162820203")).expect("CBOR"),
            "{\n  \"a\": 1,\n  \"b\": [\n    2,\n    3\n  ]\n}"
        );
        // Indefinite: [_ 1, [2]] and {_ "x": []}
        assert_eq!(
            render(&hex("9f018102ff")).expect("CBOR"),
            "[\n  1,\n  [\n    2\n  ]\n]"
        );
        assert_eq!(
            render(&hex("bf617880ff")).expect("CBOR"),
            "{\n  \"x\": []\n}"
        );
        assert_eq!(render(&hex("a0")).expect("CBOR"), "{}");
        assert!(looks_like(&hex("a26161016162820203")));
        assert!(!looks_like(&hex("1903e8")));
        assert!(!looks_like(b"{\"a\":1}"));
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        assert_eq!(render(&hex("")), Err(CborError::Truncated(0)));
        assert_eq!(render(&hex("1903")), Err(CborError::Truncated(1)));
        assert_eq!(render(&hex("62c3")), Err(CborError::Truncated(1)));
        assert_eq!(render(&hex("62c328")), Err(CborError::Utf8(0)));
        assert_eq!(render(&hex("1c")), Err(CborError::Malformed(0)));
        assert_eq!(render(&hex("ff")), Err(CborError::Malformed(0)));
        assert_eq!(render(&hex("0000")), Err(CborError::Trailing(1)));
        // A declared length far beyond the payload fails at once.
        assert!(render(&hex("9bffffffffffffffff00")).is_err());
        assert!(render(&hex("5f01ff")).is_err(), "a chunk of another type");
        let deep = vec![0x81; 1000];
        assert_eq!(render(&deep), Err(CborError::TooDeep));
        for len in 0..12 {
            let _ = render(&hex("a26161016162820203")[..len.min(9)]);
        }
    }
}
