//! Connect values: [`Value`], [`Struct`] and [`SchemaAndValue`].
//!
//! Logical types keep their physical representation here: a `Decimal` is
//! `Value::Bytes` (big-endian two's-complement unscaled value), a `Date` is
//! `Value::Int32` (days since the epoch), a `Time` is `Value::Int32` (millis
//! of the day) and a `Timestamp` is `Value::Int64` (epoch millis). The helpers
//! in [`crate::data::logical`] convert to and from richer forms. One
//! representation keeps converters and transforms free of per-type special
//! cases, and matches what Kafka's converters put on the wire.

use std::fmt;

use super::{DataError, Schema, SchemaType, Value};

impl Value {
    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The schema type this value belongs to; `None` for null.
    pub fn schema_type(&self) -> Option<SchemaType> {
        Some(match self {
            Value::Null => return None,
            Value::Int8(_) => SchemaType::Int8,
            Value::Int16(_) => SchemaType::Int16,
            Value::Int32(_) => SchemaType::Int32,
            Value::Int64(_) => SchemaType::Int64,
            Value::Float32(_) => SchemaType::Float32,
            Value::Float64(_) => SchemaType::Float64,
            Value::Boolean(_) => SchemaType::Boolean,
            Value::String(_) => SchemaType::String,
            Value::Bytes(_) => SchemaType::Bytes,
            Value::Array(_) => SchemaType::Array,
            Value::Map(_) => SchemaType::Map,
            Value::Struct(_) => SchemaType::Struct,
        })
    }

    /// The type's name for messages (`int32`, `string`, `null`, ...).
    pub fn type_name(&self) -> &'static str {
        self.schema_type().map_or("null", SchemaType::name)
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The struct, if this is a struct.
    pub fn as_struct(&self) -> Option<&Struct> {
        match self {
            Value::Struct(s) => Some(s),
            _ => None,
        }
    }

    /// The map entries, if this is a map.
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Any integer type widened to `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int8(v) => Some(v.into()),
            Value::Int16(v) => Some(v.into()),
            Value::Int32(v) => Some(v.into()),
            Value::Int64(v) => Some(v),
            _ => None,
        }
    }

    /// Looks up a string key in a map value (schemaless records use maps with
    /// string keys where schema'd records use structs).
    pub fn map_get(&self, key: &str) -> Option<&Value> {
        self.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }
}

impl fmt::Display for Value {
    /// Kafka's `Values.convertToString`-like rendering: strings bare, bytes
    /// as base64, containers in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use base64::Engine as _;
        match self {
            Value::Null => f.write_str("null"),
            Value::Int8(v) => write!(f, "{v}"),
            Value::Int16(v) => write!(f, "{v}"),
            Value::Int32(v) => write!(f, "{v}"),
            Value::Int64(v) => write!(f, "{v}"),
            Value::Float32(v) => write!(f, "{v:?}"),
            Value::Float64(v) => write!(f, "{v:?}"),
            Value::Boolean(v) => write!(f, "{v}"),
            Value::String(v) => f.write_str(v),
            Value::Bytes(v) => f.write_str(&base64::engine::general_purpose::STANDARD.encode(v)),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{k}:{v}")?;
                }
                f.write_str("}")
            }
            Value::Struct(s) => {
                f.write_str("Struct{")?;
                let mut first = true;
                for (field, v) in s.schema().fields().iter().zip(s.values()) {
                    if v.is_null() {
                        continue;
                    }
                    if !first {
                        f.write_str(",")?;
                    }
                    first = false;
                    write!(f, "{}={v}", field.name())?;
                }
                f.write_str("}")
            }
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::$variant(v)
            }
        })*
    };
}

value_from!(i8 => Int8, i16 => Int16, i32 => Int32, i64 => Int64, f32 => Float32, f64 => Float64,
    bool => Boolean, String => String, Vec<u8> => Bytes, Struct => Struct);

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::String(v.to_string())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// A struct value: a struct [`Schema`] and one value per field.
#[derive(Clone, Debug, PartialEq)]
pub struct Struct {
    schema: Schema,
    values: Vec<Value>,
}

impl Struct {
    /// An empty struct (all fields null) of a struct schema.
    ///
    /// # Errors
    ///
    /// [`DataError::NotAStruct`] when the schema is not of type struct.
    pub fn new(schema: Schema) -> Result<Struct, DataError> {
        if schema.schema_type() != SchemaType::Struct {
            return Err(DataError::NotAStruct { actual: schema.describe() });
        }
        let values = vec![Value::Null; schema.fields().len()];
        Ok(Struct { schema, values })
    }

    /// A struct from values in field order, each checked against its field.
    ///
    /// # Errors
    ///
    /// [`DataError::NotAStruct`], [`DataError::FieldCount`], or a type error
    /// naming the field.
    pub fn with_values(schema: Schema, values: Vec<Value>) -> Result<Struct, DataError> {
        let mut s = Struct::new(schema)?;
        if values.len() != s.values.len() {
            return Err(DataError::FieldCount { expected: s.values.len(), actual: values.len() });
        }
        for (field, value) in s.schema.fields().iter().zip(&values) {
            check_put(field.schema(), field.name(), value)?;
        }
        s.values = values;
        Ok(s)
    }

    /// The struct's schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The values in field order (nulls included; defaults not applied).
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Consumes the struct, returning its values in field order.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// A field's value; a null field with a default yields the default.
    ///
    /// # Errors
    ///
    /// [`DataError::UnknownField`] when the schema has no such field.
    pub fn get(&self, name: &str) -> Result<&Value, DataError> {
        let field = self.field(name)?;
        let value = &self.values[field.index()];
        if value.is_null() {
            if let Some(default) = field.schema().default_value() {
                return Ok(default);
            }
        }
        Ok(value)
    }

    /// A field's value as stored, without applying the default.
    ///
    /// # Errors
    ///
    /// [`DataError::UnknownField`] when the schema has no such field.
    pub fn get_without_default(&self, name: &str) -> Result<&Value, DataError> {
        let field = self.field(name)?;
        Ok(&self.values[field.index()])
    }

    /// Sets a field, checking the value against the field's schema
    /// (nested structs are checked by [`Struct::validate`]).
    ///
    /// # Errors
    ///
    /// [`DataError::UnknownField`], or a type error naming the field.
    pub fn put(&mut self, name: &str, value: impl Into<Value>) -> Result<&mut Self, DataError> {
        let value = value.into();
        let field = self.field(name)?;
        check_put(field.schema(), name, &value)?;
        let index = field.index();
        self.values[index] = value;
        Ok(self)
    }

    /// Checks every field: required fields are set (or defaulted) and all
    /// values match their schemas, recursively.
    ///
    /// # Errors
    ///
    /// [`DataError::MissingRequiredField`] or [`DataError::TypeMismatch`]
    /// naming the field path.
    pub fn validate(&self) -> Result<(), DataError> {
        for (field, value) in self.schema.fields().iter().zip(&self.values) {
            field.schema().validate_at(field.name(), value)?;
        }
        Ok(())
    }

    pub(crate) fn validate_at(&self, path: &str) -> Result<(), DataError> {
        for (field, value) in self.schema.fields().iter().zip(&self.values) {
            field.schema().validate_at(&format!("{path}.{}", field.name()), value)?;
        }
        Ok(())
    }

    fn field(&self, name: &str) -> Result<&super::Field, DataError> {
        self.schema.field(name).ok_or_else(|| DataError::UnknownField { field: name.to_string() })
    }
}

/// `put` checks the top-level type only; nulls are accepted here and
/// reported by `validate` (Kafka allows building a struct field by field).
fn check_put(schema: &Schema, name: &str, value: &Value) -> Result<(), DataError> {
    match value.schema_type() {
        None => Ok(()),
        Some(t) if t == schema.schema_type() => {
            if let Value::Struct(s) = value {
                if s.schema() != schema {
                    return Err(DataError::SchemaMismatch {
                        field: name.to_string(),
                        reason: format!(
                            "struct schema {} does not match the field's schema {}",
                            s.schema().describe(),
                            schema.describe()
                        ),
                    });
                }
            }
            Ok(())
        }
        Some(_) => Err(DataError::TypeMismatch {
            field: name.to_string(),
            expected: schema.describe(),
            actual: value.type_name().to_string(),
        }),
    }
}

/// A value with its optional schema, as converters and headers carry them.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SchemaAndValue {
    /// The schema, or `None` for schemaless data.
    pub schema: Option<Schema>,
    /// The value.
    pub value: Value,
}

impl SchemaAndValue {
    /// A schema and a value.
    pub fn new(schema: Option<Schema>, value: impl Into<Value>) -> SchemaAndValue {
        SchemaAndValue { schema, value: value.into() }
    }

    /// No schema and a null value (Kafka's `SchemaAndValue.NULL`).
    pub fn null() -> SchemaAndValue {
        SchemaAndValue::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SchemaBuilder;

    fn user_schema() -> Schema {
        SchemaBuilder::structure()
            .name("User")
            .field("id", Schema::of(SchemaType::Int64))
            .field("name", Schema::optional_of(SchemaType::String))
            .field("age", SchemaBuilder::int32().default_value(18).build().unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn get_applies_the_field_default_to_nulls() {
        let s = Struct::new(user_schema()).unwrap();
        assert_eq!(s.get("age").unwrap(), &Value::Int32(18));
        assert_eq!(s.get_without_default("age").unwrap(), &Value::Null);
    }

    #[test]
    fn put_rejects_wrong_type_naming_the_field() {
        let mut s = Struct::new(user_schema()).unwrap();
        let err = s.put("id", "seven").unwrap_err();
        assert_eq!(err.to_string(), "field `id`: expected int64, got string");
    }

    #[test]
    fn put_rejects_unknown_field() {
        let mut s = Struct::new(user_schema()).unwrap();
        assert_eq!(s.put("nope", 1i64).unwrap_err().to_string(), "`nope` is not a field of the struct");
    }

    #[test]
    fn validate_reports_missing_required_field() {
        let mut s = Struct::new(user_schema()).unwrap();
        s.put("name", "ann").unwrap();
        assert_eq!(s.validate().unwrap_err().to_string(), "missing required field `id`");
        s.put("id", 7i64).unwrap();
        s.validate().unwrap();
    }

    #[test]
    fn validate_names_nested_field_paths() {
        let inner = SchemaBuilder::structure().field("x", Schema::of(SchemaType::Int8)).build().unwrap();
        let outer = SchemaBuilder::structure().field("inner", inner.clone()).build().unwrap();
        let mut s = Struct::new(outer).unwrap();
        s.put("inner", Struct::new(inner).unwrap()).unwrap();
        assert_eq!(s.validate().unwrap_err().to_string(), "missing required field `inner.x`");
    }

    #[test]
    fn array_items_are_validated() {
        let schema = SchemaBuilder::array(Schema::of(SchemaType::String)).build().unwrap();
        let err = schema.validate_value(&Value::Array(vec!["a".into(), Value::Int32(1)])).unwrap_err();
        assert_eq!(err.to_string(), "field `value[1]`: expected string, got int32");
    }

    #[test]
    fn struct_new_rejects_non_struct_schema() {
        let err = Struct::new(Schema::of(SchemaType::Int32)).unwrap_err();
        assert_eq!(err.to_string(), "expected a struct schema, got int32");
    }
}
