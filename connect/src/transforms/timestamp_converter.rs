//! `org.apache.kafka.connect.transforms.TimestampConverter$Key` / `$Value`:
//! converts a timestamp field (or the whole value, when `field` is empty)
//! between `string` (with `format`), `unix` (epoch in `unix.precision`),
//! `Date`, `Time` and `Timestamp`. All times are UTC.
//!
//! Inputs are recognised by schema (`Timestamp`, `Date`, `Time`, `int64` as
//! unix, `string`) or, schemaless, by value (integers as unix, strings
//! parsed with `format`). Schemaless `Date`/`Time`/`Timestamp` outputs are
//! their physical values (days, millis of day, epoch millis).

use std::collections::HashMap;

use super::date_format::DateFormat;
use super::util::{self, operating, require_map, require_struct, with_operating};
use super::{Target, TransformError, Transformation};
use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance, Validator};
use crate::data::{Date, Schema, SchemaBuilder, SchemaType, Struct, Time, Timestamp, Value};
use crate::record::ConnectRecord;

const NAME: &str = "TimestampConverter";
const MILLIS_PER_DAY: i64 = 86_400_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    String,
    Unix,
    Date,
    Time,
    Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Precision {
    Seconds,
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

impl Precision {
    fn to_millis(self, v: i64) -> i64 {
        match self {
            Precision::Seconds => v.saturating_mul(1000),
            Precision::Milliseconds => v,
            Precision::Microseconds => v / 1000,
            Precision::Nanoseconds => v / 1_000_000,
        }
    }

    fn of_millis(self, ms: i64) -> i64 {
        match self {
            Precision::Seconds => ms / 1000,
            Precision::Milliseconds => ms,
            Precision::Microseconds => ms.saturating_mul(1000),
            Precision::Nanoseconds => ms.saturating_mul(1_000_000),
        }
    }
}

/// Converts timestamps between representations.
#[derive(Clone, Debug)]
pub struct TimestampConverter {
    target: Target,
    field: Option<String>,
    to: Kind,
    format: Option<DateFormat>,
    precision: Precision,
}

impl TimestampConverter {
    /// The transform's keys.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define_with_default(
                "field",
                ConfigType::String,
                "",
                Importance::High,
                "Field to convert; empty: the whole value.",
            )
            .define(
                "target.type",
                ConfigType::String,
                Importance::High,
                "string, unix, Date, Time or Timestamp.",
            )
            .validate(Validator::OneOf(
                ["string", "unix", "Date", "Time", "Timestamp"].map(String::from).to_vec(),
            ))
            .define_with_default(
                "format",
                ConfigType::String,
                "",
                Importance::Medium,
                "SimpleDateFormat pattern.",
            )
            .define_with_default(
                "unix.precision",
                ConfigType::String,
                "milliseconds",
                Importance::Low,
                "seconds, milliseconds, microseconds or nanoseconds.",
            )
            .validate(Validator::OneOf(
                ["seconds", "milliseconds", "microseconds", "nanoseconds"].map(String::from).to_vec(),
            ))
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
    /// A [`ConfigError`] naming a bad, missing or unknown key; `format` is
    /// required for `target.type=string` and must be a supported pattern.
    pub fn new(target: Target, props: &HashMap<String, String>) -> Result<TimestampConverter, ConfigError> {
        let p = util::parse(&Self::config_def(), props)?;
        let to = match p.require_string("target.type")?.to_ascii_lowercase().as_str() {
            "string" => Kind::String,
            "unix" => Kind::Unix,
            "date" => Kind::Date,
            "time" => Kind::Time,
            _ => Kind::Timestamp,
        };
        let raw_format = p.get_string("format").unwrap_or_default();
        let format = if raw_format.is_empty() {
            None
        } else {
            Some(DateFormat::new(raw_format).map_err(|e| ConfigError::invalid("format", raw_format, e))?)
        };
        if to == Kind::String && format.is_none() {
            return Err(ConfigError::invalid("format", "", "a format is required for target.type=string"));
        }
        let precision =
            match p.get_string("unix.precision").unwrap_or("milliseconds").to_ascii_lowercase().as_str() {
                "seconds" => Precision::Seconds,
                "microseconds" => Precision::Microseconds,
                "nanoseconds" => Precision::Nanoseconds,
                _ => Precision::Milliseconds,
            };
        let field = p.get_string("field").filter(|f| !f.is_empty()).map(str::to_string);
        Ok(TimestampConverter { target, field, to, format, precision })
    }

    fn input_kind(schema: Option<&Schema>, value: &Value) -> Result<Kind, TransformError> {
        let kind = match schema {
            Some(s) => match (s.name(), s.schema_type()) {
                (Some(Timestamp::LOGICAL_NAME), _) => Some(Kind::Timestamp),
                (Some(Date::LOGICAL_NAME), _) => Some(Kind::Date),
                (Some(Time::LOGICAL_NAME), _) => Some(Kind::Time),
                (_, SchemaType::Int64) => Some(Kind::Unix),
                (_, SchemaType::String) => Some(Kind::String),
                _ => None,
            },
            None => match value {
                Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => Some(Kind::Unix),
                Value::String(_) => Some(Kind::String),
                _ => None,
            },
        };
        kind.ok_or_else(|| {
            let found = schema.map_or_else(|| value.type_name().to_string(), Schema::describe);
            TransformError::record(NAME, format!("cannot convert a timestamp from {found}"))
        })
    }

    fn to_millis(&self, kind: Kind, value: &Value) -> Result<i64, TransformError> {
        let bad = || {
            TransformError::record(NAME, format!("unexpected {} value for a timestamp", value.type_name()))
        };
        match (kind, value) {
            (Kind::String, Value::String(s)) => match &self.format {
                Some(f) => f.parse(s).map_err(|e| TransformError::record(NAME, e)),
                None => Err(TransformError::record(NAME, "a format is needed to parse string timestamps")),
            },
            (Kind::Unix, v) => Ok(self.precision.to_millis(v.as_i64().ok_or_else(bad)?)),
            (Kind::Date, Value::Int32(days)) => Ok(i64::from(*days) * MILLIS_PER_DAY),
            (Kind::Time, Value::Int32(ms)) => Ok(i64::from(*ms)),
            (Kind::Timestamp, Value::Int64(ms)) => Ok(*ms),
            _ => Err(bad()),
        }
    }

    fn output(&self, ms: i64) -> Result<Value, TransformError> {
        Ok(match self.to {
            Kind::String => {
                let f = self.format.as_ref().ok_or_else(|| TransformError::record(NAME, "no format"))?;
                Value::String(f.format(ms).map_err(|e| TransformError::record(NAME, e))?)
            }
            Kind::Unix => Value::Int64(self.precision.of_millis(ms)),
            Kind::Date => Value::Int32(
                i32::try_from(ms.div_euclid(MILLIS_PER_DAY))
                    .map_err(|_| TransformError::record(NAME, format!("{ms} is out of range for a Date")))?,
            ),
            Kind::Time => Value::Int32(ms.rem_euclid(MILLIS_PER_DAY) as i32),
            Kind::Timestamp => Value::Int64(ms),
        })
    }

    fn output_schema(&self, optional: bool) -> Result<Schema, TransformError> {
        let b = match self.to {
            Kind::String => SchemaBuilder::string(),
            Kind::Unix => SchemaBuilder::int64(),
            Kind::Date => Date::builder(),
            Kind::Time => Time::builder(),
            Kind::Timestamp => Timestamp::builder(),
        };
        Ok(if optional { b.optional() } else { b }.build()?)
    }

    fn convert(&self, schema: Option<&Schema>, value: &Value) -> Result<Value, TransformError> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let kind = Self::input_kind(schema, value)?;
        let ms = self.to_millis(kind, value)?;
        self.output(ms)
    }
}

impl Transformation for TimestampConverter {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformError> {
        let (schema, value) = operating(&record, self.target);
        let Some(field) = &self.field else {
            let new_schema = schema.map(|s| self.output_schema(s.is_optional())).transpose()?;
            let new_value = self.convert(schema, value)?;
            return Ok(Some(with_operating(record, self.target, new_schema, new_value)));
        };
        if value.is_null() {
            return Ok(Some(record));
        }
        let (new_schema, new_value) = match schema {
            None => {
                let mut entries = require_map(value, NAME, "converting timestamp formats")?.to_vec();
                for (k, v) in &mut entries {
                    if k.as_str() == Some(field.as_str()) {
                        *v = self.convert(None, v)?;
                    }
                }
                (None, Value::Map(entries))
            }
            Some(schema) => {
                let s = require_struct(value, NAME, "converting timestamp formats")?;
                if schema.field(field).is_none() {
                    return Err(TransformError::record(
                        NAME,
                        format!("`{field}` is not a field of the struct"),
                    ));
                }
                let mut b = util::struct_basics(schema);
                let mut values = Vec::with_capacity(s.values().len());
                for (f, v) in schema.fields().iter().zip(s.values()) {
                    if f.name() == field {
                        b = b.field(f.name(), self.output_schema(f.schema().is_optional())?);
                        values.push(self.convert(Some(f.schema()), v)?);
                    } else {
                        b = b.field(f.name(), f.schema().clone());
                        values.push(v.clone());
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

    const MS: i64 = 1_641_600_000_123; // 2022-01-08T00:00:00.123Z

    #[test]
    fn struct_timestamp_field_to_formatted_string() {
        let schema = SchemaBuilder::structure()
            .field("at", Timestamp::schema())
            .field("x", Schema::of(SchemaType::Int8))
            .build()
            .unwrap();
        let s = Struct::with_values(schema.clone(), vec![MS.into(), Value::Int8(1)]).unwrap();
        let t = TimestampConverter::new(
            Target::Value,
            &props(&[("field", "at"), ("target.type", "string"), ("format", "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")]),
        )
        .unwrap();
        let out = t.apply(ConnectRecord::default().with_value(Some(schema), s)).unwrap().unwrap();
        let v = out.value.as_struct().unwrap();
        assert_eq!(v.get("at").unwrap(), &Value::String("2022-01-08T00:00:00.123Z".into()));
        assert_eq!(v.schema().field("at").unwrap().schema(), &Schema::of(SchemaType::String));
    }

    #[test]
    fn schemaless_string_field_to_unix_seconds() {
        let t = TimestampConverter::new(
            Target::Value,
            &props(&[
                ("field", "at"),
                ("target.type", "unix"),
                ("format", "yyyy-MM-dd HH:mm"),
                ("unix.precision", "seconds"),
            ]),
        )
        .unwrap();
        let v = Value::Map(vec![("at".into(), "1970-01-02 00:01".into())]);
        let out = t.apply(ConnectRecord::new("t", v)).unwrap().unwrap();
        assert_eq!(out.value.map_get("at"), Some(&Value::Int64(86_460)));
    }

    #[test]
    fn whole_unix_value_to_date_and_time() {
        let to_date = TimestampConverter::new(Target::Value, &props(&[("target.type", "Date")])).unwrap();
        let r = ConnectRecord::default().with_value(Some(Schema::of(SchemaType::Int64)), MS);
        let out = to_date.apply(r.clone()).unwrap().unwrap();
        assert_eq!(out.value, Value::Int32(19_000));
        assert_eq!(out.value_schema, Some(Date::schema()));
        let to_time = TimestampConverter::new(Target::Value, &props(&[("target.type", "Time")])).unwrap();
        assert_eq!(to_time.apply(r).unwrap().unwrap().value, Value::Int32(123));
    }

    #[test]
    fn date_to_timestamp_uses_midnight() {
        let t = TimestampConverter::new(Target::Key, &props(&[("target.type", "Timestamp")])).unwrap();
        let r = ConnectRecord::default().with_key(Some(Date::schema()), Value::Int32(2));
        assert_eq!(t.apply(r).unwrap().unwrap().key, Value::Int64(2 * MILLIS_PER_DAY));
    }

    #[test]
    fn string_target_needs_a_format() {
        let err = TimestampConverter::new(Target::Value, &props(&[("target.type", "string")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value `` for configuration `format`: a format is required for target.type=string"
        );
        let err = TimestampConverter::new(Target::Value, &props(&[("target.type", "epoch")])).unwrap_err();
        assert_eq!(err.key(), "target.type");
    }
}
