//! Java `SimpleDateFormat` patterns translated to chrono, always in UTC (as
//! Kafka's `TimestampConverter` and `TimestampRouter` use them).
//!
//! Supported letters: `y` (`yy`, `yyyy`), `M` (`M`, `MM`, `MMM`, `MMMM`),
//! `d`, `D`, `H`, `h`, `m`, `s`, `SSS` (milliseconds), `a`, `E`, `Z`, `X`;
//! quoted literals (`'T'`, `''` for a quote) and any non-letter character.

use chrono::format::{Item, Parsed, StrftimeItems};

/// A compiled pattern.
#[derive(Clone, Debug)]
pub(crate) struct DateFormat {
    pattern: String,
    items: Vec<Item<'static>>,
}

impl PartialEq for DateFormat {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl DateFormat {
    /// Compiles a Java pattern; the error says which part is unsupported.
    pub(crate) fn new(pattern: &str) -> Result<DateFormat, String> {
        let strftime = translate(pattern)?;
        let items = StrftimeItems::new(&strftime)
            .parse_to_owned()
            .map_err(|e| format!("pattern `{pattern}` is not usable: {e}"))?;
        Ok(DateFormat { pattern: pattern.to_string(), items })
    }

    /// Formats epoch millis in UTC.
    pub(crate) fn format(&self, millis: i64) -> Result<String, String> {
        let t = chrono::DateTime::from_timestamp_millis(millis)
            .ok_or_else(|| format!("timestamp {millis} is out of range"))?;
        Ok(t.naive_utc().format_with_items(self.items.iter()).to_string())
    }

    /// Parses text to epoch millis (UTC unless the pattern has a zone);
    /// missing parts default to 1970-01-01 00:00:00.000.
    pub(crate) fn parse(&self, text: &str) -> Result<i64, String> {
        let fail =
            |e: &dyn std::fmt::Display| format!("`{text}` does not match pattern `{}`: {e}", self.pattern);
        let mut p = Parsed::new();
        chrono::format::parse(&mut p, text, self.items.iter()).map_err(|e| fail(&e))?;
        let fill = |r: chrono::format::ParseResult<()>| r.map_err(|e| fail(&e));
        if p.year().is_none() && p.year_mod_100().is_none() {
            fill(p.set_year(1970))?;
        }
        if p.ordinal().is_none() {
            if p.month().is_none() {
                fill(p.set_month(1))?;
            }
            if p.day().is_none() {
                fill(p.set_day(1))?;
            }
        }
        if p.hour_div_12().is_none() {
            if p.hour_mod_12().is_none() {
                fill(p.set_hour(0))?;
            } else {
                fill(p.set_ampm(false))?;
            }
        }
        if p.minute().is_none() {
            fill(p.set_minute(0))?;
        }
        if p.second().is_none() {
            fill(p.set_second(0))?;
        }
        let offset = p.offset().unwrap_or(0);
        let naive = p.to_naive_datetime_with_offset(offset).map_err(|e| fail(&e))?;
        Ok(naive.and_utc().timestamp_millis() - i64::from(offset) * 1000)
    }
}

fn translate(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let literal = |out: &mut String, c: char| {
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated quote in pattern `{pattern}`")),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        out.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&q) => {
                        literal(&mut out, q);
                        i += 1;
                    }
                }
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            literal(&mut out, c);
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        let spec = match (c, n) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('D', _) => "%j",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', 3) => "%3f",
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('Z', _) => "%z",
            ('X', _) => "Z",
            _ => {
                return Err(format!(
                    "pattern letter `{}` in `{pattern}` is not supported",
                    c.to_string().repeat(n)
                ))
            }
        };
        out.push_str(spec);
        i += n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_iso_with_quoted_literal() {
        let f = DateFormat::new("yyyy-MM-dd'T'HH:mm:ss.SSS").unwrap();
        assert_eq!(f.format(1_641_600_000_123).unwrap(), "2022-01-08T00:00:00.123");
        assert_eq!(f.parse("2022-01-08T00:00:00.123").unwrap(), 1_641_600_000_123);
    }

    #[test]
    fn date_only_patterns_parse_to_midnight() {
        let f = DateFormat::new("yyyyMMdd").unwrap();
        assert_eq!(f.parse("19700102").unwrap(), 86_400_000);
        assert_eq!(f.format(86_400_000 + 5).unwrap(), "19700102");
    }

    #[test]
    fn doubled_quote_is_a_quote_and_percent_is_literal() {
        let f = DateFormat::new("HH'h''m'%").unwrap();
        assert_eq!(f.format(3_600_000).unwrap(), "01h'm%");
    }

    #[test]
    fn unsupported_letters_are_named() {
        assert_eq!(
            DateFormat::new("yyyy GG").unwrap_err(),
            "pattern letter `GG` in `yyyy GG` is not supported"
        );
    }

    #[test]
    fn mismatched_text_is_an_error() {
        let f = DateFormat::new("yyyy-MM-dd").unwrap();
        assert!(f
            .parse("08/01/2022")
            .unwrap_err()
            .starts_with("`08/01/2022` does not match pattern `yyyy-MM-dd`"));
    }
}
