//! Kafka's `org.apache.kafka.connect.converters.ByteArrayConverter`.

use std::collections::HashMap;

use super::{Converter, ConverterError};
use crate::data::{Schema, SchemaAndValue, SchemaType, Value};

/// Passes bytes through unchanged; reads them as optional bytes.
#[derive(Clone, Debug, Default)]
pub struct ByteArrayConverter;

impl ByteArrayConverter {
    /// Kafka's class name.
    pub const CLASS: &'static str = "org.apache.kafka.connect.converters.ByteArrayConverter";

    /// A new converter.
    pub fn new() -> ByteArrayConverter {
        ByteArrayConverter
    }
}

impl Converter for ByteArrayConverter {
    fn configure(&mut self, _props: &HashMap<String, String>, _is_key: bool) -> Result<(), ConverterError> {
        Ok(())
    }

    fn from_connect(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConverterError> {
        if let Some(schema) = schema.filter(|s| s.schema_type() != SchemaType::Bytes) {
            return Err(ConverterError::Serialize {
                topic: topic.to_string(),
                reason: format!("ByteArrayConverter needs a bytes schema, got {}", schema.describe()),
            });
        }
        match value {
            Value::Null => Ok(None),
            Value::Bytes(b) => Ok(Some(b.clone())),
            other => Err(ConverterError::Serialize {
                topic: topic.to_string(),
                reason: format!("ByteArrayConverter needs bytes, got {}", other.type_name()),
            }),
        }
    }

    fn to_connect(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue, ConverterError> {
        let schema = Some(Schema::optional_of(SchemaType::Bytes));
        Ok(SchemaAndValue::new(schema, bytes.map(<[u8]>::to_vec)))
    }
}
