//! The JSON converter's fast path: values written straight into the output
//! text (no intermediate tree, no per-field allocations), and each schema's
//! JSON written once and kept. The output is byte for byte what the tree
//! writer produces (the converter's tests compare them).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use base64::Engine as _;

use super::tree::{write_number, write_string, Number};
use super::JsonConverter;
use crate::data::{Decimal, DecimalValue, Schema, SchemaType, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Where in a value the writer is, rendered only for an error message in
/// the form the tree writer uses (`after.items[2]`).
#[derive(Clone, Copy)]
pub(crate) enum At<'a> {
    Root,
    Field(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl At<'_> {
    fn render(&self) -> String {
        match self {
            At::Root => String::new(),
            At::Field(parent, name) => {
                let p = parent.render();
                if p.is_empty() {
                    name.to_string()
                } else {
                    format!("{p}.{name}")
                }
            }
            At::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }

    fn name(&self) -> String {
        let p = self.render();
        if p.is_empty() {
            "value".into()
        } else {
            p
        }
    }
}

/// Serialized schemas by schema identity, so that a source whose records
/// share a schema (every connector does) pays for its JSON once. Bounded
/// by `schemas.cache.size`: when full it starts over.
#[derive(Debug)]
pub(crate) struct SchemaCache {
    entries: Mutex<HashMap<usize, (Schema, Box<str>)>>,
    capacity: usize,
}

impl SchemaCache {
    pub(crate) fn new(capacity: usize) -> Self {
        SchemaCache { entries: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    /// Appends the schema's JSON to `out`, computing it with `render` the
    /// first time.
    pub(crate) fn write(
        &self,
        schema: &Schema,
        out: &mut String,
        render: impl FnOnce() -> Result<String, String>,
    ) -> Result<(), String> {
        let key = schema.identity();
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // The entry keeps its schema alive, so its address is not reused.
        if let Some((_, text)) = entries.get(&key) {
            out.push_str(text);
            return Ok(());
        }
        let text = render()?;
        out.push_str(&text);
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, (schema.clone(), text.into_boxed_str()));
        Ok(())
    }
}

impl Clone for SchemaCache {
    fn clone(&self) -> Self {
        SchemaCache::new(self.capacity)
    }
}

impl JsonConverter {
    /// Writes `value` under `schema` as JSON, as `to_json` then `write`
    /// would.
    pub(crate) fn write_value(
        &self,
        schema: Option<&Schema>,
        value: &Value,
        at: At<'_>,
        out: &mut String,
    ) -> Result<(), String> {
        let Some(schema) = schema else {
            let json = self.schemaless_json(value, &at.render())?;
            json.write_to(out);
            return Ok(());
        };
        if value.is_null() {
            if let (Some(default), true) = (schema.default_value(), self.replaces_null_with_default()) {
                return self.write_value(Some(schema), default, at, out);
            }
            if schema.is_optional() {
                out.push_str("null");
                return Ok(());
            }
            return Err(format!("`{}` is null but its schema is required and has no default", at.name()));
        }
        let mismatch =
            || format!("`{}`: expected {}, got {}", at.name(), schema.describe(), value.type_name());
        if self.writes_numeric_decimals() && schema.is_logical(Decimal::LOGICAL_NAME) {
            let Value::Bytes(bytes) = value else { return Err(mismatch()) };
            let scale = Decimal::scale(schema).map_err(|e| format!("`{}`: {e}", at.name()))?;
            let decimal =
                DecimalValue::from_bytes(bytes, scale).map_err(|e| format!("`{}`: {e}", at.name()))?;
            let _ = write!(out, "{decimal}");
            return Ok(());
        }
        match (schema.schema_type(), value) {
            (SchemaType::Int8, Value::Int8(v)) => write_int(i64::from(*v), out),
            (SchemaType::Int16, Value::Int16(v)) => write_int(i64::from(*v), out),
            (SchemaType::Int32, Value::Int32(v)) => write_int(i64::from(*v), out),
            (SchemaType::Int64, Value::Int64(v)) => write_int(*v, out),
            (SchemaType::Float32, Value::Float32(v)) => write_number(&Number::F32(*v), out),
            (SchemaType::Float64, Value::Float64(v)) => write_number(&Number::F64(*v), out),
            (SchemaType::Boolean, Value::Boolean(v)) => out.push_str(if *v { "true" } else { "false" }),
            (SchemaType::String, Value::String(v)) => write_string(v, out),
            (SchemaType::Bytes, Value::Bytes(v)) => {
                out.push('"');
                B64.encode_string(v, out);
                out.push('"');
            }
            (SchemaType::Array, Value::Array(items)) => {
                let item_schema = schema.value_schema();
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write_value(item_schema, item, At::Index(&at, i), out)?;
                }
                out.push(']');
            }
            (SchemaType::Map, Value::Map(entries)) => {
                let (ks, vs) = (schema.key_schema(), schema.value_schema());
                let string_keys = ks.is_some_and(|k| k.schema_type() == SchemaType::String);
                if string_keys {
                    out.push('{');
                    for (i, (k, v)) in entries.iter().enumerate() {
                        let Value::String(key) = k else {
                            return Err(format!(
                                "`{}`: map key must be a string, got {}",
                                at.name(),
                                k.type_name()
                            ));
                        };
                        if i > 0 {
                            out.push(',');
                        }
                        write_string(key, out);
                        out.push(':');
                        self.write_value(vs, v, At::Field(&at, key), out)?;
                    }
                    out.push('}');
                } else {
                    out.push('[');
                    for (i, (k, v)) in entries.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push('[');
                        self.write_value(ks, k, At::Field(&at, "<key>"), out)?;
                        out.push(',');
                        self.write_value(vs, v, At::Field(&at, "<value>"), out)?;
                        out.push(']');
                    }
                    out.push(']');
                }
            }
            (SchemaType::Struct, Value::Struct(s)) => {
                if s.schema() != schema {
                    return Err(format!("`{}`: struct schema does not match the field's schema", at.name()));
                }
                out.push('{');
                for (i, (field, v)) in s.schema().fields().iter().zip(s.values()).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(field.name(), out);
                    out.push(':');
                    self.write_value(Some(field.schema()), v, At::Field(&at, field.name()), out)?;
                }
                out.push('}');
            }
            _ => return Err(mismatch()),
        }
        Ok(())
    }
}

fn write_int(v: i64, out: &mut String) {
    let mut buf = itoa::Buffer::new();
    out.push_str(buf.format(v));
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::converter::Converter;
    use crate::data::{SchemaBuilder, Struct};

    fn converters() -> Vec<JsonConverter> {
        let mut out = Vec::new();
        for (schemas, decimals, defaults) in
            [("true", "BASE64", "true"), ("false", "NUMERIC", "false"), ("true", "NUMERIC", "false")]
        {
            let mut c = JsonConverter::new();
            let props: HashMap<String, String> = [
                ("schemas.enable", schemas),
                ("decimal.format", decimals),
                ("replace.null.with.default", defaults),
                ("schemas.cache.size", "2"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            c.configure(&props, false).unwrap();
            out.push(c);
        }
        out
    }

    #[test]
    fn messages_with_one_schema_share_one_connect_schema_and_others_get_their_own() {
        let c = JsonConverter::new();
        let message = |id: i64, kind: &str| {
            format!(
                r#"{{"schema":{{"type":"struct","name":"r","fields":[{{"field":"id","type":"{kind}"}}]}},"payload":{{"id":{id}}}}}"#
            )
        };
        let read = |text: String| c.to_connect("t", Some(text.as_bytes())).unwrap();
        let (a, b) = (read(message(1, "int64")), read(message(2, "int64")));
        let (sa, sb) = (a.schema.unwrap(), b.schema.unwrap());
        assert_eq!(sa.identity(), sb.identity(), "the second message reuses the first's schema");
        let other = read(message(3, "int32"));
        assert_eq!(
            other.schema.as_ref().unwrap().field("id").unwrap().schema().schema_type(),
            SchemaType::Int32
        );
        assert_eq!(other.value.as_struct().unwrap().get("id").unwrap(), &Value::Int32(3));
        assert_eq!(b.value.as_struct().unwrap().get("id").unwrap(), &Value::Int64(2));
        // A bad schema is an error every time, not remembered.
        let bad = r#"{"schema":{"type":"nope"},"payload":1}"#;
        assert!(c.to_connect("t", Some(bad.as_bytes())).is_err());
        assert!(c.to_connect("t", Some(bad.as_bytes())).is_err());
    }

    /// A struct with every type, nesting, escapes, defaults and nulls.
    fn sample() -> (Schema, Value) {
        let inner = SchemaBuilder::structure()
            .name("inner")
            .field("s", SchemaBuilder::string().optional().default_value("dflt").build().unwrap())
            .field("n", Schema::optional_of(SchemaType::Int64))
            .optional()
            .build()
            .unwrap();
        let schema = SchemaBuilder::structure()
            .name("outer.Value")
            .version(3)
            .field("i8", Schema::of(SchemaType::Int8))
            .field("i16", Schema::of(SchemaType::Int16))
            .field("i32", Schema::of(SchemaType::Int32))
            .field("i64", Schema::of(SchemaType::Int64))
            .field("f32", Schema::of(SchemaType::Float32))
            .field("f64", Schema::of(SchemaType::Float64))
            .field("nan", Schema::of(SchemaType::Float64))
            .field("b", Schema::of(SchemaType::Boolean))
            .field("text", Schema::of(SchemaType::String))
            .field("bytes", Schema::of(SchemaType::Bytes))
            .field("dec", Decimal::schema(2))
            .field("list", SchemaBuilder::array(Schema::of(SchemaType::String)).build().unwrap())
            .field(
                "map",
                SchemaBuilder::map(Schema::of(SchemaType::String), Schema::of(SchemaType::Int32))
                    .build()
                    .unwrap(),
            )
            .field(
                "pairs",
                SchemaBuilder::map(Schema::of(SchemaType::Int32), Schema::of(SchemaType::String))
                    .build()
                    .unwrap(),
            )
            .field("inner", inner.clone())
            .field("missing", inner.clone())
            .build()
            .unwrap();
        let mut nested = Struct::new(inner).unwrap();
        nested.put("n", Value::Int64(-7)).unwrap();
        let values = vec![
            Value::Int8(-8),
            Value::Int16(300),
            Value::Int32(-70000),
            Value::Int64(i64::MIN),
            Value::Float32(1.5),
            Value::Float64(0.1),
            Value::Float64(f64::NAN),
            Value::Boolean(true),
            Value::String("quote \" backslash \\ tab \t nl \n ctl \u{1} é 😀".into()),
            Value::Bytes(vec![0, 1, 2, 255]),
            Value::Bytes(vec![0x30, 0x39]),
            Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
            Value::Map(vec![(Value::String("k\"".into()), Value::Int32(1))]),
            Value::Map(vec![(Value::Int32(1), Value::String("one".into()))]),
            Value::Struct(nested),
            Value::Null,
        ];
        (schema.clone(), Value::Struct(Struct::with_values(schema, values).unwrap()))
    }

    #[test]
    fn the_writer_writes_the_same_bytes_as_the_tree() {
        let (schema, value) = sample();
        for c in converters() {
            for _ in 0..3 {
                // Again with the schema cached, and past the cache's size.
                let written = c.from_connect("t", Some(&schema), &value).unwrap().unwrap();
                let tree = c.write_through_tree("t", Some(&schema), &value).unwrap().unwrap();
                assert_eq!(String::from_utf8(written).unwrap(), String::from_utf8(tree).unwrap());
                let other = Schema::of(SchemaType::String);
                let s = Value::String("x".into());
                assert_eq!(
                    c.from_connect("t", Some(&other), &s).unwrap(),
                    c.write_through_tree("t", Some(&other), &s).unwrap()
                );
            }
            // Schemaless values, and nulls.
            let map = Value::Map(vec![(
                Value::String("a".into()),
                Value::Array(vec![Value::Int32(1), Value::Null]),
            )]);
            assert_eq!(
                c.from_connect("t", None, &map).unwrap(),
                c.write_through_tree("t", None, &map).unwrap()
            );
            assert_eq!(c.from_connect("t", None, &Value::Null).unwrap(), None);
        }
    }

    #[test]
    fn the_writer_fails_where_the_tree_fails_naming_the_field() {
        let schema = SchemaBuilder::structure()
            .field("a", SchemaBuilder::structure().field("b", Schema::of(SchemaType::Int32)).build().unwrap())
            .build()
            .unwrap();
        // A required field left unset (null), one level down.
        let inner = Struct::new(schema.field("a").unwrap().schema().clone()).unwrap();
        let value = Value::Struct(Struct::with_values(schema.clone(), vec![Value::Struct(inner)]).unwrap());
        let c = JsonConverter::new();
        let written = c.from_connect("t", Some(&schema), &value).unwrap_err().to_string();
        let tree = c.write_through_tree("t", Some(&schema), &value).unwrap_err().to_string();
        assert_eq!(written, tree);
        assert!(written.contains("a.b"), "{written}");
    }
}
