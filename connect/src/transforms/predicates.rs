//! Predicates that gate transforms, with Kafka's class names
//! (`org.apache.kafka.connect.transforms.predicates.*`): `TopicNameMatches`,
//! `HasHeaderKey`, `RecordIsTombstone`.

use std::collections::HashMap;

use regex::Regex;

use super::util;
use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance, Validator};
use crate::record::ConnectRecord;

const PACKAGE: &str = "org.apache.kafka.connect.transforms.predicates.";

/// A test on a record (Kafka's `Predicate`).
pub trait Predicate: Send + Sync {
    /// Whether the record matches.
    fn test(&self, record: &ConnectRecord) -> bool;
}

/// Matches records whose whole topic name matches `pattern`.
#[derive(Clone, Debug)]
pub struct TopicNameMatches {
    pattern: Regex,
}

impl TopicNameMatches {
    /// The predicate's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define("pattern", ConfigType::String, Importance::Medium, "Regex the whole topic must match.")
            .validate(Validator::NonEmpty)
    }

    /// Builds the predicate.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `pattern` (missing or not a valid regex) or an unknown key.
    pub fn new(props: &HashMap<String, String>) -> Result<TopicNameMatches, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        let raw = p.require_string("pattern")?;
        let pattern = Regex::new(&format!("^(?:{raw})$"))
            .map_err(|e| ConfigError::invalid("pattern", raw, format!("not a valid regex: {e}")))?;
        Ok(TopicNameMatches { pattern })
    }
}

impl Predicate for TopicNameMatches {
    fn test(&self, record: &ConnectRecord) -> bool {
        self.pattern.is_match(&record.topic)
    }
}

/// Matches records with at least one header of the given key.
#[derive(Clone, Debug)]
pub struct HasHeaderKey {
    name: String,
}

impl HasHeaderKey {
    /// The predicate's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define("name", ConfigType::String, Importance::Medium, "The header name.")
            .validate(Validator::NonEmpty)
    }

    /// Builds the predicate.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming a missing or unknown key.
    pub fn new(props: &HashMap<String, String>) -> Result<HasHeaderKey, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        Ok(HasHeaderKey { name: p.require_string("name")?.to_string() })
    }
}

impl Predicate for HasHeaderKey {
    fn test(&self, record: &ConnectRecord) -> bool {
        record.header(&self.name).is_some()
    }
}

/// Matches tombstones (null values).
#[derive(Clone, Debug, Default)]
pub struct RecordIsTombstone;

impl RecordIsTombstone {
    /// Builds the predicate; it has no keys.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Unknown`] for any key.
    pub fn new(props: &HashMap<String, String>) -> Result<RecordIsTombstone, ConfigError> {
        util::parse(&ConfigDef::new(), props)?;
        Ok(RecordIsTombstone)
    }
}

impl Predicate for RecordIsTombstone {
    fn test(&self, record: &ConnectRecord) -> bool {
        record.is_tombstone()
    }
}

/// Builds a predicate by class name (full or short), or `Ok(None)` for an
/// unknown class.
///
/// # Errors
///
/// A [`ConfigError`] naming a bad, missing or unknown key.
pub fn predicate_for_class(
    class: &str,
    props: &HashMap<String, String>,
) -> Result<Option<Box<dyn Predicate>>, ConfigError> {
    let class = class.trim();
    Ok(Some(match class.strip_prefix(PACKAGE).unwrap_or(class) {
        "TopicNameMatches" => Box::new(TopicNameMatches::new(props)?),
        "HasHeaderKey" => Box::new(HasHeaderKey::new(props)?),
        "RecordIsTombstone" => Box::new(RecordIsTombstone::new(props)?),
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Header;
    use crate::transforms::util::tests::props;

    #[test]
    fn topic_name_matches_the_whole_name() {
        let p = TopicNameMatches::new(&props(&[("pattern", "orders-.*")])).unwrap();
        assert!(p.test(&ConnectRecord::new("orders-eu", 1i64)));
        assert!(!p.test(&ConnectRecord::new("all-orders-eu", 1i64)));
    }

    #[test]
    fn has_header_key_looks_at_header_names() {
        let p = HasHeaderKey::new(&props(&[("name", "trace")])).unwrap();
        assert!(p.test(&ConnectRecord::new("t", 1i64).with_header(Header::raw("trace", vec![]))));
        assert!(!p.test(&ConnectRecord::new("t", 1i64)));
    }

    #[test]
    fn record_is_tombstone_checks_the_value() {
        let p = RecordIsTombstone::new(&props(&[])).unwrap();
        assert!(p.test(&ConnectRecord::new("t", crate::data::Value::Null)));
        assert!(!p.test(&ConnectRecord::new("t", 1i64)));
    }

    #[test]
    fn invalid_pattern_names_the_key() {
        let err = TopicNameMatches::new(&props(&[("pattern", "(")])).err().unwrap();
        assert_eq!(err.key(), "pattern");
    }
}
