//! An order-preserving JSON tree with its own writer.
//!
//! Kafka's JsonConverter emits object fields in a fixed order (`type`,
//! `fields`, `optional`, `name`, ...), and connectors compare that text.
//! `serde_json::Value` sorts object keys unless the workspace-wide
//! `preserve_order` feature is on, which would change other crates' output,
//! and it reads every fraction through an `f64`, which would round
//! `NUMERIC` decimals; so the converter has this tree and a small parser
//! that keeps field order and number text.

use std::fmt;

/// A JSON number as parsed or to be written.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Number {
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    /// Number text: decimals written in `NUMERIC` format, and parsed
    /// numbers with a fraction or exponent or beyond 64 bits.
    Raw(String),
}

/// A JSON value whose objects keep their field order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        self.write(&mut out);
        out.into_bytes()
    }

    /// Appends the JSON text to `out`.
    pub(crate) fn write_to(&self, out: &mut String) {
        self.write(out);
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => write_number(n, out),
            Json::String(s) => write_string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// Non-finite floats are written as the strings `NaN`, `Infinity` and
/// `-Infinity`, as Jackson does by default.
pub(crate) fn write_number(n: &Number, out: &mut String) {
    use fmt::Write as _;
    match n {
        Number::I64(v) => {
            let _ = write!(out, "{v}");
        }
        Number::U64(v) => {
            let _ = write!(out, "{v}");
        }
        Number::F32(v) if !v.is_finite() => write_string(non_finite(f64::from(*v)), out),
        Number::F64(v) if !v.is_finite() => write_string(non_finite(*v), out),
        // serde_json formats floats with ryu: the shortest text that parses back exactly.
        Number::F32(v) => out.push_str(&serde_json::to_string(v).unwrap_or_else(|_| v.to_string())),
        Number::F64(v) => out.push_str(&serde_json::to_string(v).unwrap_or_else(|_| v.to_string())),
        Number::Raw(text) => out.push_str(text),
    }
}

fn non_finite(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// What each byte becomes in a JSON string: 0 itself, `u` a `\u00XX`
/// escape, any other a two-character escape `\<that byte>`.
static ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table
};

/// Writes `s` as a JSON string: runs that need no escape are copied whole.
pub(crate) fn write_string(s: &str, out: &mut String) {
    use fmt::Write as _;
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPES[b as usize];
        if escape == 0 {
            continue;
        }
        // Escaped bytes are ASCII, so `i` is a char boundary.
        out.push_str(&s[start..i]);
        if escape == b'u' {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push('\\');
            out.push(escape as char);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Nesting deeper than this is rejected rather than risking the stack.
const MAX_DEPTH: usize = 128;

impl Json {
    /// Parses JSON text. Numbers with a fraction or exponent (and integers
    /// beyond 64 bits) keep their text, so decimals read back exactly and
    /// floats are rounded once, by Rust's correctly rounding parser.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Json, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8: {e}"))?;
        let mut p = Parser { s: text.as_bytes(), text, pos: 0 };
        p.skip_ws();
        let value = p.value(0)?;
        p.skip_ws();
        if p.pos != p.s.len() {
            return Err(p.error("trailing characters"));
        }
        Ok(value)
    }
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.pos) == Some(&b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a JSON value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        match self.s.get(self.pos) {
            None => Err(self.error("unexpected end of input")),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.eat(b']') {
                    return Ok(Json::Array(items));
                }
                loop {
                    self.skip_ws();
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    if self.eat(b']') {
                        return Ok(Json::Array(items));
                    }
                    if !self.eat(b',') {
                        return Err(self.error("expected `,` or `]`"));
                    }
                }
            }
            Some(b'{') => {
                self.pos += 1;
                let mut fields = Vec::new();
                self.skip_ws();
                if self.eat(b'}') {
                    return Ok(Json::Object(fields));
                }
                loop {
                    self.skip_ws();
                    if self.s.get(self.pos) != Some(&b'"') {
                        return Err(self.error("expected a string key"));
                    }
                    let key = self.string()?;
                    self.skip_ws();
                    if !self.eat(b':') {
                        return Err(self.error("expected `:`"));
                    }
                    self.skip_ws();
                    fields.push((key, self.value(depth + 1)?));
                    self.skip_ws();
                    if self.eat(b'}') {
                        return Ok(Json::Object(fields));
                    }
                    if !self.eat(b',') {
                        return Err(self.error("expected `,` or `}`"));
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a JSON value")),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.pos;
        self.eat(b'-');
        let int_start = self.pos;
        let int_digits = self.digits();
        if int_digits == 0 || (int_digits > 1 && self.s[int_start] == b'0') {
            return Err(self.error("invalid number"));
        }
        let mut integral = true;
        if self.eat(b'.') {
            integral = false;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if self.eat(b'e') || self.eat(b'E') {
            integral = false;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        let text = &self.text[start..self.pos];
        if integral {
            if let Ok(v) = text.parse::<i64>() {
                return Ok(Json::Number(Number::I64(v)));
            }
            if let Ok(v) = text.parse::<u64>() {
                return Ok(Json::Number(Number::U64(v)));
            }
        }
        Ok(Json::Number(Number::Raw(text.to_string())))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let hex = self.text.get(self.pos..self.pos + 4).ok_or_else(|| self.error("truncated \\u escape"))?;
        let v = u32::from_str_radix(hex, 16).map_err(|_| self.error("invalid \\u escape"))?;
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(&b) = self.s.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[start..self.pos]);
            match self.s.get(self.pos) {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let esc = *self.s.get(self.pos).ok_or_else(|| self.error("unterminated string"))?;
                    self.pos += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{08}'),
                        b'f' => out.push('\u{0c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&hi) {
                                if !(self.eat(b'\\') && self.eat(b'u')) {
                                    return Err(self.error("unpaired surrogate"));
                                }
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return Err(self.error("unpaired surrogate"));
                                }
                                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                            } else {
                                hi
                            };
                            out.push(char::from_u32(code).ok_or_else(|| self.error("unpaired surrogate"))?);
                        }
                        _ => return Err(self.error("invalid escape")),
                    }
                }
                Some(_) => return Err(self.error("control character in string")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_field_order_both_ways() {
        let text = r#"{"z":1,"a":[true,null,-2,1.5],"m":{"y":"\"q\"\n","b":18446744073709551615}}"#;
        let json = Json::parse(text.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(json.to_bytes()).unwrap(), text);
    }

    #[test]
    fn non_finite_floats_are_written_as_jackson_strings() {
        let json =
            Json::Array(vec![Json::Number(Number::F64(f64::NAN)), Json::Number(Number::F32(f32::INFINITY))]);
        assert_eq!(json.to_bytes(), br#"["NaN","Infinity"]"#);
    }

    #[test]
    fn floats_use_the_shortest_exact_text() {
        let json = Json::Array(vec![Json::Number(Number::F32(1.1)), Json::Number(Number::F64(0.1))]);
        assert_eq!(json.to_bytes(), b"[1.1,0.1]");
    }
}

#[cfg(test)]
mod parser_tests {
    use super::*;

    #[test]
    fn numbers_keep_their_text_unless_integral() {
        let json =
            Json::parse(b"[1, -2, 18446744073709551615, 1.50, 2e3, 123456789012345678901234]").unwrap();
        let n = |v: Number| Json::Number(v);
        assert_eq!(
            json,
            Json::Array(vec![
                n(Number::I64(1)),
                n(Number::I64(-2)),
                n(Number::U64(u64::MAX)),
                n(Number::Raw("1.50".into())),
                n(Number::Raw("2e3".into())),
                n(Number::Raw("123456789012345678901234".into())),
            ])
        );
    }

    #[test]
    fn escapes_and_surrogate_pairs_decode() {
        let json = Json::parse(br#""a\"\\\/\n\u00e9\ud83d\ude00""#).unwrap();
        assert_eq!(json, Json::String("a\"\\/\n\u{e9}\u{1f600}".into()));
    }

    #[test]
    fn malformed_input_is_rejected_with_a_position() {
        for bad in
            [&b"{"[..], b"[1,]", b"01", b"1.", b"\"\\x\"", b"\"\\ud800\"", b"tru", b"{} x", b"\"a\nb\""]
        {
            assert!(Json::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(Json::parse(b"[1 2]").unwrap_err(), "expected `,` or `]` at byte 3");
        let deep = "[".repeat(200);
        assert!(Json::parse(deep.as_bytes()).unwrap_err().starts_with("nesting too deep"));
    }
}

#[cfg(test)]
mod write_string_tests {
    use super::write_string;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut every_ascii: String = (0u8..0x80).map(char::from).collect();
        every_ascii.push_str("é ü 😀 \u{2028} end");
        for s in [String::new(), "plain".to_string(), "\"\\".to_string(), every_ascii] {
            let mut out = String::new();
            write_string(&s, &mut out);
            assert_eq!(out, serde_json::to_string(&s).unwrap(), "{s:?}");
        }
    }
}
