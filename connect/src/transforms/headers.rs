//! Header transforms: `org.apache.kafka.connect.transforms.HeaderFrom$Key`
//! / `$Value`, `InsertHeader` and `DropHeaders`.

use std::collections::HashMap;

use super::util::{self, operating, require_map, require_struct, with_operating};
use super::{Target, TransformError, Transformation};
use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance, Validator};
use crate::data::{Schema, SchemaType, Struct, Value};
use crate::record::{ConnectRecord, Header};

const HEADER_FROM: &str = "HeaderFrom";

/// Copies or moves fields of the key or value into headers.
#[derive(Clone, Debug)]
pub struct HeaderFrom {
    target: Target,
    pairs: Vec<(String, String)>,
    move_fields: bool,
}

impl HeaderFrom {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define("fields", ConfigType::List, Importance::High, "Fields to copy into headers.")
            .validate(Validator::NonEmpty)
            .define("headers", ConfigType::List, Importance::High, "Header names, one per field.")
            .validate(Validator::NonEmpty)
            .define("operation", ConfigType::String, Importance::High, "move or copy.")
            .validate(Validator::OneOf(vec!["move".into(), "copy".into()]))
            .define_with_default(
                "replace.null.with.default",
                ConfigType::Boolean,
                true,
                Importance::Medium,
                "Use a field's default when its value is null.",
            )
    }

    /// Builds the transform.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming a bad, missing or unknown key; `headers`
    /// must have as many items as `fields`.
    pub fn new(target: Target, props: &HashMap<String, String>) -> Result<HeaderFrom, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        let fields = p.get_list("fields").unwrap_or_default();
        let headers = p.get_list("headers").unwrap_or_default();
        if fields.len() != headers.len() {
            return Err(ConfigError::invalid(
                "headers",
                &headers.join(","),
                format!("needs one header per field ({} fields, {} headers)", fields.len(), headers.len()),
            ));
        }
        let pairs = fields.iter().cloned().zip(headers.iter().cloned()).collect();
        let move_fields = p.get_string("operation").is_some_and(|o| o.eq_ignore_ascii_case("move"));
        Ok(HeaderFrom { target, pairs, move_fields })
    }

    fn moved(&self, name: &str) -> bool {
        self.move_fields && self.pairs.iter().any(|(f, _)| f == name)
    }
}

impl Transformation for HeaderFrom {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        let (schema, value) = operating(&record, self.target);
        if value.is_null() {
            return Ok(Some(record));
        }
        let mut headers = Vec::with_capacity(self.pairs.len());
        let (new_schema, new_value) = match schema {
            None => {
                let entries = require_map(value, HEADER_FROM, "header extraction")?;
                for (field, header) in &self.pairs {
                    let v = value.map_get(field).cloned().unwrap_or_default();
                    headers.push(Header { key: header.clone(), schema: None, value: v });
                }
                let kept =
                    entries.iter().filter(|(k, _)| !k.as_str().is_some_and(|n| self.moved(n))).cloned();
                (None, Value::Map(kept.collect()))
            }
            Some(schema) => {
                let s = require_struct(value, HEADER_FROM, "header extraction")?;
                for (field, header) in &self.pairs {
                    let f = schema.field(field).ok_or_else(|| {
                        TransformError::record(HEADER_FROM, format!("`{field}` is not a field of the struct"))
                    })?;
                    headers.push(Header {
                        key: header.clone(),
                        schema: Some(f.schema().clone()),
                        value: util::struct_get(s, field)?,
                    });
                }
                if self.move_fields {
                    let mut b = util::struct_basics(schema);
                    let mut values = Vec::new();
                    for (f, v) in schema.fields().iter().zip(s.values()) {
                        if !self.moved(f.name()) {
                            b = b.field(f.name(), f.schema().clone());
                            values.push(v.clone());
                        }
                    }
                    let new_schema = b.build()?;
                    (Some(new_schema.clone()), Value::Struct(Struct::with_values(new_schema, values)?))
                } else {
                    (Some(schema.clone()), value.clone())
                }
            }
        };
        let mut record = with_operating(record, self.target, new_schema, new_value);
        record.headers.extend(headers);
        Ok(Some(record))
    }
}

/// Adds a header with a literal value; the literal's type is inferred
/// (boolean, the smallest integer type that holds it, float64, else string).
#[derive(Clone, Debug)]
pub struct InsertHeader {
    header: String,
    schema: Schema,
    value: Value,
}

/// Infers a typed value from literal text, like Kafka's `Values.parseString`
/// for simple scalars.
fn parse_literal(text: &str) -> (Schema, Value) {
    let t = text.trim();
    if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") {
        return (Schema::of(SchemaType::Boolean), Value::Boolean(t.eq_ignore_ascii_case("true")));
    }
    if let Ok(i) = t.parse::<i64>() {
        return if let Ok(v) = i8::try_from(i) {
            (Schema::of(SchemaType::Int8), Value::Int8(v))
        } else if let Ok(v) = i16::try_from(i) {
            (Schema::of(SchemaType::Int16), Value::Int16(v))
        } else if let Ok(v) = i32::try_from(i) {
            (Schema::of(SchemaType::Int32), Value::Int32(v))
        } else {
            (Schema::of(SchemaType::Int64), Value::Int64(i))
        };
    }
    let numeric =
        !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
    if let (true, Ok(f)) = (numeric, t.parse::<f64>()) {
        return (Schema::of(SchemaType::Float64), Value::Float64(f));
    }
    (Schema::of(SchemaType::String), Value::String(text.to_string()))
}

impl InsertHeader {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define("header", ConfigType::String, Importance::High, "Name of the header.")
            .validate(Validator::NonEmpty)
            .define("value.literal", ConfigType::String, Importance::High, "Literal value of the header.")
    }

    /// Builds the transform.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming a missing or unknown key.
    pub fn new(props: &HashMap<String, String>) -> Result<InsertHeader, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        let header = p.require_string("header")?.to_string();
        let (schema, value) = parse_literal(props.get("value.literal").map_or("", String::as_str));
        Ok(InsertHeader { header, schema, value })
    }
}

impl Transformation for InsertHeader {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        record.headers.push(Header {
            key: self.header.clone(),
            schema: Some(self.schema.clone()),
            value: self.value.clone(),
        });
        Ok(Some(record))
    }
}

/// Removes every header whose key is listed.
#[derive(Clone, Debug)]
pub struct DropHeaders {
    headers: Vec<String>,
}

impl DropHeaders {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define("headers", ConfigType::List, Importance::High, "Header names to remove.")
            .validate(Validator::NonEmpty)
    }

    /// Builds the transform.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming a missing or unknown key.
    pub fn new(props: &HashMap<String, String>) -> Result<DropHeaders, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        Ok(DropHeaders { headers: p.get_list("headers").unwrap_or_default().to_vec() })
    }
}

impl Transformation for DropHeaders {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        record.headers.retain(|h| !self.headers.contains(&h.key));
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SchemaBuilder;
    use crate::transforms::util::tests::props;

    fn schema() -> Schema {
        SchemaBuilder::structure()
            .field("id", Schema::of(SchemaType::Int32))
            .field("trace", Schema::optional_of(SchemaType::String))
            .build()
            .unwrap()
    }

    #[test]
    fn header_from_moves_struct_fields() {
        let t = HeaderFrom::new(
            Target::Value,
            &props(&[("fields", "trace"), ("headers", "trace-id"), ("operation", "move")]),
        )
        .unwrap();
        let s = Struct::with_values(schema(), vec![1.into(), "abc".into()]).unwrap();
        let out = t.apply(ConnectRecord::default().with_value(Some(schema()), s)).unwrap().unwrap();
        assert_eq!(
            out.headers,
            vec![Header {
                key: "trace-id".into(),
                schema: Some(Schema::optional_of(SchemaType::String)),
                value: "abc".into()
            }]
        );
        let v = out.value.as_struct().unwrap();
        assert_eq!(v.schema().fields().len(), 1);
        assert_eq!(v.values(), &[Value::Int32(1)]);
    }

    #[test]
    fn header_from_copies_schemaless_key_fields() {
        let t =
            HeaderFrom::new(Target::Key, &props(&[("fields", "a"), ("headers", "h"), ("operation", "copy")]))
                .unwrap();
        let key = Value::Map(vec![("a".into(), 1i64.into())]);
        let out = t.apply(ConnectRecord::default().with_key(None, key.clone())).unwrap().unwrap();
        assert_eq!(out.key, key);
        assert_eq!(out.headers, vec![Header { key: "h".into(), schema: None, value: 1i64.into() }]);
    }

    #[test]
    fn header_from_needs_matching_lengths() {
        let err = HeaderFrom::new(
            Target::Value,
            &props(&[("fields", "a,b"), ("headers", "h"), ("operation", "copy")]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value `h` for configuration `headers`: needs one header per field (2 fields, 1 headers)"
        );
    }

    #[test]
    fn insert_header_infers_the_literal_type() {
        let insert = |lit: &str| {
            let t = InsertHeader::new(&props(&[("header", "h"), ("value.literal", lit)])).unwrap();
            let h = t.apply(ConnectRecord::default()).unwrap().unwrap().headers.remove(0);
            (h.schema.unwrap().schema_type(), h.value)
        };
        assert_eq!(insert("42"), (SchemaType::Int8, Value::Int8(42)));
        assert_eq!(insert("70000"), (SchemaType::Int32, Value::Int32(70000)));
        assert_eq!(insert("true"), (SchemaType::Boolean, Value::Boolean(true)));
        assert_eq!(insert("1.5"), (SchemaType::Float64, Value::Float64(1.5)));
        assert_eq!(insert("hello world"), (SchemaType::String, Value::String("hello world".into())));
    }

    #[test]
    fn drop_headers_removes_every_listed_key() {
        let t = DropHeaders::new(&props(&[("headers", "a,b")])).unwrap();
        let r = ConnectRecord::default()
            .with_header(Header::raw("a", vec![1]))
            .with_header(Header::raw("c", vec![2]))
            .with_header(Header::raw("a", vec![3]))
            .with_header(Header::raw("b", vec![4]));
        let out = t.apply(r).unwrap().unwrap();
        assert_eq!(out.headers, vec![Header::raw("c", vec![2])]);
    }
}
