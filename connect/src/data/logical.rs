//! Kafka Connect's logical types: `Decimal`, `Date`, `Time`, `Timestamp`.
//!
//! Each is a physical schema with Kafka's logical name and version 1:
//!
//! | logical type | name | physical | value |
//! | --- | --- | --- | --- |
//! | [`Decimal`] | `org.apache.kafka.connect.data.Decimal` | bytes, parameter `scale` | big-endian two's-complement unscaled value |
//! | [`Date`] | `org.apache.kafka.connect.data.Date` | int32 | days since 1970-01-01 |
//! | [`Time`] | `org.apache.kafka.connect.data.Time` | int32 | milliseconds since midnight |
//! | [`Timestamp`] | `org.apache.kafka.connect.data.Timestamp` | int64 | milliseconds since the epoch (UTC) |

use std::fmt;
use std::str::FromStr;

use super::{DataError, Schema, SchemaBuilder};

/// The `Decimal` logical type.
#[derive(Debug)]
pub struct Decimal;

impl Decimal {
    /// Kafka's logical name.
    pub const LOGICAL_NAME: &'static str = "org.apache.kafka.connect.data.Decimal";
    /// The schema parameter holding the scale.
    pub const SCALE_FIELD: &'static str = "scale";

    /// A builder for a decimal schema with the given scale.
    pub fn builder(scale: i32) -> SchemaBuilder {
        SchemaBuilder::bytes()
            .name(Self::LOGICAL_NAME)
            .parameter(Self::SCALE_FIELD, scale.to_string())
            .version(1)
    }

    /// A required decimal schema with the given scale.
    pub fn schema(scale: i32) -> Schema {
        Self::builder(scale).build_unchecked()
    }

    /// The scale of a decimal schema.
    ///
    /// # Errors
    ///
    /// [`DataError::InvalidDecimal`] when the `scale` parameter is missing or
    /// not an integer.
    pub fn scale(schema: &Schema) -> Result<i32, DataError> {
        let raw = schema.parameter(Self::SCALE_FIELD).ok_or_else(|| DataError::InvalidDecimal {
            reason: "decimal schema has no `scale` parameter".into(),
        })?;
        raw.parse().map_err(|_| DataError::InvalidDecimal {
            reason: format!("decimal schema has an invalid `scale` parameter `{raw}`"),
        })
    }
}

/// The `Date` logical type (int32 days since the epoch).
#[derive(Debug)]
pub struct Date;

impl Date {
    /// Kafka's logical name.
    pub const LOGICAL_NAME: &'static str = "org.apache.kafka.connect.data.Date";

    /// A builder for a date schema.
    pub fn builder() -> SchemaBuilder {
        SchemaBuilder::int32().name(Self::LOGICAL_NAME).version(1)
    }

    /// A required date schema.
    pub fn schema() -> Schema {
        Self::builder().build_unchecked()
    }
}

/// The `Time` logical type (int32 milliseconds since midnight).
#[derive(Debug)]
pub struct Time;

impl Time {
    /// Kafka's logical name.
    pub const LOGICAL_NAME: &'static str = "org.apache.kafka.connect.data.Time";

    /// A builder for a time schema.
    pub fn builder() -> SchemaBuilder {
        SchemaBuilder::int32().name(Self::LOGICAL_NAME).version(1)
    }

    /// A required time schema.
    pub fn schema() -> Schema {
        Self::builder().build_unchecked()
    }
}

/// The `Timestamp` logical type (int64 epoch milliseconds).
#[derive(Debug)]
pub struct Timestamp;

impl Timestamp {
    /// Kafka's logical name.
    pub const LOGICAL_NAME: &'static str = "org.apache.kafka.connect.data.Timestamp";

    /// A builder for a timestamp schema.
    pub fn builder() -> SchemaBuilder {
        SchemaBuilder::int64().name(Self::LOGICAL_NAME).version(1)
    }

    /// A required timestamp schema.
    pub fn schema() -> Schema {
        Self::builder().build_unchecked()
    }
}

/// A decimal number: an unscaled integer and a scale (value = unscaled ×
/// 10^-scale), the Rust side of Kafka's `BigDecimal` for `Decimal` values.
///
/// The unscaled value is an `i128` (38 digits); wider values are rejected
/// with an error rather than truncated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecimalValue {
    /// The unscaled value.
    pub unscaled: i128,
    /// The number of digits after the decimal point.
    pub scale: i32,
}

impl DecimalValue {
    /// A decimal from its parts.
    pub fn new(unscaled: i128, scale: i32) -> DecimalValue {
        DecimalValue { unscaled, scale }
    }

    /// The minimal big-endian two's-complement bytes of the unscaled value
    /// (Java's `BigInteger.toByteArray`): `0` is `[0x00]`, `128` is `[0x00, 0x80]`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let all = self.unscaled.to_be_bytes();
        let negative = self.unscaled < 0;
        let mut start = 0;
        // Drop leading sign bytes while the next byte still carries the sign.
        while start < all.len() - 1 {
            let (b, next) = (all[start], all[start + 1]);
            let redundant = if negative { b == 0xff && next & 0x80 != 0 } else { b == 0 && next & 0x80 == 0 };
            if !redundant {
                break;
            }
            start += 1;
        }
        all[start..].to_vec()
    }

    /// A decimal from big-endian two's-complement unscaled bytes and a scale.
    ///
    /// # Errors
    ///
    /// [`DataError::InvalidDecimal`] for empty input or a value wider than 128 bits.
    pub fn from_bytes(bytes: &[u8], scale: i32) -> Result<DecimalValue, DataError> {
        let Some(&first) = bytes.first() else {
            return Err(DataError::InvalidDecimal { reason: "empty unscaled value".into() });
        };
        let sign = if first & 0x80 != 0 { 0xff } else { 0x00 };
        let mut significant = bytes;
        while significant.len() > 16 && significant[0] == sign {
            significant = &significant[1..];
        }
        if significant.len() > 16 || (significant.len() == 16 && (significant[0] ^ sign) & 0x80 != 0) {
            return Err(DataError::InvalidDecimal {
                reason: format!("unscaled value of {} bytes does not fit in 128 bits", bytes.len()),
            });
        }
        let mut buf = [sign; 16];
        buf[16 - significant.len()..].copy_from_slice(significant);
        Ok(DecimalValue { unscaled: i128::from_be_bytes(buf), scale })
    }

    /// The same number with another scale.
    ///
    /// # Errors
    ///
    /// [`DataError::InvalidDecimal`] when digits would be lost or the value overflows.
    pub fn rescale(&self, scale: i32) -> Result<DecimalValue, DataError> {
        let overflow = || DataError::InvalidDecimal { reason: format!("{self} does not fit scale {scale}") };
        let diff = scale - self.scale;
        let factor = 10i128.checked_pow(diff.unsigned_abs()).ok_or_else(overflow)?;
        let unscaled = if diff >= 0 {
            self.unscaled.checked_mul(factor).ok_or_else(overflow)?
        } else {
            if self.unscaled % factor != 0 {
                return Err(overflow());
            }
            self.unscaled / factor
        };
        Ok(DecimalValue { unscaled, scale })
    }

    /// The nearest `f64`.
    pub fn to_f64(&self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// A decimal of the given scale nearest to `value`.
    ///
    /// # Errors
    ///
    /// [`DataError::InvalidDecimal`] for non-finite input or overflow.
    pub fn from_f64(value: f64, scale: i32) -> Result<DecimalValue, DataError> {
        if !value.is_finite() {
            return Err(DataError::InvalidDecimal { reason: format!("{value} is not a finite number") });
        }
        let text = format!("{:.*}", scale.max(0) as usize, value);
        text.parse::<DecimalValue>()?.rescale(scale)
    }
}

impl fmt::Display for DecimalValue {
    /// Plain notation like Java's `BigDecimal.toPlainString` (`-12.34`, `1200`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.unscaled.unsigned_abs().to_string();
        let sign = if self.unscaled < 0 { "-" } else { "" };
        if self.scale <= 0 {
            let zeros = if self.unscaled == 0 { 0 } else { self.scale.unsigned_abs() as usize };
            return write!(f, "{sign}{digits}{}", "0".repeat(zeros));
        }
        let scale = self.scale as usize;
        let padded = if digits.len() <= scale {
            format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
        } else {
            digits
        };
        let (int, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    }
}

impl FromStr for DecimalValue {
    type Err = DataError;

    /// Parses `-12.340`, `5`, `1.5E+3` (the scale follows the digits written).
    fn from_str(s: &str) -> Result<DecimalValue, DataError> {
        let invalid = || DataError::InvalidDecimal { reason: format!("`{s}` is not a decimal number") };
        let t = s.trim();
        let (mantissa, exponent) = match t.find(['e', 'E']) {
            Some(i) => (&t[..i], t[i + 1..].parse::<i32>().map_err(|_| invalid())?),
            None => (t, 0),
        };
        let (negative, body) = match mantissa.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() && frac.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
            return Err(invalid());
        }
        let digits = format!("{int}{frac}");
        let digits = if digits.is_empty() { "0" } else { &digits };
        let magnitude: i128 = digits.parse().map_err(|_| DataError::InvalidDecimal {
            reason: format!("`{s}` has more digits than fit in 128 bits"),
        })?;
        let scale = i32::try_from(frac.len()).map_err(|_| invalid())? - exponent;
        Ok(DecimalValue { unscaled: if negative { -magnitude } else { magnitude }, scale })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unscaled_bytes_are_minimal_twos_complement() {
        assert_eq!(DecimalValue::new(0, 2).to_bytes(), vec![0x00]);
        assert_eq!(DecimalValue::new(127, 2).to_bytes(), vec![0x7f]);
        assert_eq!(DecimalValue::new(128, 2).to_bytes(), vec![0x00, 0x80]);
        assert_eq!(DecimalValue::new(-1, 2).to_bytes(), vec![0xff]);
        assert_eq!(DecimalValue::new(-129, 2).to_bytes(), vec![0xff, 0x7f]);
        assert_eq!(DecimalValue::new(1234, 2).to_bytes(), vec![0x04, 0xd2]);
    }

    #[test]
    fn bytes_round_trip_at_the_extremes() {
        for v in [i128::MIN, i128::MAX, -1, 0, 1, 255, -256] {
            let d = DecimalValue::new(v, 3);
            assert_eq!(DecimalValue::from_bytes(&d.to_bytes(), 3).unwrap(), d);
        }
        assert!(DecimalValue::from_bytes(&[1; 17], 0).is_err());
        assert_eq!(DecimalValue::from_bytes(&[0; 20], 0).unwrap().unscaled, 0);
    }

    #[test]
    fn display_and_parse_agree() {
        assert_eq!(DecimalValue::new(-1234, 2).to_string(), "-12.34");
        assert_eq!(DecimalValue::new(5, 3).to_string(), "0.005");
        assert_eq!(DecimalValue::new(12, -2).to_string(), "1200");
        assert_eq!("-12.34".parse::<DecimalValue>().unwrap(), DecimalValue::new(-1234, 2));
        assert_eq!("1.5E+3".parse::<DecimalValue>().unwrap(), DecimalValue::new(15, -2));
        assert!("1.2.3".parse::<DecimalValue>().is_err());
    }

    #[test]
    fn rescale_refuses_to_lose_digits() {
        assert_eq!(DecimalValue::new(123, 1).rescale(3).unwrap(), DecimalValue::new(12300, 3));
        assert_eq!(DecimalValue::new(1200, 2).rescale(0).unwrap(), DecimalValue::new(12, 0));
        assert!(DecimalValue::new(1234, 2).rescale(1).is_err());
    }

    #[test]
    fn logical_schemas_carry_kafka_names_and_version_1() {
        let d = Decimal::schema(2);
        assert_eq!(d.name(), Some(Decimal::LOGICAL_NAME));
        assert_eq!(d.version(), Some(1));
        assert_eq!(Decimal::scale(&d).unwrap(), 2);
        assert_eq!(Timestamp::schema().schema_type(), crate::data::SchemaType::Int64);
    }
}
