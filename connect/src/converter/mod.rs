//! Converters between Connect data and message bytes, with Kafka's class
//! names so worker configs (`key.converter=...`) carry over unchanged.
//!
//! | class | short name | bytes |
//! | --- | --- | --- |
//! | `org.apache.kafka.connect.json.JsonConverter` | `JsonConverter` | JSON, with a schema envelope by default |
//! | `org.apache.kafka.connect.storage.StringConverter` | `StringConverter` | UTF-8 text |
//! | `org.apache.kafka.connect.converters.ByteArrayConverter` | `ByteArrayConverter` | bytes as they are |

mod byte_array;
mod json;
mod string;

use std::collections::HashMap;

pub use byte_array::ByteArrayConverter;
pub use json::{DecimalFormat, JsonConverter};
pub use string::StringConverter;

use crate::config_def::ConfigError;
use crate::data::{Schema, SchemaAndValue, Value};

/// Converts between Connect data and the bytes of a record's key or value
/// (Kafka's `org.apache.kafka.connect.storage.Converter`).
pub trait Converter: Send + Sync {
    /// Applies the converter's config; `is_key` tells whether it converts
    /// keys or values.
    ///
    /// # Errors
    ///
    /// [`ConverterError::Config`] naming a key with an invalid value.
    fn configure(&mut self, props: &HashMap<String, String>, is_key: bool) -> Result<(), ConverterError>;

    /// Connect data to bytes; `None` is a null message (a tombstone).
    ///
    /// Named after Kafka's `fromConnectData`, hence the `from_` with `self`.
    ///
    /// # Errors
    ///
    /// [`ConverterError::Serialize`] when the value does not match the schema
    /// or cannot be represented.
    #[allow(clippy::wrong_self_convention)]
    fn from_connect(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConverterError>;

    /// Bytes (or a null message) to Connect data.
    ///
    /// # Errors
    ///
    /// [`ConverterError::Deserialize`] for bytes the format cannot read.
    fn to_connect(&self, topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue, ConverterError>;
}

/// Errors from converters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConverterError {
    /// No converter has this class name.
    #[error("unknown converter class `{class}`")]
    UnknownClass {
        /// The name asked for.
        class: String,
    },
    /// The converter's config is invalid.
    #[error("invalid converter config: {0}")]
    Config(#[from] ConfigError),
    /// Connect data could not be turned into bytes.
    #[error("converting Kafka Connect data to bytes failed for topic `{topic}`: {reason}")]
    Serialize {
        /// The topic.
        topic: String,
        /// What went wrong, naming the field.
        reason: String,
    },
    /// Bytes could not be turned into Connect data.
    #[error("converting bytes to Kafka Connect data failed for topic `{topic}`: {reason}")]
    Deserialize {
        /// The topic.
        topic: String,
        /// What went wrong.
        reason: String,
    },
}

/// A new, unconfigured converter by Kafka class name, full
/// (`org.apache.kafka.connect.json.JsonConverter`) or short (`JsonConverter`).
///
/// # Errors
///
/// [`ConverterError::UnknownClass`] for any other name.
pub fn converter_for_class(name: &str) -> Result<Box<dyn Converter>, ConverterError> {
    let name = name.trim();
    let short = name.rsplit('.').next().unwrap_or(name);
    let full_ok = |class: &str| name == class || name == short && class.ends_with(&format!(".{short}"));
    if full_ok(JsonConverter::CLASS) {
        Ok(Box::new(JsonConverter::new()))
    } else if full_ok(StringConverter::CLASS) {
        Ok(Box::new(StringConverter::new()))
    } else if full_ok(ByteArrayConverter::CLASS) {
        Ok(Box::new(ByteArrayConverter::new()))
    } else {
        Err(ConverterError::UnknownClass { class: name.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_resolve_by_full_and_short_name() {
        for name in [
            "org.apache.kafka.connect.json.JsonConverter",
            "JsonConverter",
            "org.apache.kafka.connect.storage.StringConverter",
            "StringConverter",
            "org.apache.kafka.connect.converters.ByteArrayConverter",
            "ByteArrayConverter",
        ] {
            assert!(converter_for_class(name).is_ok(), "{name}");
        }
        let err = converter_for_class("com.example.JsonConverter").err().unwrap();
        assert_eq!(err.to_string(), "unknown converter class `com.example.JsonConverter`");
    }
}
