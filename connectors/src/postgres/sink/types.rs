//! Connect schemas to PostgreSQL column types, and Connect values to the
//! text PostgreSQL parses for those types: the inverse of the CDC source's
//! mapping (`cdc/types.rs`), so a table captured by CDC and recreated by
//! the sink gets the same column types where the events carry them.
//!
//! | Connect schema (logical name) | column type |
//! |---|---|
//! | int8, int16 / int32 / int64 | `smallint` / `integer` / `bigint` |
//! | float32 / float64 / boolean | `real` / `double precision` / `boolean` |
//! | string | `text` |
//! | bytes | `bytea` |
//! | `…connect.data.Decimal` | `numeric(p,s)` with `connect.decimal.precision`, else `numeric` |
//! | `io.debezium.data.VariableScaleDecimal` | `numeric` |
//! | `…connect.data.Date`, `io.debezium.time.Date` | `date` |
//! | `…connect.data.Time`, `io.debezium.time.Time` / `MicroTime`, `NanoTime` | `time(3)` / `time(6)` |
//! | `…connect.data.Timestamp`, `io.debezium.time.Timestamp` / `MicroTimestamp`, `NanoTimestamp` | `timestamp(3)` / `timestamp(6)` |
//! | `io.debezium.time.ZonedTimestamp` / `ZonedTime` | `timestamptz` / `timetz` |
//! | `io.debezium.time.MicroDuration`, `io.debezium.time.Interval` | `interval` |
//! | `io.debezium.data.Uuid` / `Json` / `Xml` | `uuid` / `json` / `xml` |
//! | `io.debezium.data.Bits` (`length`) | `bit(n)`, `varbit` when unbounded |
//! | array of T | T`[]` |
//!
//! Maps and nested structs have no column type: such a field is refused
//! with its name (flatten the record first).

use chrono::{DateTime, NaiveDate};
use runnel_connect::data::{DecimalValue, Schema, SchemaType, Value};

const CONNECT_DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
const CONNECT_DATE: &str = "org.apache.kafka.connect.data.Date";
const CONNECT_TIME: &str = "org.apache.kafka.connect.data.Time";
const CONNECT_TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";
const VARIABLE_SCALE_DECIMAL: &str = "io.debezium.data.VariableScaleDecimal";
/// The CDC source's `timestamp` `infinity` and `-infinity` (Debezium's).
const POSITIVE_INFINITY: i64 = 9_223_372_036_825_200_000;
const NEGATIVE_INFINITY: i64 = -9_223_372_036_832_400_000;

/// The column type for a field of `schema`.
pub(crate) fn column_type(schema: &Schema) -> Result<String, String> {
    let name = schema.name().unwrap_or("");
    Ok(match schema.schema_type() {
        SchemaType::Int8 | SchemaType::Int16 => "smallint".into(),
        SchemaType::Int32 => match name {
            CONNECT_DATE | "io.debezium.time.Date" => "date".into(),
            CONNECT_TIME | "io.debezium.time.Time" => "time(3)".into(),
            _ => "integer".into(),
        },
        SchemaType::Int64 => match name {
            CONNECT_TIMESTAMP | "io.debezium.time.Timestamp" => "timestamp(3)".into(),
            "io.debezium.time.MicroTimestamp" | "io.debezium.time.NanoTimestamp" => "timestamp(6)".into(),
            "io.debezium.time.MicroTime" | "io.debezium.time.NanoTime" => "time(6)".into(),
            "io.debezium.time.MicroDuration" => "interval".into(),
            _ => "bigint".into(),
        },
        SchemaType::Float32 => "real".into(),
        SchemaType::Float64 => "double precision".into(),
        SchemaType::Boolean => "boolean".into(),
        SchemaType::String => match name {
            "io.debezium.data.Uuid" => "uuid".into(),
            "io.debezium.data.Json" => "json".into(),
            "io.debezium.data.Xml" => "xml".into(),
            "io.debezium.time.ZonedTimestamp" => "timestamptz".into(),
            "io.debezium.time.ZonedTime" => "timetz".into(),
            "io.debezium.time.Interval" => "interval".into(),
            _ => "text".into(),
        },
        SchemaType::Bytes => match name {
            CONNECT_DECIMAL => {
                let scale = schema.parameter("scale").unwrap_or("0");
                match schema.parameter("connect.decimal.precision") {
                    Some(precision) => format!("numeric({precision},{scale})"),
                    None => "numeric".into(),
                }
            }
            "io.debezium.data.Bits" => match schema.parameter("length").and_then(|l| l.parse::<i64>().ok()) {
                Some(n) if n > 0 && n < i64::from(i32::MAX) => format!("bit({n})"),
                _ => "varbit".into(),
            },
            _ => "bytea".into(),
        },
        SchemaType::Struct if name == VARIABLE_SCALE_DECIMAL => "numeric".into(),
        SchemaType::Array => {
            let items = schema.value_schema().ok_or("an array schema without its item schema")?;
            if items.schema_type() == SchemaType::Array {
                return Err("arrays of arrays are not supported".into());
            }
            format!("{}[]", column_type(items)?)
        }
        other => {
            return Err(format!(
                "a {} has no column type: flatten the record first (e.g. the Flatten transform)",
                other.name()
            ))
        }
    })
}

/// The text form of `value` for a column of `schema`'s type; `None` for NULL.
pub(crate) fn encode(schema: &Schema, value: &Value) -> Result<Option<String>, String> {
    if value.is_null() {
        return Ok(None);
    }
    let name = schema.name().unwrap_or("");
    if value.schema_type() != Some(schema.schema_type()) {
        return Err(format!("a {} value for a {} field", value.type_name(), schema.schema_type().name()));
    }
    Ok(Some(match value {
        Value::Int8(v) => v.to_string(),
        Value::Int16(v) => v.to_string(),
        Value::Int32(v) => match name {
            CONNECT_DATE | "io.debezium.time.Date" => date(i64::from(*v))?,
            CONNECT_TIME | "io.debezium.time.Time" => time_of_day(i64::from(*v) * 1_000)?,
            _ => v.to_string(),
        },
        Value::Int64(v) => match name {
            CONNECT_TIMESTAMP | "io.debezium.time.Timestamp" => timestamp(*v, 1_000)?,
            "io.debezium.time.MicroTimestamp" => timestamp(*v, 1)?,
            "io.debezium.time.NanoTimestamp" => timestamp(v.div_euclid(1_000), 1)?,
            "io.debezium.time.MicroTime" => time_of_day(*v)?,
            "io.debezium.time.NanoTime" => time_of_day(v.div_euclid(1_000))?,
            "io.debezium.time.MicroDuration" => format!("{v} microseconds"),
            _ => v.to_string(),
        },
        Value::Float32(v) => float(f64::from(*v)),
        Value::Float64(v) => float(*v),
        Value::Boolean(v) => v.to_string(),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => match name {
            CONNECT_DECIMAL => {
                let scale = schema.parameter("scale").and_then(|s| s.parse().ok()).unwrap_or(0);
                DecimalValue::from_bytes(b, scale).map_err(|e| e.to_string())?.to_string()
            }
            "io.debezium.data.Bits" => {
                let length = schema.parameter("length").and_then(|l| l.parse::<usize>().ok());
                bits(b, length)
            }
            _ => hex_bytea(b),
        },
        Value::Struct(s) if name == VARIABLE_SCALE_DECIMAL => {
            let scale = match s.get("scale") {
                Ok(Value::Int32(scale)) => *scale,
                _ => return Err("a VariableScaleDecimal without an int32 `scale`".into()),
            };
            let Ok(Value::Bytes(unscaled)) = s.get("value") else {
                return Err("a VariableScaleDecimal without bytes `value`".into());
            };
            DecimalValue::from_bytes(unscaled, scale).map_err(|e| e.to_string())?.to_string()
        }
        Value::Array(items) => {
            let item_schema = schema.value_schema().ok_or("an array schema without its item schema")?;
            let mut out = String::from("{");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match encode(item_schema, item)? {
                    None => out.push_str("NULL"),
                    Some(text) => {
                        out.push('"');
                        for c in text.chars() {
                            if c == '"' || c == '\\' {
                                out.push('\\');
                            }
                            out.push(c);
                        }
                        out.push('"');
                    }
                }
            }
            out.push('}');
            out
        }
        other => return Err(format!("a {} has no column type", other.type_name())),
    }))
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        v.to_string()
    }
}

fn date(days: i64) -> Result<String, String> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch is a date");
    let date = epoch
        .checked_add_signed(chrono::Duration::days(days))
        .ok_or_else(|| format!("{days} days from 1970-01-01 is not a date"))?;
    Ok(date.format("%Y-%m-%d").to_string())
}

/// `HH:MM:SS.ffffff` from microseconds since midnight.
fn time_of_day(micros: i64) -> Result<String, String> {
    if !(0..=86_400_000_000).contains(&micros) {
        return Err(format!("{micros} µs is not a time of day"));
    }
    let (secs, frac) = (micros / 1_000_000, micros % 1_000_000);
    Ok(format!("{:02}:{:02}:{:02}.{frac:06}", secs / 3600, secs / 60 % 60, secs % 60))
}

/// A `timestamp` from `value` units of `unit_micros` µs since the epoch.
fn timestamp(value: i64, unit_micros: i64) -> Result<String, String> {
    match value {
        POSITIVE_INFINITY => return Ok("infinity".into()),
        NEGATIVE_INFINITY => return Ok("-infinity".into()),
        _ => {}
    }
    let micros =
        value.checked_mul(unit_micros).ok_or_else(|| format!("timestamp {value} is out of range"))?;
    let at = DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| format!("timestamp {value} is out of range"))?;
    Ok(at.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string())
}

/// `\x0a0b…`, bytea's hex input form.
fn hex_bytea(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("\\x");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The bit string of `io.debezium.data.Bits` (the number, little-endian);
/// `length` bits when known, else every bit of the bytes.
fn bits(bytes: &[u8], length: Option<usize>) -> String {
    let n = length.filter(|&n| n <= bytes.len() * 8).unwrap_or(bytes.len() * 8);
    (0..n).rev().map(|i| if bytes[i / 8] >> (i % 8) & 1 == 1 { '1' } else { '0' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_connect::data::SchemaBuilder;

    fn named(b: SchemaBuilder, name: &str) -> Schema {
        b.name(name).build().unwrap()
    }

    #[test]
    fn debezium_time_types_map_back_to_their_columns_and_text() {
        let ts = named(SchemaBuilder::int64(), "io.debezium.time.MicroTimestamp");
        assert_eq!(column_type(&ts).unwrap(), "timestamp(6)");
        assert_eq!(
            encode(&ts, &Value::Int64(1_700_000_000_123_456)).unwrap().unwrap(),
            "2023-11-14 22:13:20.123456"
        );
        assert_eq!(encode(&ts, &Value::Int64(POSITIVE_INFINITY)).unwrap().unwrap(), "infinity");
        let ms = named(SchemaBuilder::int64(), "io.debezium.time.Timestamp");
        assert_eq!(encode(&ms, &Value::Int64(-1)).unwrap().unwrap(), "1969-12-31 23:59:59.999000");
        let date = named(SchemaBuilder::int32(), "io.debezium.time.Date");
        assert_eq!(
            (
                column_type(&date).unwrap().as_str(),
                encode(&date, &Value::Int32(19_000)).unwrap().unwrap().as_str()
            ),
            ("date", "2022-01-08")
        );
        let time = named(SchemaBuilder::int64(), "io.debezium.time.MicroTime");
        assert_eq!(encode(&time, &Value::Int64(3_723_000_001)).unwrap().unwrap(), "01:02:03.000001");
        let duration = named(SchemaBuilder::int64(), "io.debezium.time.MicroDuration");
        assert_eq!(column_type(&duration).unwrap(), "interval");
    }

    #[test]
    fn decimals_bits_bytes_arrays_and_floats_have_postgres_text_forms() {
        let dec = SchemaBuilder::bytes()
            .name(CONNECT_DECIMAL)
            .parameter("scale", "2")
            .parameter("connect.decimal.precision", "10")
            .build()
            .unwrap();
        assert_eq!(column_type(&dec).unwrap(), "numeric(10,2)");
        let v = Value::Bytes(DecimalValue::new(-12345, 2).to_bytes());
        assert_eq!(encode(&dec, &v).unwrap().unwrap(), "-123.45");
        let bits_schema =
            SchemaBuilder::bytes().name("io.debezium.data.Bits").parameter("length", "5").build().unwrap();
        assert_eq!(column_type(&bits_schema).unwrap(), "bit(5)");
        assert_eq!(encode(&bits_schema, &Value::Bytes(vec![0b10110])).unwrap().unwrap(), "10110");
        let bytes = Schema::of(SchemaType::Bytes);
        assert_eq!(encode(&bytes, &Value::Bytes(vec![0, 255])).unwrap().unwrap(), "\\x00ff");
        let arr = SchemaBuilder::array(Schema::optional_of(SchemaType::String)).build().unwrap();
        assert_eq!(column_type(&arr).unwrap(), "text[]");
        let items = Value::Array(vec![Value::String("a \"b\"".into()), Value::Null]);
        assert_eq!(encode(&arr, &items).unwrap().unwrap(), r#"{"a \"b\"",NULL}"#);
        let f = Schema::of(SchemaType::Float64);
        assert_eq!(encode(&f, &Value::Float64(f64::NEG_INFINITY)).unwrap().unwrap(), "-Infinity");
        assert_eq!(encode(&f, &Value::Null).unwrap(), None);
        let map = SchemaBuilder::map(Schema::of(SchemaType::String), Schema::of(SchemaType::String))
            .build()
            .unwrap();
        assert!(column_type(&map).unwrap_err().contains("flatten"));
        assert!(encode(&f, &Value::String("x".into())).unwrap_err().contains("string value for a float64"));
    }
}
