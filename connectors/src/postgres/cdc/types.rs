//! PostgreSQL column types as Debezium maps them to Kafka Connect: the
//! schema of each column (logical names included) and the conversion of a
//! value's text form, which is what both pgoutput (protocol 1) and the
//! snapshot's text-mode queries deliver.
//!
//! | PostgreSQL | Connect | logical name / notes |
//! |---|---|---|
//! | `bool`, `bit(1)` | boolean | |
//! | `int2` / `int4` / `int8`, `oid` | int16 / int32 / int64 | |
//! | `float4` / `float8` | float32 / float64 | |
//! | `numeric(p,s)` | bytes / float64 / string | `decimal.handling.mode` precise: `org.apache.kafka.connect.data.Decimal` (scale, `connect.decimal.precision`) |
//! | `numeric` (no scale) | struct / float64 / string | precise: `io.debezium.data.VariableScaleDecimal` {scale, value} |
//! | `money` | bytes / float64 / string | precise: `Decimal` with scale `money.fraction.digits` |
//! | `char`, `varchar`, `text`, `name`, `citext`, `inet`, `cidr`, `macaddr*`, ranges | string | |
//! | `bytea` | bytes or string | `binary.handling.mode`: bytes, base64, base64-url-safe, hex |
//! | `uuid` / `json`, `jsonb` / `xml` / `ltree` | string | `io.debezium.data.Uuid` / `Json` / `Xml` / `Ltree` |
//! | `date` | int32 | `io.debezium.time.Date` (days; `connect`: `org.apache.kafka.connect.data.Date`) |
//! | `time(p)` | int32 / int64 | adaptive: `io.debezium.time.Time` (ms) for p ≤ 3, else `MicroTime` (µs); `connect`: Connect `Time` |
//! | `timetz` | string | `io.debezium.time.ZonedTime`, in UTC |
//! | `timestamp(p)` | int64 | adaptive: `io.debezium.time.Timestamp` (ms) for p ≤ 3, else `MicroTimestamp`; `connect`: Connect `Timestamp` |
//! | `timestamptz(p)` | string | `io.debezium.time.ZonedTimestamp`: ISO 8601 in UTC, p fraction digits |
//! | `interval` | int64 / string | `interval.handling.mode` numeric: `io.debezium.time.MicroDuration`; string: `io.debezium.time.Interval` |
//! | `bit(n)`, `varbit` | bytes | `io.debezium.data.Bits` (`length`) |
//! | enums | string | `io.debezium.data.Enum` (`allowed`) |
//! | arrays of the above | array | of an optional element schema |
//! | anything else | string | the text form, with one warning per column |

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use runnel_connect::data::{Schema, SchemaBuilder, Struct, Value};

/// `decimal.handling.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DecimalMode {
    Precise,
    Double,
    String,
}

/// `time.precision.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimePrecisionMode {
    Adaptive,
    AdaptiveTimeMicroseconds,
    Connect,
}

/// `binary.handling.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryMode {
    Bytes,
    Base64,
    Base64UrlSafe,
    Hex,
}

/// `interval.handling.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IntervalMode {
    Numeric,
    String,
}

/// The modes that decide how values are represented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TypeModes {
    pub(crate) decimal: DecimalMode,
    pub(crate) time: TimePrecisionMode,
    pub(crate) binary: BinaryMode,
    pub(crate) interval: IntervalMode,
    pub(crate) money_fraction_digits: i32,
}

impl Default for TypeModes {
    fn default() -> Self {
        TypeModes {
            decimal: DecimalMode::Precise,
            time: TimePrecisionMode::Adaptive,
            binary: BinaryMode::Bytes,
            interval: IntervalMode::Numeric,
            money_fraction_digits: 2,
        }
    }
}

/// A column type, resolved from the catalog (domains to their base type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// `numeric(precision, scale)`; both `None` for a bare `numeric`.
    Numeric {
        precision: Option<u32>,
        scale: Option<i32>,
    },
    Money,
    /// A type whose text form is the value (character types, network
    /// addresses, ranges, ...).
    Text,
    Bytea,
    Uuid,
    Json,
    Xml,
    Ltree,
    Date,
    /// `time(p)`; `p` is 6 when not given.
    Time(u32),
    TimeTz,
    Timestamp(u32),
    TimestampTz(u32),
    Interval,
    /// `bit(n)` (`n` = 1 maps to boolean) or `varbit(n)` (`None`: no limit).
    Bits(Option<u32>),
    Enum(Arc<[String]>),
    Array(Box<PgType>),
    /// A type with no mapping: sent as its text form, with a warning.
    Unknown(String),
}

impl PgType {
    /// A built-in type by its `pg_catalog` name and the column's type
    /// modifier (`atttypmod`); `None` for a name not known here.
    pub(crate) fn builtin(name: &str, typmod: i32) -> Option<PgType> {
        let precision = |default: u32| if typmod >= 0 { typmod as u32 } else { default };
        Some(match name {
            "bool" => PgType::Bool,
            "int2" => PgType::Int2,
            "int4" => PgType::Int4,
            "int8" | "oid" => PgType::Int8,
            "float4" => PgType::Float4,
            "float8" => PgType::Float8,
            "numeric" => {
                if typmod >= 4 {
                    let m = typmod - 4;
                    // The scale is the low 16 bits, signed since PG 15.
                    PgType::Numeric {
                        precision: Some((m >> 16) as u32 & 0xFFFF),
                        scale: Some((m & 0xFFFF) as i16 as i32),
                    }
                } else {
                    PgType::Numeric { precision: None, scale: None }
                }
            }
            "money" => PgType::Money,
            "text" | "varchar" | "bpchar" | "char" | "name" | "citext" | "inet" | "cidr" | "macaddr"
            | "macaddr8" | "int4range" | "int8range" | "numrange" | "tsrange" | "tstzrange" | "daterange" => {
                PgType::Text
            }
            "bytea" => PgType::Bytea,
            "uuid" => PgType::Uuid,
            "json" | "jsonb" => PgType::Json,
            "xml" => PgType::Xml,
            "ltree" => PgType::Ltree,
            "date" => PgType::Date,
            "time" => PgType::Time(precision(6)),
            "timetz" => PgType::TimeTz,
            "timestamp" => PgType::Timestamp(precision(6)),
            "timestamptz" => PgType::TimestampTz(precision(6)),
            "interval" => PgType::Interval,
            "bit" => PgType::Bits(Some(precision(1))),
            "varbit" => PgType::Bits(if typmod >= 0 { Some(typmod as u32) } else { None }),
            _ => return None,
        })
    }

    /// Whether values of this type need a warning (no mapping).
    pub(crate) fn is_unknown(&self) -> bool {
        match self {
            PgType::Unknown(_) => true,
            PgType::Array(element) => element.is_unknown(),
            _ => false,
        }
    }

    /// The Connect schema of a column of this type (required; the caller
    /// makes nullable columns optional).
    pub(crate) fn schema(&self, modes: &TypeModes) -> SchemaBuilder {
        let logical = |b: SchemaBuilder, name: &str| b.name(name).version(1);
        match self {
            PgType::Bool | PgType::Bits(Some(1)) => SchemaBuilder::boolean(),
            PgType::Int2 => SchemaBuilder::int16(),
            PgType::Int4 => SchemaBuilder::int32(),
            PgType::Int8 => SchemaBuilder::int64(),
            PgType::Float4 => SchemaBuilder::float32(),
            PgType::Float8 => SchemaBuilder::float64(),
            PgType::Numeric { precision, scale } => match modes.decimal {
                DecimalMode::Double => SchemaBuilder::float64(),
                DecimalMode::String => SchemaBuilder::string(),
                DecimalMode::Precise => match (precision, scale) {
                    (Some(p), Some(s)) => decimal_schema(*s, Some(*p)),
                    _ => variable_scale_decimal_schema(),
                },
            },
            PgType::Money => match modes.decimal {
                DecimalMode::Double => SchemaBuilder::float64(),
                DecimalMode::String => SchemaBuilder::string(),
                DecimalMode::Precise => decimal_schema(modes.money_fraction_digits, None),
            },
            PgType::Text | PgType::Unknown(_) => SchemaBuilder::string(),
            PgType::Bytea => match modes.binary {
                BinaryMode::Bytes => SchemaBuilder::bytes(),
                _ => SchemaBuilder::string(),
            },
            PgType::Uuid => logical(SchemaBuilder::string(), "io.debezium.data.Uuid"),
            PgType::Json => logical(SchemaBuilder::string(), "io.debezium.data.Json"),
            PgType::Xml => logical(SchemaBuilder::string(), "io.debezium.data.Xml"),
            PgType::Ltree => logical(SchemaBuilder::string(), "io.debezium.data.Ltree"),
            PgType::Date => match modes.time {
                TimePrecisionMode::Connect => {
                    logical(SchemaBuilder::int32(), "org.apache.kafka.connect.data.Date")
                }
                _ => logical(SchemaBuilder::int32(), "io.debezium.time.Date"),
            },
            PgType::Time(p) => match (modes.time, *p <= 3) {
                (TimePrecisionMode::Connect, _) => {
                    logical(SchemaBuilder::int32(), "org.apache.kafka.connect.data.Time")
                }
                (TimePrecisionMode::Adaptive, true) => {
                    logical(SchemaBuilder::int32(), "io.debezium.time.Time")
                }
                _ => logical(SchemaBuilder::int64(), "io.debezium.time.MicroTime"),
            },
            PgType::TimeTz => logical(SchemaBuilder::string(), "io.debezium.time.ZonedTime"),
            PgType::Timestamp(p) => match (modes.time, *p <= 3) {
                (TimePrecisionMode::Connect, _) => {
                    logical(SchemaBuilder::int64(), "org.apache.kafka.connect.data.Timestamp")
                }
                (_, true) => logical(SchemaBuilder::int64(), "io.debezium.time.Timestamp"),
                _ => logical(SchemaBuilder::int64(), "io.debezium.time.MicroTimestamp"),
            },
            PgType::TimestampTz(_) => logical(SchemaBuilder::string(), "io.debezium.time.ZonedTimestamp"),
            PgType::Interval => match modes.interval {
                IntervalMode::Numeric => logical(SchemaBuilder::int64(), "io.debezium.time.MicroDuration"),
                IntervalMode::String => logical(SchemaBuilder::string(), "io.debezium.time.Interval"),
            },
            PgType::Bits(n) => logical(SchemaBuilder::bytes(), "io.debezium.data.Bits")
                .parameter("length", n.unwrap_or(i32::MAX as u32).to_string()),
            PgType::Enum(labels) => logical(SchemaBuilder::string(), "io.debezium.data.Enum")
                .parameter("allowed", labels.join(",")),
            PgType::Array(element) => {
                let element = element.schema(modes).optional().build().expect("element schemas are valid");
                SchemaBuilder::array(element)
            }
        }
    }

    /// Converts a value's text form.
    ///
    /// # Errors
    /// A message saying why the text is not a value of this type (the
    /// caller logs it and emits null).
    pub(crate) fn convert(&self, text: &str, modes: &TypeModes, schema: &Schema) -> Result<Value, String> {
        let bad = || format!("{text:?} is not a valid {}", self.describe());
        Ok(match self {
            PgType::Bool => Value::Boolean(match text {
                "t" | "true" => true,
                "f" | "false" => false,
                _ => return Err(bad()),
            }),
            PgType::Bits(Some(1)) => Value::Boolean(match text {
                "1" => true,
                "0" => false,
                _ => return Err(bad()),
            }),
            PgType::Int2 => Value::Int16(text.parse().map_err(|_| bad())?),
            PgType::Int4 => Value::Int32(text.parse().map_err(|_| bad())?),
            PgType::Int8 => Value::Int64(text.parse().map_err(|_| bad())?),
            PgType::Float4 => Value::Float32(parse_float(text).ok_or_else(bad)? as f32),
            PgType::Float8 => Value::Float64(parse_float(text).ok_or_else(bad)?),
            PgType::Numeric { precision: _, scale } => {
                numeric_value(text, *scale, modes.decimal, schema).ok_or_else(bad)?
            }
            PgType::Money => {
                let plain = money_to_plain(text).ok_or_else(bad)?;
                numeric_value(&plain, Some(modes.money_fraction_digits), modes.decimal, schema)
                    .ok_or_else(bad)?
            }
            PgType::Text
            | PgType::Unknown(_)
            | PgType::Uuid
            | PgType::Json
            | PgType::Xml
            | PgType::Ltree
            | PgType::Enum(_) => Value::String(text.to_string()),
            PgType::Bytea => {
                let bytes = parse_bytea(text).ok_or_else(bad)?;
                match modes.binary {
                    BinaryMode::Bytes => Value::Bytes(bytes),
                    BinaryMode::Base64 => {
                        Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
                    }
                    BinaryMode::Base64UrlSafe => {
                        Value::String(base64::engine::general_purpose::URL_SAFE.encode(bytes))
                    }
                    BinaryMode::Hex => Value::String(text.trim_start_matches("\\x").to_ascii_lowercase()),
                }
            }
            PgType::Date => {
                let date = parse_date(text).ok_or_else(bad)?;
                let days = date
                    .signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch"))
                    .num_days();
                Value::Int32(i32::try_from(days).map_err(|_| bad())?)
            }
            PgType::Time(p) => {
                let micros = parse_time(text).ok_or_else(bad)?;
                match (modes.time, *p <= 3) {
                    (TimePrecisionMode::Connect, _) | (TimePrecisionMode::Adaptive, true) => {
                        Value::Int32((micros / 1000) as i32)
                    }
                    _ => Value::Int64(micros),
                }
            }
            PgType::TimeTz => Value::String(zoned_time(text).ok_or_else(bad)?),
            PgType::Timestamp(p) => {
                let micros = match text {
                    "infinity" => return Ok(Value::Int64(9_223_372_036_825_200_000)),
                    "-infinity" => return Ok(Value::Int64(-9_223_372_036_832_400_000)),
                    _ => parse_timestamp(text).ok_or_else(bad)?,
                };
                match (modes.time, *p <= 3) {
                    (TimePrecisionMode::Connect, _) | (_, true) => Value::Int64(micros.div_euclid(1000)),
                    _ => Value::Int64(micros),
                }
            }
            PgType::TimestampTz(p) => match text {
                "infinity" | "-infinity" => Value::String(text.to_string()),
                _ => Value::String(zoned_timestamp(text, *p).ok_or_else(bad)?),
            },
            PgType::Interval => {
                let interval = parse_iso_interval(text).ok_or_else(bad)?;
                match modes.interval {
                    IntervalMode::Numeric => Value::Int64(interval.micros()),
                    IntervalMode::String => Value::String(interval.iso()),
                }
            }
            PgType::Bits(_) => Value::Bytes(bits_to_bytes(text).ok_or_else(bad)?),
            PgType::Array(element) => {
                let element_schema =
                    schema.value_schema().ok_or_else(|| "an array without element schema".to_string())?;
                let items = parse_array(text).ok_or_else(bad)?;
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    values.push(match item {
                        None => Value::Null,
                        Some(item) => element.convert(&item, modes, element_schema)?,
                    });
                }
                Value::Array(values)
            }
        })
    }

    /// The type, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            PgType::Unknown(name) => name.clone(),
            PgType::Array(element) => format!("{}[]", element.describe()),
            PgType::Enum(_) => "enum".into(),
            other => format!("{other:?}").to_lowercase(),
        }
    }
}

fn decimal_schema(scale: i32, precision: Option<u32>) -> SchemaBuilder {
    let b = SchemaBuilder::bytes()
        .name("org.apache.kafka.connect.data.Decimal")
        .version(1)
        .parameter("scale", scale.to_string());
    match precision {
        Some(p) => b.parameter("connect.decimal.precision", p.to_string()),
        None => b,
    }
}

fn variable_scale_decimal_schema() -> SchemaBuilder {
    SchemaBuilder::structure()
        .name("io.debezium.data.VariableScaleDecimal")
        .version(1)
        .doc("Variable scaled decimal")
        .field("scale", Schema::of(runnel_connect::data::SchemaType::Int32))
        .field("value", Schema::of(runnel_connect::data::SchemaType::Bytes))
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// A decimal's digits: sign, integer digits and fraction digits.
struct DecimalText<'a> {
    negative: bool,
    int: &'a str,
    frac: &'a str,
}

fn split_decimal(text: &str) -> Option<DecimalText<'_>> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(DecimalText { negative, int, frac })
}

/// A decimal value in the representation of `mode`; a `None` scale means
/// a variable scale (`numeric` without a typmod).
fn numeric_value(text: &str, scale: Option<i32>, mode: DecimalMode, schema: &Schema) -> Option<Value> {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") {
        return match mode {
            DecimalMode::Double => parse_float(text).map(Value::Float64),
            DecimalMode::String => Some(Value::String(text.to_uppercase())),
            DecimalMode::Precise => None,
        };
    }
    let d = split_decimal(text)?;
    match mode {
        DecimalMode::Double => text.parse().ok().map(Value::Float64),
        DecimalMode::String => Some(Value::String(text.to_string())),
        DecimalMode::Precise => match scale {
            Some(scale) => {
                let digits = scaled_digits(&d, scale)?;
                Some(Value::Bytes(twos_complement(d.negative, &digits)))
            }
            None => {
                // BigDecimal.stripTrailingZeros, with a negative scale set to 0.
                let frac = d.frac.trim_end_matches('0');
                let digits: String = format!("{}{}", d.int, frac);
                let mut s = Struct::new(schema.clone()).ok()?;
                s.put("scale", Value::Int32(frac.len() as i32)).ok()?;
                s.put("value", Value::Bytes(twos_complement(d.negative, &digits))).ok()?;
                Some(Value::Struct(s))
            }
        },
    }
}

/// The unscaled digits of a decimal at `scale` (fraction padded, or cut
/// when PostgreSQL printed more digits than the scale, which it does not).
fn scaled_digits(d: &DecimalText<'_>, scale: i32) -> Option<String> {
    let mut digits = String::with_capacity(d.int.len() + d.frac.len() + 4);
    digits.push_str(d.int);
    if scale >= 0 {
        let scale = scale as usize;
        let frac = if d.frac.len() > scale { &d.frac[..scale] } else { d.frac };
        digits.push_str(frac);
        digits.extend(std::iter::repeat_n('0', scale - frac.len()));
    } else {
        let cut = digits.len().saturating_sub(scale.unsigned_abs() as usize);
        digits.truncate(cut);
    }
    Some(digits)
}

/// Big-endian two's complement, shortest form, of a decimal digit string
/// of any length (Java's `BigInteger.toByteArray`).
pub(crate) fn twos_complement(negative: bool, digits: &str) -> Vec<u8> {
    // Magnitude in base 2^32, least significant limb first.
    let mut limbs: Vec<u32> = Vec::with_capacity(digits.len() / 9 + 1);
    for chunk in digits.as_bytes().chunks(9) {
        let mut mul: u64 = 1;
        let mut add: u64 = 0;
        for &b in chunk {
            mul *= 10;
            add = add * 10 + u64::from(b - b'0');
        }
        let mut carry = add;
        for limb in limbs.iter_mut() {
            let v = u64::from(*limb) * mul + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let mut bytes: Vec<u8> = limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.drain(..first);
    if bytes.is_empty() {
        return vec![0];
    }
    if bytes[0] & 0x80 != 0 {
        bytes.insert(0, 0);
    }
    if negative {
        // Two's complement: invert and add one.
        for b in bytes.iter_mut() {
            *b = !*b;
        }
        for b in bytes.iter_mut().rev() {
            let (v, overflow) = b.overflowing_add(1);
            *b = v;
            if !overflow {
                break;
            }
        }
        // Drop a redundant leading 0xff.
        while bytes.len() > 1 && bytes[0] == 0xff && bytes[1] & 0x80 != 0 {
            bytes.remove(0);
        }
    }
    bytes
}

/// `$1,234.56`, `-$1,234.56` or `($1,234.56)` to `1234.56` / `-1234.56`.
fn money_to_plain(text: &str) -> Option<String> {
    let negative = text.starts_with('-') || (text.starts_with('(') && text.ends_with(')'));
    let digits: String = text.chars().filter(|c| c.is_ascii_digit() || *c == '.').collect();
    if digits.is_empty() {
        return None;
    }
    Some(if negative { format!("-{digits}") } else { digits })
}

/// bytea's hex output, `\x0a1b`.
fn parse_bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
}

/// `2026-12-01`, `0044-03-15 BC`.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let mut parts = text.rsplitn(3, '-');
    let day: u32 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let year: i32 = parts.next()?.parse().ok()?;
    NaiveDate::from_ymd_opt(if bc { 1 - year } else { year }, month, day)
}

/// `09:00:05.83` to microseconds past midnight (`24:00:00` included).
fn parse_time(text: &str) -> Option<i64> {
    let (hms, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut parts = hms.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if h > 24 || m > 59 || s > 60 {
        return None;
    }
    let micros: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().ok()? };
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + micros)
}

/// A UTC offset `+00`, `+05:30`, `-08:00:15` in seconds; `None` if `text`
/// is not one.
fn parse_offset(text: &str) -> Option<i64> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let mut parts = text[1..].split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let s: i64 = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    Some(sign * (h * 3600 + m * 60 + s))
}

/// Splits `09:00:05.83+02:00` into the time and its offset in seconds.
fn split_offset(text: &str) -> Option<(&str, i64)> {
    let at = text.rfind(['+', '-'])?;
    Some((&text[..at], parse_offset(&text[at..])?))
}

/// `2026-12-01 09:00:05.83` (a `timestamp`) to microseconds since the epoch.
fn parse_timestamp(text: &str) -> Option<i64> {
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let (date, time) = text.split_once(' ')?;
    let date = parse_date(&if bc { format!("{date} BC") } else { date.to_string() })?;
    let micros = parse_time(time)?;
    let midnight = NaiveDateTime::new(date, NaiveTime::MIN).and_utc().timestamp_micros();
    Some(midnight + micros)
}

/// A `timestamptz` (printed in UTC by the session's `timezone=UTC`, but any
/// offset is honoured) as Debezium's `ZonedTimestamp`: ISO 8601 in UTC
/// with `precision` fraction digits.
fn zoned_timestamp(text: &str, precision: u32) -> Option<String> {
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let (date, time) = text.split_once(' ')?;
    let (time, offset) = split_offset(time)?;
    let local = parse_timestamp(&if bc { format!("{date} {time} BC") } else { format!("{date} {time}") })?;
    let utc = local - offset * 1_000_000;
    let at = DateTime::from_timestamp_micros(utc)?;
    let mut out = at.format("%Y-%m-%dT%H:%M:%S").to_string();
    if precision > 0 {
        let digits = format!("{:06}", at.timestamp_subsec_micros());
        out.push('.');
        out.push_str(&digits[..(precision.min(6) as usize)]);
    }
    out.push('Z');
    Some(out)
}

/// A `timetz` as Debezium's `ZonedTime`: shifted to UTC, fraction digits
/// only as needed (Java's `ISO_OFFSET_TIME`).
fn zoned_time(text: &str) -> Option<String> {
    let (time, offset) = split_offset(text)?;
    let micros = (parse_time(time)? - offset * 1_000_000).rem_euclid(86_400_000_000);
    let t = NaiveTime::from_num_seconds_from_midnight_opt(
        (micros / 1_000_000) as u32,
        ((micros % 1_000_000) * 1000) as u32,
    )?;
    let mut out = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    let frac = micros % 1_000_000;
    if frac != 0 {
        let digits = format!("{frac:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    Some(out)
}

/// An interval's parts as ISO 8601 prints them.
#[derive(Debug, Default, PartialEq)]
struct Interval {
    years: i64,
    months: i64,
    days: i64,
    hours: i64,
    minutes: i64,
    /// Seconds in microseconds.
    second_micros: i64,
}

impl Interval {
    /// Debezium's `MicroDuration`: a month is 365.25 / 12 days.
    fn micros(&self) -> i64 {
        let days = (self.years * 12 + self.months) as f64 * 30.4375 + self.days as f64;
        let micros = days * 86_400_000_000.0 + (self.hours * 3600 + self.minutes * 60) as f64 * 1_000_000.0;
        micros as i64 + self.second_micros
    }

    /// Debezium's `Interval` string: every part, `P1Y2M3DT4H5M6.78S`.
    fn iso(&self) -> String {
        let seconds = self.second_micros as f64 / 1_000_000.0;
        let seconds = if self.second_micros % 1_000_000 == 0 {
            (self.second_micros / 1_000_000).to_string()
        } else {
            seconds.to_string()
        };
        format!("P{}Y{}M{}DT{}H{}M{}S", self.years, self.months, self.days, self.hours, self.minutes, seconds)
    }
}

/// `intervalstyle=iso_8601` output: `P1Y2M3DT4H5M6.78S`, `PT-1.5S`, `PT0S`.
fn parse_iso_interval(text: &str) -> Option<Interval> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut interval = Interval::default();
    let mut parse_parts = |part: &str, in_time: bool| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '-' || c == '.' || c == '+' {
                number.push(c);
                continue;
            }
            match (c, in_time) {
                ('Y', false) => interval.years = number.parse().ok()?,
                ('M', false) => interval.months = number.parse().ok()?,
                ('W', false) => interval.days += 7 * number.parse::<i64>().ok()?,
                ('D', false) => interval.days += number.parse::<i64>().ok()?,
                ('H', true) => interval.hours = number.parse().ok()?,
                ('M', true) => interval.minutes = number.parse().ok()?,
                ('S', true) => {
                    let negative = number.starts_with('-');
                    let d = split_decimal(&number)?;
                    let whole: i64 = if d.int.is_empty() { 0 } else { d.int.parse().ok()? };
                    let frac: i64 = if d.frac.is_empty() {
                        0
                    } else {
                        format!("{:0<6}", &d.frac[..d.frac.len().min(6)]).parse().ok()?
                    };
                    let micros = whole * 1_000_000 + frac;
                    interval.second_micros = if negative { -micros } else { micros };
                }
                _ => return None,
            }
            number.clear();
        }
        number.is_empty().then_some(())
    };
    parse_parts(date, false)?;
    parse_parts(time, true)?;
    Some(interval)
}

/// A bit string `10110` as `io.debezium.data.Bits`: the number it spells,
/// little-endian, in `ceil(n / 8)` bytes.
fn bits_to_bytes(text: &str) -> Option<Vec<u8>> {
    if !text.bytes().all(|b| b == b'0' || b == b'1') {
        return None;
    }
    let mut bytes = vec![0u8; text.len().div_ceil(8)];
    for (i, b) in text.bytes().rev().enumerate() {
        if b == b'1' {
            bytes[i / 8] |= 1 << (i % 8);
        }
    }
    Some(bytes)
}

/// A one-dimensional array's text form, `{1,2,NULL,"a \"b\""}`, as its
/// elements (`None` for NULL). Multi-dimensional arrays are refused.
fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    // A leading dimension decoration: `[0:1]={1,2}`.
    let text = match text.find('=') {
        Some(at) if text.starts_with('[') => &text[at + 1..],
        _ => text,
    };
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    if inner.is_empty() {
        return Some(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut item = String::new();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
            items.push(Some(item));
        } else {
            let mut item = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '}' || c == '"' {
                    return None;
                }
                item.push(c);
                chars.next();
            }
            items.push(if item == "NULL" { None } else { Some(item) });
        }
        match chars.next() {
            None => return Some(items),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_connect::data::DecimalValue;

    fn convert(t: &PgType, text: &str, modes: &TypeModes) -> Value {
        let schema = t.schema(modes).build().unwrap();
        t.convert(text, modes, &schema).unwrap()
    }

    #[test]
    fn decimals_are_java_big_integers_of_any_size() {
        for n in
            [0i128, 1, -1, 127, 128, -128, -129, 255, 256, 120000, -120000, i64::MAX as i128, i128::MAX / 3]
        {
            let digits = n.unsigned_abs().to_string();
            assert_eq!(twos_complement(n < 0, &digits), DecimalValue::new(n, 0).to_bytes(), "{n}");
        }
        // Wider than 128 bits: 2^130 = 0x04 followed by 16 zero bytes.
        let two_130 = "1361129467683753853853498429727072845824";
        let mut expected = vec![4u8];
        expected.extend([0; 16]);
        assert_eq!(twos_complement(false, two_130), expected);
    }

    #[test]
    fn numerics_follow_decimal_handling_mode() {
        let fixed = PgType::builtin("numeric", ((10 << 16) | 2) + 4).unwrap();
        assert_eq!(fixed, PgType::Numeric { precision: Some(10), scale: Some(2) });
        let precise = TypeModes::default();
        assert_eq!(
            convert(&fixed, "1200.5", &precise),
            Value::Bytes(DecimalValue::new(120050, 2).to_bytes())
        );
        assert_eq!(convert(&fixed, "-0.01", &precise), Value::Bytes(vec![0xff]));
        let schema = fixed.schema(&precise).build().unwrap();
        assert_eq!(
            schema.parameters(),
            &[
                ("scale".to_string(), "2".to_string()),
                ("connect.decimal.precision".to_string(), "10".to_string())
            ]
        );
        let double = TypeModes { decimal: DecimalMode::Double, ..precise };
        assert_eq!(convert(&fixed, "1200.5", &double), Value::Float64(1200.5));
        let string = TypeModes { decimal: DecimalMode::String, ..precise };
        assert_eq!(convert(&fixed, "1200.50", &string), Value::String("1200.50".into()));

        let variable = PgType::builtin("numeric", -1).unwrap();
        let Value::Struct(s) = convert(&variable, "1200.500", &precise) else { panic!() };
        assert_eq!(s.get("scale").unwrap(), &Value::Int32(1));
        assert_eq!(s.get("value").unwrap(), &Value::Bytes(DecimalValue::new(12005, 0).to_bytes()));
        assert!(fixed.convert("NaN", &precise, &schema).is_err());
        assert_eq!(
            convert(&PgType::Money, "-$1,234.56", &precise),
            Value::Bytes(DecimalValue::new(-123456, 2).to_bytes())
        );
    }

    #[test]
    fn times_follow_time_precision_mode() {
        let adaptive = TypeModes::default();
        let micro = TypeModes { time: TimePrecisionMode::AdaptiveTimeMicroseconds, ..adaptive };
        let connect = TypeModes { time: TimePrecisionMode::Connect, ..adaptive };
        assert_eq!(convert(&PgType::Date, "2026-12-01", &adaptive), Value::Int32(20_788));
        assert_eq!(convert(&PgType::Date, "0001-01-01 BC", &adaptive), Value::Int32(-719_528));
        assert_eq!(convert(&PgType::Time(6), "09:00:05.83", &adaptive), Value::Int64(32_405_830_000));
        assert_eq!(convert(&PgType::Time(3), "09:00:05.83", &adaptive), Value::Int32(32_405_830));
        assert_eq!(convert(&PgType::Time(3), "09:00:05.83", &micro), Value::Int64(32_405_830_000));
        assert_eq!(convert(&PgType::Time(6), "24:00:00", &connect), Value::Int32(86_400_000));
        let ts = "2026-12-01 09:00:05.830123";
        assert_eq!(convert(&PgType::Timestamp(6), ts, &adaptive), Value::Int64(1_796_115_605_830_123));
        assert_eq!(convert(&PgType::Timestamp(3), ts, &adaptive), Value::Int64(1_796_115_605_830));
        assert_eq!(convert(&PgType::Timestamp(6), ts, &connect), Value::Int64(1_796_115_605_830));
        assert_eq!(
            convert(&PgType::Timestamp(6), "infinity", &adaptive),
            Value::Int64(9_223_372_036_825_200_000)
        );
        let tz = PgType::TimestampTz(6);
        assert_eq!(
            convert(&tz, "2026-12-01 09:00:05.83+00", &adaptive),
            Value::String("2026-12-01T09:00:05.830000Z".into())
        );
        assert_eq!(
            convert(&tz, "2026-12-01 11:00:05+02", &adaptive),
            Value::String("2026-12-01T09:00:05.000000Z".into())
        );
        assert_eq!(
            convert(&PgType::TimestampTz(0), "2026-12-01 09:00:05+00", &adaptive),
            Value::String("2026-12-01T09:00:05Z".into())
        );
        assert_eq!(convert(&PgType::TimeTz, "01:30:00.5+02", &adaptive), Value::String("23:30:00.5Z".into()));
    }

    #[test]
    fn intervals_are_micro_durations_or_iso_strings() {
        let numeric = TypeModes::default();
        let string = TypeModes { interval: IntervalMode::String, ..numeric };
        assert_eq!(convert(&PgType::Interval, "P1DT2H", &numeric), Value::Int64(93_600_000_000));
        assert_eq!(convert(&PgType::Interval, "P1M", &numeric), Value::Int64(2_629_800_000_000));
        assert_eq!(convert(&PgType::Interval, "PT-1.5S", &numeric), Value::Int64(-1_500_000));
        assert_eq!(
            convert(&PgType::Interval, "P1Y2M3DT4H5M6.78S", &string),
            Value::String("P1Y2M3DT4H5M6.78S".into())
        );
        assert_eq!(convert(&PgType::Interval, "PT0S", &string), Value::String("P0Y0M0DT0H0M0S".into()));
    }

    #[test]
    fn bytes_arrays_bits_and_bad_text() {
        let modes = TypeModes::default();
        assert_eq!(convert(&PgType::Bytea, "\\x01ff", &modes), Value::Bytes(vec![1, 255]));
        let b64 = TypeModes { binary: BinaryMode::Base64, ..modes };
        assert_eq!(convert(&PgType::Bytea, "\\x01ff", &b64), Value::String("Af8=".into()));
        let hex = TypeModes { binary: BinaryMode::Hex, ..modes };
        assert_eq!(convert(&PgType::Bytea, "\\x01FF", &hex), Value::String("01ff".into()));
        let ints = PgType::Array(Box::new(PgType::Int4));
        assert_eq!(
            convert(&ints, "{1,NULL,-3}", &modes),
            Value::Array(vec![Value::Int32(1), Value::Null, Value::Int32(-3)])
        );
        let texts = PgType::Array(Box::new(PgType::Text));
        assert_eq!(
            convert(&texts, r#"{"a b","c\"d",NULL,"NULL"}"#, &modes),
            Value::Array(vec![
                Value::String("a b".into()),
                Value::String("c\"d".into()),
                Value::Null,
                Value::String("NULL".into())
            ])
        );
        assert_eq!(convert(&texts, "{}", &modes), Value::Array(vec![]));
        let schema = ints.schema(&modes).build().unwrap();
        assert!(ints.convert("{{1,2},{3,4}}", &modes, &schema).is_err());
        assert_eq!(convert(&PgType::Bits(Some(10)), "1000000001", &modes), Value::Bytes(vec![1, 2]));
        assert_eq!(convert(&PgType::Bits(Some(1)), "1", &modes), Value::Boolean(true));
        let int = PgType::Int4;
        assert!(int.convert("x", &modes, &Schema::of(runnel_connect::data::SchemaType::Int32)).is_err());
    }
}
