//! Kafka's `org.apache.kafka.connect.storage.StringConverter`.

use std::collections::HashMap;

use super::{Converter, ConverterError};
use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance};
use crate::data::{Schema, SchemaAndValue, SchemaType, Value};

/// Writes any value as its text (strings as they are, other values as
/// [`Value`]'s `Display`) in UTF-8, and reads bytes as an optional string.
#[derive(Clone, Debug, Default)]
pub struct StringConverter;

impl StringConverter {
    /// Kafka's class name.
    pub const CLASS: &'static str = "org.apache.kafka.connect.storage.StringConverter";

    /// A new converter.
    pub fn new() -> StringConverter {
        StringConverter
    }

    /// The keys this converter understands.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define_with_default(
                "converter.encoding",
                ConfigType::String,
                "UTF-8",
                Importance::High,
                "The character encoding; only UTF-8 is supported.",
            )
            .define_optional("converter.type", ConfigType::String, Importance::Low, "key, value or header.")
    }
}

impl Converter for StringConverter {
    fn configure(&mut self, props: &HashMap<String, String>, _is_key: bool) -> Result<(), ConverterError> {
        let parsed = Self::config_def().parse(props)?;
        let encoding = parsed.get_string("converter.encoding").unwrap_or("UTF-8");
        if !matches!(encoding.to_ascii_uppercase().as_str(), "UTF-8" | "UTF8") {
            return Err(
                ConfigError::invalid("converter.encoding", encoding, "only UTF-8 is supported").into()
            );
        }
        Ok(())
    }

    fn from_connect(
        &self,
        _topic: &str,
        _schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConverterError> {
        Ok(match value {
            Value::Null => None,
            Value::String(s) => Some(s.as_bytes().to_vec()),
            other => Some(other.to_string().into_bytes()),
        })
    }

    fn to_connect(&self, topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue, ConverterError> {
        let schema = Some(Schema::optional_of(SchemaType::String));
        let Some(bytes) = bytes else {
            return Ok(SchemaAndValue::new(schema, Value::Null));
        };
        let text = std::str::from_utf8(bytes).map_err(|e| ConverterError::Deserialize {
            topic: topic.to_string(),
            reason: format!("invalid UTF-8: {e}"),
        })?;
        Ok(SchemaAndValue::new(schema, text))
    }
}
