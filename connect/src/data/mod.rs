//! Kafka Connect's data model: [`Schema`], [`Value`], [`Struct`] and the
//! logical types.

mod logical;
mod schema;
mod value;

pub use logical::{Date, Decimal, DecimalValue, Time, Timestamp};
pub use schema::{Field, Schema, SchemaBuilder, SchemaType};
pub use value::{SchemaAndValue, Struct};

/// Errors of the data model: invalid schemas, values that do not match them.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum DataError {
    /// A required field (or value) is null and has no default.
    #[error("missing required field `{field}`")]
    MissingRequiredField {
        /// The field path (`value` for a top-level value).
        field: String,
    },
    /// A value does not have the schema's type.
    #[error("field `{field}`: expected {expected}, got {actual}")]
    TypeMismatch {
        /// The field path.
        field: String,
        /// The schema's type (and name).
        expected: String,
        /// The value's type.
        actual: String,
    },
    /// A struct value carries another struct schema than the one expected.
    #[error("field `{field}`: {reason}")]
    SchemaMismatch {
        /// The field path.
        field: String,
        /// What differs.
        reason: String,
    },
    /// A struct has no field of this name.
    #[error("`{field}` is not a field of the struct")]
    UnknownField {
        /// The name asked for.
        field: String,
    },
    /// A struct was made from a schema that is not a struct schema.
    #[error("expected a struct schema, got {actual}")]
    NotAStruct {
        /// The schema given.
        actual: String,
    },
    /// A struct was made from the wrong number of values.
    #[error("struct has {expected} fields, got {actual} values")]
    FieldCount {
        /// The number of fields.
        expected: usize,
        /// The number of values.
        actual: usize,
    },
    /// A schema could not be built.
    #[error("invalid schema `{schema}`: {reason}")]
    InvalidSchema {
        /// The schema's name, or its type when unnamed.
        schema: String,
        /// What is wrong.
        reason: String,
    },
    /// A decimal value or schema is invalid.
    #[error("invalid decimal: {reason}")]
    InvalidDecimal {
        /// What is wrong.
        reason: String,
    },
}

/// A Connect value, with or without a schema.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// Null (a tombstone at the top level of a record value).
    #[default]
    Null,
    /// `int8`.
    Int8(i8),
    /// `int16`.
    Int16(i16),
    /// `int32` (also `Date` and `Time`).
    Int32(i32),
    /// `int64` (also `Timestamp`).
    Int64(i64),
    /// `float32`.
    Float32(f32),
    /// `float64`.
    Float64(f64),
    /// `boolean`.
    Boolean(bool),
    /// `string`.
    String(String),
    /// `bytes` (also `Decimal`).
    Bytes(Vec<u8>),
    /// `array`.
    Array(Vec<Value>),
    /// `map`: ordered key/value pairs; keys are values of any type.
    Map(Vec<(Value, Value)>),
    /// `struct`.
    Struct(Struct),
}
