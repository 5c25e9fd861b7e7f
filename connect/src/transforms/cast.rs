//! `org.apache.kafka.connect.transforms.Cast$Key` / `$Value`: casts fields
//! (`spec=age:int32,score:float64`) or the whole value (`spec=string`) to
//! another primitive type: int8, int16, int32, int64, float32, float64,
//! boolean or string.
//!
//! Numbers narrow like Java's casts (integers wrap, floats saturate through
//! int). Strings parse into the target type. To string: numbers and booleans
//! as text, bytes as base64, decimals in plain notation, `Date`/`Time`/
//! `Timestamp` in ISO-8601 (UTC). Logical sources cast to numbers as their
//! value (`Timestamp`/`Date` to epoch millis, `Decimal` truncated).

use std::collections::HashMap;

use base64::Engine as _;

use super::util::{self, operating, require_map, require_struct, with_operating};
use super::{Target, TransformError, Transformation};
use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance, Validator};
use crate::data::{
    Date, Decimal, DecimalValue, Schema, SchemaBuilder, SchemaType, Struct, Time, Timestamp, Value,
};
use crate::record::ConnectRecord;

const NAME: &str = "Cast";
const MILLIS_PER_DAY: i64 = 86_400_000;

/// Casts fields or the whole key/value.
#[derive(Clone, Debug)]
pub struct Cast {
    target: Target,
    /// `None` as field name: the whole value.
    casts: Vec<(Option<String>, SchemaType)>,
}

fn parse_type(spec_item: &str, name: &str) -> Result<SchemaType, ConfigError> {
    match SchemaType::from_name(name) {
        Some(t) if t.is_primitive() && t != SchemaType::Bytes => Ok(t),
        _ => Err(ConfigError::invalid(
            "spec",
            spec_item,
            format!(
                "`{}` is not a cast target; use int8, int16, int32, int64, float32, float64, boolean or string",
                name.trim()
            ),
        )),
    }
}

impl Cast {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define(
                "spec",
                ConfigType::List,
                Importance::High,
                "field:type pairs, or one type for the whole value.",
            )
            .validate(Validator::NonEmpty)
            .define_with_default(
                "replace.null.with.default",
                ConfigType::Boolean,
                true,
                Importance::Medium,
                "Accepted for compatibility.",
            )
    }

    /// Builds the transform.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `spec` for an item that is not `field:type`
    /// or a lone type, or a target type that cannot be cast to.
    pub fn new(target: Target, props: &HashMap<String, String>) -> Result<Cast, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        let spec = p.get_list("spec").unwrap_or_default();
        let mut casts = Vec::new();
        for item in spec {
            match item.split_once(':') {
                Some((field, t)) if !field.trim().is_empty() => {
                    casts.push((Some(field.trim().to_string()), parse_type(item, t)?))
                }
                Some(_) => return Err(ConfigError::invalid("spec", item, "expected field:type")),
                None if spec.len() == 1 => casts.push((None, parse_type(item, item)?)),
                None => {
                    return Err(ConfigError::invalid(
                        "spec",
                        item,
                        "a whole-value cast must be the only spec item",
                    ))
                }
            }
        }
        Ok(Cast { target, casts })
    }

    fn field_cast(&self, name: &str) -> Option<SchemaType> {
        self.casts.iter().find(|(f, _)| f.as_deref() == Some(name)).map(|(_, t)| *t)
    }

    fn whole(&self) -> Option<SchemaType> {
        match self.casts.as_slice() {
            [(None, t)] => Some(*t),
            _ => None,
        }
    }
}

fn cast_schema(source: &Schema, to: SchemaType) -> Result<Schema, TransformError> {
    let mut b = SchemaBuilder::new(to);
    if source.is_optional() {
        b = b.optional();
    }
    if let Some(d) = source.default_value() {
        b = b.default_value(cast_value(Some(source), d, to, "default")?);
    }
    Ok(b.build()?)
}

/// The integer part of a decimal (toward zero), if it fits an `i128`.
fn truncate(d: &DecimalValue) -> Option<i128> {
    if d.scale >= 0 {
        Some(10i128.checked_pow(d.scale.unsigned_abs()).map_or(0, |f| d.unscaled / f))
    } else {
        10i128.checked_pow(d.scale.unsigned_abs())?.checked_mul(d.unscaled)
    }
}

fn iso_millis(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| millis.to_string())
}

/// Casts one value; `schema` tells logical types apart.
pub(crate) fn cast_value(
    schema: Option<&Schema>,
    value: &Value,
    to: SchemaType,
    field: &str,
) -> Result<Value, TransformError> {
    let fail = |why: String| TransformError::record(NAME, format!("cannot cast `{field}` to {to}: {why}"));
    if value.is_null() {
        return Ok(Value::Null);
    }
    let logical = schema.and_then(Schema::name).unwrap_or_default();
    // Logical types first: their physical value is not what a user casts.
    let value = match (logical, value) {
        (Decimal::LOGICAL_NAME, Value::Bytes(b)) => {
            let scale = schema.map_or(Ok(0), Decimal::scale)?;
            let d = DecimalValue::from_bytes(b, scale)?;
            match to {
                SchemaType::String => return Ok(Value::String(d.to_string())),
                SchemaType::Float32 | SchemaType::Float64 => Value::Float64(d.to_f64()),
                _ => {
                    let truncated = truncate(&d).and_then(|v| i64::try_from(v).ok());
                    Value::Int64(truncated.ok_or_else(|| fail(format!("{d} does not fit int64")))?)
                }
            }
        }
        (Timestamp::LOGICAL_NAME, Value::Int64(ms)) if to == SchemaType::String => {
            return Ok(Value::String(iso_millis(*ms)))
        }
        (Date::LOGICAL_NAME, Value::Int32(days)) => {
            let ms = i64::from(*days) * MILLIS_PER_DAY;
            if to == SchemaType::String {
                return Ok(Value::String(iso_millis(ms)[..10].to_string()));
            }
            Value::Int64(ms)
        }
        (Time::LOGICAL_NAME, Value::Int32(ms)) if to == SchemaType::String => {
            return Ok(Value::String(iso_millis(i64::from(*ms))[11..].to_string()));
        }
        _ => value.clone(),
    };
    // Integers widened to i64, floats to f64, for the numeric paths.
    let (int, float) = match &value {
        Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => {
            let i = value.as_i64().unwrap_or_default();
            (Some(i), None)
        }
        Value::Float32(f) => (None, Some(f64::from(*f))),
        Value::Float64(f) => (None, Some(*f)),
        Value::Boolean(b) => (Some(i64::from(*b)), None),
        _ => (None, None),
    };
    let text = match &value {
        Value::String(s) => Some(s.trim()),
        _ => None,
    };
    let parse_err = |s: &str| fail(format!("`{s}` is not a valid {to}"));
    Ok(match to {
        SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 | SchemaType::Int64 => {
            let wide: i64 = match (int, float, text) {
                (Some(i), _, _) => i,
                // Java: float to int/long saturates; to byte/short via int.
                (_, Some(f), _) if to == SchemaType::Int64 => f as i64,
                (_, Some(f), _) => i64::from(f as i32),
                (_, _, Some(s)) => {
                    let parsed = match to {
                        SchemaType::Int8 => s.parse::<i8>().map(i64::from),
                        SchemaType::Int16 => s.parse::<i16>().map(i64::from),
                        SchemaType::Int32 => s.parse::<i32>().map(i64::from),
                        _ => s.parse::<i64>(),
                    };
                    parsed.map_err(|_| parse_err(s))?
                }
                _ => return Err(fail(format!("a {} cannot be cast", value.type_name()))),
            };
            match to {
                SchemaType::Int8 => Value::Int8(wide as i8),
                SchemaType::Int16 => Value::Int16(wide as i16),
                SchemaType::Int32 => Value::Int32(wide as i32),
                _ => Value::Int64(wide),
            }
        }
        SchemaType::Float32 | SchemaType::Float64 => {
            let f = match (int, float, text) {
                (Some(i), _, _) => i as f64,
                (_, Some(f), _) => f,
                (_, _, Some(s)) => s.parse::<f64>().map_err(|_| parse_err(s))?,
                _ => return Err(fail(format!("a {} cannot be cast", value.type_name()))),
            };
            if to == SchemaType::Float32 {
                Value::Float32(f as f32)
            } else {
                Value::Float64(f)
            }
        }
        SchemaType::Boolean => match (int, float, text) {
            (Some(i), _, _) => Value::Boolean(i != 0),
            (_, Some(f), _) => Value::Boolean(f != 0.0),
            (_, _, Some(s)) => Value::Boolean(s.eq_ignore_ascii_case("true")),
            _ => return Err(fail(format!("a {} cannot be cast", value.type_name()))),
        },
        SchemaType::String => match &value {
            Value::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Array(_) | Value::Map(_) | Value::Struct(_) => {
                return Err(fail(format!("a {} cannot be cast", value.type_name())))
            }
            other => Value::String(other.to_string()),
        },
        _ => return Err(fail("unsupported target type".into())),
    })
}

impl Transformation for Cast {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        let (schema, value) = operating(&record, self.target);
        if value.is_null() {
            return Ok(Some(record));
        }
        if let Some(to) = self.whole() {
            let new_schema = schema.map(|s| cast_schema(s, to)).transpose()?;
            let new_value = cast_value(schema, value, to, "value")?;
            return Ok(Some(with_operating(record, self.target, new_schema, new_value)));
        }
        let (new_schema, new_value) = match schema {
            None => {
                let mut entries = require_map(value, NAME, "casting")?.to_vec();
                for (k, v) in &mut entries {
                    if let Some((name, to)) = k.as_str().and_then(|n| Some((n, self.field_cast(n)?))) {
                        *v = cast_value(None, v, to, name)?;
                    }
                }
                (None, Value::Map(entries))
            }
            Some(schema) => {
                let s = require_struct(value, NAME, "casting")?;
                let mut b = util::struct_basics(schema);
                let mut values = Vec::with_capacity(s.values().len());
                for (field, v) in schema.fields().iter().zip(s.values()) {
                    match self.field_cast(field.name()) {
                        Some(to) => {
                            b = b.field(field.name(), cast_schema(field.schema(), to)?);
                            values.push(cast_value(Some(field.schema()), v, to, field.name())?);
                        }
                        None => {
                            b = b.field(field.name(), field.schema().clone());
                            values.push(v.clone());
                        }
                    }
                }
                let new_schema = b.build()?;
                (Some(new_schema.clone()), Value::Struct(Struct::with_values(new_schema, values)?))
            }
        };
        Ok(Some(with_operating(record, self.target, new_schema, new_value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::util::tests::props;

    #[test]
    fn casts_struct_fields_and_their_schemas() {
        let schema = SchemaBuilder::structure()
            .field("age", Schema::of(SchemaType::String))
            .field("score", Schema::optional_of(SchemaType::Int32))
            .field("big", Schema::of(SchemaType::Int64))
            .field("price", Decimal::schema(2))
            .build()
            .unwrap();
        let s = Struct::with_values(
            schema.clone(),
            vec!["42".into(), Value::Int32(7), Value::Int64(300), Value::Bytes(vec![4, 0xd2])],
        )
        .unwrap();
        let t =
            Cast::new(Target::Value, &props(&[("spec", "age:int16,score:float64,big:int8,price:string")]))
                .unwrap();
        let out = t.apply(ConnectRecord::default().with_value(Some(schema), s)).unwrap().unwrap();
        let v = out.value.as_struct().unwrap();
        assert_eq!(
            v.values(),
            &[Value::Int16(42), Value::Float64(7.0), Value::Int8(44), Value::String("12.34".into())]
        );
        assert_eq!(v.schema().field("score").unwrap().schema(), &Schema::optional_of(SchemaType::Float64));
    }

    #[test]
    fn casts_a_whole_schemaless_value() {
        let t = Cast::new(Target::Value, &props(&[("spec", "string")])).unwrap();
        let out = t.apply(ConnectRecord::new("t", 12i64)).unwrap().unwrap();
        assert_eq!(out.value, Value::String("12".into()));
        let t = Cast::new(Target::Key, &props(&[("spec", "boolean")])).unwrap();
        let out = t.apply(ConnectRecord::default().with_key(Some(Schema::of(SchemaType::Int32)), 0)).unwrap();
        let out = out.unwrap();
        assert_eq!((out.key, out.key_schema), (Value::Boolean(false), Some(Schema::of(SchemaType::Boolean))));
    }

    #[test]
    fn casts_schemaless_map_fields() {
        let t = Cast::new(Target::Value, &props(&[("spec", "n:int32,f:string")])).unwrap();
        let v = Value::Map(vec![
            ("n".into(), "-5".into()),
            ("f".into(), 1.5f64.into()),
            ("x".into(), "y".into()),
        ]);
        let out = t.apply(ConnectRecord::new("t", v)).unwrap().unwrap();
        assert_eq!(
            out.value,
            Value::Map(vec![
                ("n".into(), Value::Int32(-5)),
                ("f".into(), "1.5".into()),
                ("x".into(), "y".into())
            ])
        );
    }

    #[test]
    fn timestamps_cast_to_iso_strings() {
        let v =
            cast_value(Some(&Timestamp::schema()), &Value::Int64(1_000), SchemaType::String, "t").unwrap();
        assert_eq!(v, Value::String("1970-01-01T00:00:01.000Z".into()));
    }

    #[test]
    fn unparseable_strings_name_the_field() {
        let t = Cast::new(Target::Value, &props(&[("spec", "n:int8")])).unwrap();
        let v = Value::Map(vec![("n".into(), "300".into())]);
        let err = t.apply(ConnectRecord::new("t", v)).unwrap_err();
        assert_eq!(err.to_string(), "Cast: cannot cast `n` to int8: `300` is not a valid int8");
    }

    #[test]
    fn bad_spec_names_the_key() {
        let err = Cast::new(Target::Value, &props(&[("spec", "a:struct")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value `a:struct` for configuration `spec`: `struct` is not a cast target; use int8, int16, \
             int32, int64, float32, float64, boolean or string"
        );
    }
}
