//! Kafka Connect's `Schema`, `SchemaBuilder` and `Field`.
//!
//! A [`Schema`] is an immutable, cheaply cloned handle (an `Arc`): records,
//! structs and transforms pass the same schema around without copying it.

use std::fmt;
use std::sync::{Arc, OnceLock};

use super::{DataError, Value};

/// The physical type of a [`Schema`], named as in Kafka Connect's `Schema.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchemaType {
    /// 8-bit signed integer.
    Int8,
    /// 16-bit signed integer.
    Int16,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// 32-bit IEEE 754 float.
    Float32,
    /// 64-bit IEEE 754 float.
    Float64,
    /// Boolean.
    Boolean,
    /// UTF-8 string.
    String,
    /// Byte array.
    Bytes,
    /// Ordered list of values sharing one value schema.
    Array,
    /// Key/value pairs sharing one key schema and one value schema.
    Map,
    /// Named fields, each with its own schema.
    Struct,
}

impl SchemaType {
    /// All types, in Kafka's declaration order.
    pub const ALL: [SchemaType; 12] = [
        SchemaType::Int8,
        SchemaType::Int16,
        SchemaType::Int32,
        SchemaType::Int64,
        SchemaType::Float32,
        SchemaType::Float64,
        SchemaType::Boolean,
        SchemaType::String,
        SchemaType::Bytes,
        SchemaType::Array,
        SchemaType::Map,
        SchemaType::Struct,
    ];

    /// Kafka's lower-case name of the type (`int32`, `float64`, `struct`, ...).
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "int8",
            SchemaType::Int16 => "int16",
            SchemaType::Int32 => "int32",
            SchemaType::Int64 => "int64",
            SchemaType::Float32 => "float32",
            SchemaType::Float64 => "float64",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => "bytes",
            SchemaType::Array => "array",
            SchemaType::Map => "map",
            SchemaType::Struct => "struct",
        }
    }

    /// Parses a type name case-insensitively (`INT32`, `int32`, `Float64`).
    pub fn from_name(name: &str) -> Option<SchemaType> {
        SchemaType::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether the type is primitive (not array, map or struct).
    pub fn is_primitive(self) -> bool {
        !matches!(self, SchemaType::Array | SchemaType::Map | SchemaType::Struct)
    }
}

impl fmt::Display for SchemaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One field of a struct schema: its name, position and schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    name: String,
    index: usize,
    schema: Schema,
}

impl Field {
    /// The field's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The field's position in its struct (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The field's schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }
}

#[derive(Debug, PartialEq)]
struct SchemaInner {
    schema_type: SchemaType,
    optional: bool,
    default: Option<Value>,
    name: Option<String>,
    version: Option<i32>,
    doc: Option<String>,
    parameters: Vec<(String, String)>,
    fields: Vec<Field>,
    key_schema: Option<Schema>,
    value_schema: Option<Schema>,
}

/// An immutable Connect schema. Build one with [`SchemaBuilder`] or take a
/// ready-made primitive with [`Schema::of`] / [`Schema::optional_of`].
///
/// Logical types (`Decimal`, `Date`, `Time`, `Timestamp`) are schemas with
/// Kafka's logical names; see [`crate::data::Decimal`] and friends.
#[derive(Clone)]
pub struct Schema {
    inner: Arc<SchemaInner>,
}

impl PartialEq for Schema {
    /// Clones of one schema are equal without comparing their contents.
    fn eq(&self, other: &Schema) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.inner == other.inner
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Schema {
    /// Identifies this schema instance (clones share it): its address.
    pub(crate) fn identity(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// A required schema of a primitive type, with nothing else set.
    ///
    /// For arrays, maps and structs use [`SchemaBuilder`]; an array or map
    /// built here has no item schemas and validates no contents.
    ///
    /// Built once per type and shared: a record path that asks for one per
    /// record clones an `Arc`.
    pub fn of(schema_type: SchemaType) -> Schema {
        Schema::bare(schema_type, false)
    }

    /// An optional schema of a primitive type (shared like [`Schema::of`]).
    pub fn optional_of(schema_type: SchemaType) -> Schema {
        Schema::bare(schema_type, true)
    }

    fn bare(schema_type: SchemaType, optional: bool) -> Schema {
        static SHARED: [[OnceLock<Schema>; 2]; SchemaType::ALL.len()] =
            [const { [const { OnceLock::new() }; 2] }; SchemaType::ALL.len()];
        // `ALL` lists the types in declaration order.
        SHARED[schema_type as usize][usize::from(optional)]
            .get_or_init(|| {
                let builder = SchemaBuilder::new(schema_type);
                if optional { builder.optional() } else { builder }.build_unchecked()
            })
            .clone()
    }

    /// The physical type.
    pub fn schema_type(&self) -> SchemaType {
        self.inner.schema_type
    }

    /// Whether null is a valid value.
    pub fn is_optional(&self) -> bool {
        self.inner.optional
    }

    /// The default value, used where a value is null.
    pub fn default_value(&self) -> Option<&Value> {
        self.inner.default.as_ref()
    }

    /// The schema's name (logical types use Kafka's names here).
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// The schema's version.
    pub fn version(&self) -> Option<i32> {
        self.inner.version
    }

    /// The schema's documentation.
    pub fn doc(&self) -> Option<&str> {
        self.inner.doc.as_deref()
    }

    /// The schema's parameters in insertion order.
    pub fn parameters(&self) -> &[(String, String)] {
        &self.inner.parameters
    }

    /// One parameter by key.
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.inner.parameters.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The fields of a struct schema (empty for other types).
    pub fn fields(&self) -> &[Field] {
        &self.inner.fields
    }

    /// A field of a struct schema by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.inner.fields.iter().find(|f| f.name == name)
    }

    /// The key schema of a map schema.
    pub fn key_schema(&self) -> Option<&Schema> {
        self.inner.key_schema.as_ref()
    }

    /// The item schema of an array schema or the value schema of a map schema.
    pub fn value_schema(&self) -> Option<&Schema> {
        self.inner.value_schema.as_ref()
    }

    /// Whether this schema carries the given logical name.
    pub fn is_logical(&self, logical_name: &str) -> bool {
        self.name() == Some(logical_name)
    }

    /// A builder that starts as a copy of this schema (Kafka's
    /// `SchemaUtil.copySchemaBasics` plus the fields and item schemas).
    pub fn to_builder(&self) -> SchemaBuilder {
        let i = &self.inner;
        SchemaBuilder {
            schema_type: i.schema_type,
            optional: i.optional,
            default: i.default.clone(),
            name: i.name.clone(),
            version: i.version,
            doc: i.doc.clone(),
            parameters: i.parameters.clone(),
            fields: i.fields.iter().map(|f| (f.name.clone(), f.schema.clone())).collect(),
            key_schema: i.key_schema.clone(),
            value_schema: i.value_schema.clone(),
        }
    }

    /// Checks that `value` is valid for this schema.
    ///
    /// # Errors
    ///
    /// [`DataError::MissingRequiredField`] for a null where the schema is
    /// required and has no default, [`DataError::TypeMismatch`] for a value of
    /// another type; both name the field path (`value` at the top level).
    pub fn validate_value(&self, value: &Value) -> Result<(), DataError> {
        self.validate_at("value", value)
    }

    pub(crate) fn validate_at(&self, path: &str, value: &Value) -> Result<(), DataError> {
        if value.is_null() {
            if self.is_optional() || self.default_value().is_some() {
                return Ok(());
            }
            return Err(DataError::MissingRequiredField { field: path.to_string() });
        }
        let mismatch = || DataError::TypeMismatch {
            field: path.to_string(),
            expected: self.describe(),
            actual: value.type_name().to_string(),
        };
        if value.schema_type() != Some(self.schema_type()) {
            return Err(mismatch());
        }
        match value {
            Value::Array(items) => {
                if let Some(item_schema) = self.value_schema() {
                    for (i, item) in items.iter().enumerate() {
                        item_schema.validate_at(&format!("{path}[{i}]"), item)?;
                    }
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    if let Some(ks) = self.key_schema() {
                        ks.validate_at(&format!("{path}.<key>"), k)?;
                    }
                    if let Some(vs) = self.value_schema() {
                        vs.validate_at(&format!("{path}.<value>"), v)?;
                    }
                }
            }
            Value::Struct(s) => {
                if s.schema() != self {
                    return Err(DataError::SchemaMismatch {
                        field: path.to_string(),
                        reason: format!(
                            "struct schema {} does not match expected schema {}",
                            s.schema().describe(),
                            self.describe()
                        ),
                    });
                }
                s.validate_at(path)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A short human description: the type, and the name when there is one
    /// (`int32`, `bytes (org.apache.kafka.connect.data.Decimal)`).
    pub fn describe(&self) -> String {
        match self.name() {
            Some(name) => format!("{} ({name})", self.schema_type()),
            None => self.schema_type().to_string(),
        }
    }
}

/// Builds a [`Schema`], like Kafka's `SchemaBuilder`.
///
/// ```
/// use runnel_connect::data::{Schema, SchemaBuilder, SchemaType};
/// let schema = SchemaBuilder::structure()
///     .name("com.example.User")
///     .field("id", Schema::of(SchemaType::Int64))
///     .field("email", Schema::optional_of(SchemaType::String))
///     .build()
///     .unwrap();
/// assert_eq!(schema.fields().len(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct SchemaBuilder {
    schema_type: SchemaType,
    optional: bool,
    default: Option<Value>,
    name: Option<String>,
    version: Option<i32>,
    doc: Option<String>,
    parameters: Vec<(String, String)>,
    fields: Vec<(String, Schema)>,
    key_schema: Option<Schema>,
    value_schema: Option<Schema>,
}

impl SchemaBuilder {
    /// A builder for a required schema of the given type.
    pub fn new(schema_type: SchemaType) -> SchemaBuilder {
        SchemaBuilder {
            schema_type,
            optional: false,
            default: None,
            name: None,
            version: None,
            doc: None,
            parameters: Vec::new(),
            fields: Vec::new(),
            key_schema: None,
            value_schema: None,
        }
    }

    /// `int8` builder.
    pub fn int8() -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::Int8)
    }
    /// `int16` builder.
    pub fn int16() -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::Int16)
    }
    /// `int32` builder.
    pub fn int32() -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::Int32)
    }
    /// `int64` builder.
    pub fn int64() -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::Int64)
    }
    /// `float32` builder.
    pub fn float32() -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::Float32)
    }
    /// `float64` builder.
    pub fn float64() -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::Float64)
    }
    /// `boolean` builder.
    pub fn boolean() -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::Boolean)
    }
    /// `string` builder.
    pub fn string() -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::String)
    }
    /// `bytes` builder.
    pub fn bytes() -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::Bytes)
    }
    /// `struct` builder; add fields with [`SchemaBuilder::field`].
    pub fn structure() -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::Struct)
    }
    /// `array` builder with the schema of its items.
    pub fn array(items: Schema) -> SchemaBuilder {
        let mut b = SchemaBuilder::new(SchemaType::Array);
        b.value_schema = Some(items);
        b
    }
    /// `map` builder with the schemas of its keys and values.
    pub fn map(keys: Schema, values: Schema) -> SchemaBuilder {
        let mut b = SchemaBuilder::new(SchemaType::Map);
        b.key_schema = Some(keys);
        b.value_schema = Some(values);
        b
    }

    /// Makes the schema optional (null is valid).
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Makes the schema required (the default).
    pub fn required(mut self) -> Self {
        self.optional = false;
        self
    }

    /// Sets the default value; checked against the schema in [`SchemaBuilder::build`].
    pub fn default_value(mut self, value: impl Into<Value>) -> Self {
        let value = value.into();
        self.default = if value.is_null() { None } else { Some(value) };
        self
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the version.
    pub fn version(mut self, version: i32) -> Self {
        self.version = Some(version);
        self
    }

    /// Sets the documentation.
    pub fn doc(mut self, doc: impl Into<String>) -> Self {
        self.doc = Some(doc.into());
        self
    }

    /// Sets one parameter, replacing an earlier value of the same key.
    pub fn parameter(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.parameters.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.parameters.push((key, value)),
        }
        self
    }

    /// Sets several parameters in order.
    pub fn parameters<K: Into<String>, V: Into<String>>(
        mut self,
        params: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        for (k, v) in params {
            self = self.parameter(k, v);
        }
        self
    }

    /// Appends a field to a struct schema. Duplicates and fields on
    /// non-struct schemas are reported by [`SchemaBuilder::build`].
    pub fn field(mut self, name: impl Into<String>, schema: Schema) -> Self {
        self.fields.push((name.into(), schema));
        self
    }

    /// The type being built.
    pub fn schema_type(&self) -> SchemaType {
        self.schema_type
    }

    /// Builds the schema.
    ///
    /// # Errors
    ///
    /// [`DataError::InvalidSchema`] for fields on a non-struct schema, a
    /// duplicate field name, an array/map without item schemas, or a default
    /// value that does not match the schema.
    pub fn build(self) -> Result<Schema, DataError> {
        let label = self.name.clone().unwrap_or_else(|| self.schema_type.to_string());
        let invalid = |reason: String| DataError::InvalidSchema { schema: label.clone(), reason };
        if !self.fields.is_empty() && self.schema_type != SchemaType::Struct {
            return Err(invalid(format!("cannot add fields to a {} schema", self.schema_type)));
        }
        for (i, (name, _)) in self.fields.iter().enumerate() {
            if self.fields[..i].iter().any(|(n, _)| n == name) {
                return Err(invalid(format!("duplicate field `{name}`")));
            }
        }
        match self.schema_type {
            SchemaType::Array if self.value_schema.is_none() => {
                return Err(invalid("array schema needs an item schema".into()))
            }
            SchemaType::Map if self.key_schema.is_none() || self.value_schema.is_none() => {
                return Err(invalid("map schema needs key and value schemas".into()))
            }
            _ => {}
        }
        let default = self.default.clone();
        let schema = self.build_unchecked();
        if let Some(default) = default {
            schema
                .validate_at("default", &default)
                .map_err(|e| invalid(format!("invalid default value: {e}")))?;
        }
        Ok(schema)
    }

    pub(crate) fn build_unchecked(self) -> Schema {
        let fields = self
            .fields
            .into_iter()
            .enumerate()
            .map(|(index, (name, schema))| Field { name, index, schema })
            .collect();
        Schema {
            inner: Arc::new(SchemaInner {
                schema_type: self.schema_type,
                optional: self.optional,
                default: self.default,
                name: self.name,
                version: self.version,
                doc: self.doc,
                parameters: self.parameters,
                fields,
                key_schema: self.key_schema,
                value_schema: self.value_schema,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_rejects_duplicate_fields() {
        let err = SchemaBuilder::structure()
            .field("a", Schema::of(SchemaType::Int32))
            .field("a", Schema::of(SchemaType::String))
            .build()
            .unwrap_err();
        assert_eq!(err.to_string(), "invalid schema `struct`: duplicate field `a`");
    }

    #[test]
    fn builder_rejects_default_of_wrong_type() {
        let err = SchemaBuilder::int32().name("n").default_value("x").build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid schema `n`: invalid default value: field `default`: expected int32 (n), got string"
        );
    }

    #[test]
    fn parameters_keep_insertion_order_and_replace() {
        let s = SchemaBuilder::bytes().parameter("b", "1").parameter("a", "2").parameter("b", "3").build();
        let s = s.unwrap();
        assert_eq!(s.parameters(), &[("b".to_string(), "3".to_string()), ("a".to_string(), "2".to_string())]);
    }

    #[test]
    fn type_names_parse_case_insensitively() {
        assert_eq!(SchemaType::from_name("INT16"), Some(SchemaType::Int16));
        assert_eq!(SchemaType::from_name("Float64"), Some(SchemaType::Float64));
        assert_eq!(SchemaType::from_name("double"), None);
    }
}
