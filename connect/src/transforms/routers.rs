//! Topic routers: `org.apache.kafka.connect.transforms.RegexRouter` and
//! `org.apache.kafka.connect.transforms.TimestampRouter`.

use std::collections::HashMap;

use regex::Regex;

use super::date_format::DateFormat;
use super::{util, TransformError, Transformation};
use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance};
use crate::record::ConnectRecord;

/// Renames the topic when the whole topic matches `regex`, with Java's
/// replacement syntax in `replacement` (`$1`, `${name}`, `\$` for a dollar).
#[derive(Clone, Debug)]
pub struct RegexRouter {
    regex: Regex,
    /// The replacement in the regex crate's syntax.
    replacement: String,
}

impl RegexRouter {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define("regex", ConfigType::String, Importance::High, "Regex matched against the whole topic.")
            .define(
                "replacement",
                ConfigType::String,
                Importance::High,
                "Replacement with $1-style group references.",
            )
    }

    /// Builds the transform.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `regex` (does not compile) or `replacement`
    /// (refers to a group the regex does not have), or a missing/unknown key.
    pub fn new(props: &HashMap<String, String>) -> Result<RegexRouter, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        let raw = p.require_string("regex")?;
        let regex = Regex::new(&format!("^(?:{raw})$"))
            .map_err(|e| ConfigError::invalid("regex", raw, format!("not a valid regex: {e}")))?;
        // Replacements keep their spaces, unlike parsed strings.
        let raw_replacement = props.get("replacement").map_or("", String::as_str);
        let replacement = java_replacement(raw_replacement, &regex)
            .map_err(|e| ConfigError::invalid("replacement", raw_replacement, e))?;
        Ok(RegexRouter { regex, replacement })
    }
}

/// Translates Java's `Matcher.appendReplacement` syntax to the regex crate's.
fn java_replacement(java: &str, regex: &Regex) -> Result<String, String> {
    let groups = regex.captures_len() - 1;
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(next) => out.push(next),
                None => return Err("character to be escaped is missing".into()),
            },
            '$' => match chars.next() {
                Some('{') => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    if regex.capture_names().flatten().all(|n| n != name) {
                        return Err(format!("no group named `{name}`"));
                    }
                    out.push_str(&format!("${{{name}}}"));
                }
                Some(d) if d.is_ascii_digit() => {
                    let mut n = d.to_digit(10).unwrap_or_default() as usize;
                    if n > groups {
                        return Err(format!("no group {n}: the regex has {groups}"));
                    }
                    // Java takes more digits while the number still names a group.
                    while let Some(next) = chars.peek().and_then(|c| c.to_digit(10)) {
                        let bigger = n * 10 + next as usize;
                        if bigger > groups {
                            break;
                        }
                        n = bigger;
                        chars.next();
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
                _ => return Err("illegal group reference after `$`".into()),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

impl Transformation for RegexRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        if let Some(caps) = self.regex.captures(&record.topic) {
            let mut topic = String::new();
            caps.expand(&self.replacement, &mut topic);
            record.topic = topic;
        }
        Ok(Some(record))
    }
}

/// Sets the topic from `topic.format`, replacing `${topic}` with the topic
/// and `${timestamp}` with the record timestamp in `timestamp.format` (UTC).
#[derive(Clone, Debug)]
pub struct TimestampRouter {
    topic_format: String,
    timestamp_format: DateFormat,
}

impl TimestampRouter {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define_with_default(
                "topic.format",
                ConfigType::String,
                "${topic}-${timestamp}",
                Importance::High,
                "Format string with ${topic} and ${timestamp} placeholders.",
            )
            .define_with_default(
                "timestamp.format",
                ConfigType::String,
                "yyyyMMdd",
                Importance::High,
                "SimpleDateFormat pattern for the timestamp.",
            )
    }

    /// Builds the transform.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `timestamp.format` (unsupported pattern) or
    /// an unknown key.
    pub fn new(props: &HashMap<String, String>) -> Result<TimestampRouter, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        let raw = p.get_string("timestamp.format").unwrap_or("yyyyMMdd");
        let timestamp_format =
            DateFormat::new(raw).map_err(|e| ConfigError::invalid("timestamp.format", raw, e))?;
        let topic_format = p.get_string("topic.format").unwrap_or("${topic}-${timestamp}").to_string();
        Ok(TimestampRouter { topic_format, timestamp_format })
    }
}

impl Transformation for TimestampRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        let ts = record.timestamp.ok_or_else(|| {
            TransformError::record(
                "TimestampRouter",
                format!("timestamp missing on record for topic `{}`", record.topic),
            )
        })?;
        let formatted =
            self.timestamp_format.format(ts).map_err(|e| TransformError::record("TimestampRouter", e))?;
        record.topic =
            self.topic_format.replace("${topic}", &record.topic).replace("${timestamp}", &formatted);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::util::tests::props;

    fn route(regex: &str, replacement: &str, topic: &str) -> String {
        let t = RegexRouter::new(&props(&[("regex", regex), ("replacement", replacement)])).unwrap();
        t.apply(ConnectRecord::new(topic, 1i64)).unwrap().unwrap().topic
    }

    #[test]
    fn regex_router_uses_java_group_references() {
        assert_eq!(route("(.*)-raw", "$1-clean", "orders-raw"), "orders-clean");
        assert_eq!(route("(?<base>[a-z]+)_(\\d+)", "${base}.v$2", "users_12"), "users.v12");
        assert_eq!(route("(.*)", "\\$$1", "x"), "$x");
        // $12 with one group is group 1 followed by a literal 2, as in Java.
        assert_eq!(route("(a)", "$12", "a"), "a2");
    }

    #[test]
    fn regex_router_needs_a_whole_topic_match() {
        assert_eq!(route("raw", "cooked", "orders-raw"), "orders-raw");
    }

    #[test]
    fn regex_router_rejects_missing_groups_naming_the_key() {
        let err = RegexRouter::new(&props(&[("regex", "(a)"), ("replacement", "$2")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value `$2` for configuration `replacement`: no group 2: the regex has 1"
        );
        let err = RegexRouter::new(&props(&[("regex", "(a"), ("replacement", "x")])).unwrap_err();
        assert_eq!(err.key(), "regex");
    }

    #[test]
    fn timestamp_router_formats_the_topic() {
        let t = TimestampRouter::new(&props(&[])).unwrap();
        let mut r = ConnectRecord::new("clicks", 1i64);
        r.timestamp = Some(1_641_600_000_123);
        assert_eq!(t.apply(r.clone()).unwrap().unwrap().topic, "clicks-20220108");
        let t = TimestampRouter::new(&props(&[
            ("topic.format", "${timestamp}/${topic}"),
            ("timestamp.format", "yyyy-MM"),
        ]))
        .unwrap();
        assert_eq!(t.apply(r).unwrap().unwrap().topic, "2022-01/clicks");
    }

    #[test]
    fn timestamp_router_needs_a_timestamp() {
        let t = TimestampRouter::new(&props(&[])).unwrap();
        let err = t.apply(ConnectRecord::new("clicks", 1i64)).unwrap_err();
        assert_eq!(err.to_string(), "TimestampRouter: timestamp missing on record for topic `clicks`");
    }
}
