//! Serdes: how typed keys and values become bytes and back.
//!
//! Byte layouts follow Kafka's built-in serializers so Runnel and Java
//! applications can share topics:
//!
//! | type | bytes |
//! | --- | --- |
//! | `i32`, `u32` | 4 bytes, big-endian (Kafka's `IntegerSerializer`) |
//! | `i64`, `u64` | 8 bytes, big-endian (Kafka's `LongSerializer`) |
//! | `f64` | 8 bytes, IEEE 754 bits big-endian (Kafka's `DoubleSerializer`) |
//! | `String` | UTF-8, no length prefix (Kafka's `StringSerializer`) |
//! | `Vec<u8>`, [`bytes::Bytes`] | the bytes themselves |
//! | JSON | `serde_json` encoding of the value |
//! | `()` | always null (Kafka's `VoidSerde`) |
//!
//! # Nulls
//!
//! Kafka keys and values may be null (a null value with a key is a tombstone).
//! A serde for a plain type (`String`, `i64`, ...) treats null as an error:
//! [`SerdeError::UnexpectedNull`]. Wrap it with [`Serdes::nullable`] to get a
//! serde for `Option<T>` where `None` is null, or use [`Serdes::unit`] for
//! keys that are always null. Streams therefore only carry `Option` where the
//! application asked for it.

use std::fmt;
use std::marker::PhantomData;

use ::serde::de::DeserializeOwned;
use ::serde::Serialize;
use bytes::Bytes;

/// Converts values of type `T` to bytes and back.
///
/// Methods take the topic the bytes are written to or read from, like Kafka's
/// `Serializer`/`Deserializer`, so a serde can pick a schema per topic.
/// Implementations are shared between stream tasks and must be stateless or
/// internally synchronised.
pub trait Serde<T>: Send + Sync + 'static {
    /// Appends the encoding of `value` to `out`. Not called when
    /// [`Serde::is_null`] returns `true` for the value.
    ///
    /// # Errors
    ///
    /// [`SerdeError`] when the value cannot be encoded (for example a JSON
    /// map with non-string keys).
    fn serialize_into(&self, topic: &str, value: &T, out: &mut Vec<u8>) -> Result<(), SerdeError>;

    /// Decodes a non-null key or value.
    ///
    /// # Errors
    ///
    /// [`SerdeError`] naming the type and what was wrong with the bytes.
    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<T, SerdeError>;

    /// Whether `value` is encoded as Kafka's null. The default is `false`.
    fn is_null(&self, value: &T) -> bool {
        let _ = value;
        false
    }

    /// The value a null key or value decodes to.
    ///
    /// # Errors
    ///
    /// The default returns [`SerdeError::UnexpectedNull`]: plain types have no
    /// null. [`Serdes::nullable`] and [`Serdes::unit`] override it.
    fn deserialize_null(&self, topic: &str) -> Result<T, SerdeError> {
        let _ = topic;
        Err(SerdeError::UnexpectedNull { type_name: self.type_name() })
    }

    /// Short name of the type, used in error messages.
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }

    /// Encodes `value` into a new buffer; `None` means null.
    ///
    /// # Errors
    ///
    /// As [`Serde::serialize_into`].
    fn serialize(&self, topic: &str, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        if self.is_null(value) {
            return Ok(None);
        }
        let mut out = Vec::new();
        self.serialize_into(topic, value, &mut out)?;
        Ok(Some(out))
    }

    /// Decodes possibly-null bytes: `None` goes to [`Serde::deserialize_null`].
    ///
    /// # Errors
    ///
    /// As [`Serde::deserialize`] and [`Serde::deserialize_null`].
    fn deserialize_nullable(&self, topic: &str, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        match bytes {
            Some(bytes) => self.deserialize(topic, bytes),
            None => self.deserialize_null(topic),
        }
    }
}

/// Why bytes could not be decoded or a value could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SerdeError {
    /// A fixed-width type got the wrong number of bytes.
    #[error("cannot deserialize {type_name}: expected {expected} bytes, got {actual}")]
    Length {
        /// The type being decoded.
        type_name: &'static str,
        /// Bytes the type needs.
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// A string is not valid UTF-8.
    #[error("cannot deserialize string: invalid utf-8 at byte {valid_up_to} of {len}")]
    Utf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
        /// Total length of the bytes.
        len: usize,
    },
    /// JSON encoding or decoding failed.
    #[error("cannot {op} {type_name} as json: {source}")]
    Json {
        /// `"serialize"` or `"deserialize"`.
        op: &'static str,
        /// The Rust type.
        type_name: &'static str,
        /// The `serde_json` error (it carries line and column).
        #[source]
        source: serde_json::Error,
    },
    /// Null bytes reached a serde whose type has no null.
    #[error(
        "cannot deserialize {type_name}: got null (wrap the serde with Serdes::nullable to accept nulls)"
    )]
    UnexpectedNull {
        /// The type being decoded.
        type_name: &'static str,
    },
    /// Non-null bytes reached a serde whose type is always null.
    #[error("cannot deserialize {type_name}: expected null, got {len} bytes")]
    ExpectedNull {
        /// The type being decoded.
        type_name: &'static str,
        /// Length of the bytes received.
        len: usize,
    },
}

/// Constructors for the built-in serdes, named like Kafka's `Serdes`.
///
/// ```
/// use runnel_streams::{Serde, Serdes};
///
/// let bytes = Serdes::i64().serialize("t", &42)?.unwrap();
/// assert_eq!(bytes, 42i64.to_be_bytes());
/// assert_eq!(Serdes::i64().deserialize("t", &bytes)?, 42);
/// # Ok::<(), runnel_streams::SerdeError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Serdes;

impl Serdes {
    /// UTF-8 strings.
    pub fn string() -> StringSerde {
        StringSerde
    }
    /// Raw bytes as `Vec<u8>` (Kafka's `ByteArray`).
    pub fn byte_array() -> ByteArraySerde {
        ByteArraySerde
    }
    /// Raw bytes as [`bytes::Bytes`] (Kafka's `Bytes`).
    pub fn bytes() -> BytesSerde {
        BytesSerde
    }
    /// Big-endian 4-byte signed integers.
    pub fn i32() -> I32Serde {
        I32Serde
    }
    /// Big-endian 8-byte signed integers.
    pub fn i64() -> I64Serde {
        I64Serde
    }
    /// Big-endian 4-byte unsigned integers.
    pub fn u32() -> U32Serde {
        U32Serde
    }
    /// Big-endian 8-byte unsigned integers.
    pub fn u64() -> U64Serde {
        U64Serde
    }
    /// Big-endian IEEE 754 doubles.
    pub fn f64() -> F64Serde {
        F64Serde
    }
    /// JSON through `serde_json` for any serde-enabled type.
    pub fn json<T: Serialize + DeserializeOwned + 'static>() -> JsonSerde<T> {
        JsonSerde(PhantomData)
    }
    /// Always-null keys or values, as `()` (Kafka's `Void`).
    pub fn unit() -> UnitSerde {
        UnitSerde
    }
    /// `Option<T>` over a serde for `T`: `None` is Kafka's null.
    pub fn nullable<S>(inner: S) -> Nullable<S> {
        Nullable(inner)
    }
}

/// UTF-8 string serde; see [`Serdes::string`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize_into(&self, _topic: &str, value: &String, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(value.as_bytes());
        Ok(())
    }
    fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<String, SerdeError> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(SerdeError::Utf8 { valid_up_to: e.valid_up_to(), len: bytes.len() }),
        }
    }
    fn type_name(&self) -> &'static str {
        "string"
    }
}

/// `Vec<u8>` serde; see [`Serdes::byte_array`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteArraySerde;

impl Serde<Vec<u8>> for ByteArraySerde {
    fn serialize_into(&self, _topic: &str, value: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(value);
        Ok(())
    }
    fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<Vec<u8>, SerdeError> {
        Ok(bytes.to_vec())
    }
    fn type_name(&self) -> &'static str {
        "byte array"
    }
}

/// [`bytes::Bytes`] serde; see [`Serdes::bytes`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;

impl Serde<Bytes> for BytesSerde {
    fn serialize_into(&self, _topic: &str, value: &Bytes, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(value);
        Ok(())
    }
    fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<Bytes, SerdeError> {
        Ok(Bytes::copy_from_slice(bytes))
    }
    fn type_name(&self) -> &'static str {
        "bytes"
    }
}

macro_rules! fixed_width_serde {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $type_name:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl Serde<$ty> for $name {
            fn serialize_into(&self, _topic: &str, value: &$ty, out: &mut Vec<u8>) -> Result<(), SerdeError> {
                out.extend_from_slice(&value.to_be_bytes());
                Ok(())
            }
            fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<$ty, SerdeError> {
                const WIDTH: usize = std::mem::size_of::<$ty>();
                let array: [u8; WIDTH] = bytes.try_into().map_err(|_| SerdeError::Length {
                    type_name: $type_name,
                    expected: WIDTH,
                    actual: bytes.len(),
                })?;
                Ok(<$ty>::from_be_bytes(array))
            }
            fn type_name(&self) -> &'static str {
                $type_name
            }
        }
    };
}

fixed_width_serde!(
    /// Big-endian `i32` serde; see [`Serdes::i32`].
    I32Serde, i32, "i32"
);
fixed_width_serde!(
    /// Big-endian `i64` serde; see [`Serdes::i64`].
    I64Serde, i64, "i64"
);
fixed_width_serde!(
    /// Big-endian `u32` serde; see [`Serdes::u32`].
    U32Serde, u32, "u32"
);
fixed_width_serde!(
    /// Big-endian `u64` serde; see [`Serdes::u64`].
    U64Serde, u64, "u64"
);
fixed_width_serde!(
    /// Big-endian IEEE 754 `f64` serde; see [`Serdes::f64`].
    F64Serde, f64, "f64"
);

/// JSON serde for a serde-enabled type; see [`Serdes::json`].
pub struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T> fmt::Debug for JsonSerde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonSerde<{}>", std::any::type_name::<T>())
    }
}

impl<T> Clone for JsonSerde<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for JsonSerde<T> {}

impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for JsonSerde<T> {
    fn serialize_into(&self, _topic: &str, value: &T, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        serde_json::to_writer(out, value).map_err(|source| SerdeError::Json {
            op: "serialize",
            type_name: std::any::type_name::<T>(),
            source,
        })
    }
    fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<T, SerdeError> {
        serde_json::from_slice(bytes).map_err(|source| SerdeError::Json {
            op: "deserialize",
            type_name: std::any::type_name::<T>(),
            source,
        })
    }
}

/// Always-null serde for `()`; see [`Serdes::unit`].
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitSerde;

impl Serde<()> for UnitSerde {
    fn serialize_into(&self, _topic: &str, _value: &(), _out: &mut Vec<u8>) -> Result<(), SerdeError> {
        Ok(())
    }
    fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<(), SerdeError> {
        Err(SerdeError::ExpectedNull { type_name: "()", len: bytes.len() })
    }
    fn is_null(&self, _value: &()) -> bool {
        true
    }
    fn deserialize_null(&self, _topic: &str) -> Result<(), SerdeError> {
        Ok(())
    }
    fn type_name(&self) -> &'static str {
        "()"
    }
}

/// `Option<T>` serde where `None` is null; see [`Serdes::nullable`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Nullable<S>(S);

impl<T, S: Serde<T>> Serde<Option<T>> for Nullable<S> {
    fn serialize_into(&self, topic: &str, value: &Option<T>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        match value {
            Some(v) => self.0.serialize_into(topic, v, out),
            None => Ok(()),
        }
    }
    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Option<T>, SerdeError> {
        self.0.deserialize(topic, bytes).map(Some)
    }
    fn is_null(&self, value: &Option<T>) -> bool {
        value.as_ref().is_none_or(|v| self.0.is_null(v))
    }
    fn deserialize_null(&self, _topic: &str) -> Result<Option<T>, SerdeError> {
        Ok(None)
    }
    fn type_name(&self) -> &'static str {
        self.0.type_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian_like_kafka() {
        assert_eq!(Serdes::i32().serialize("t", &1).unwrap().unwrap(), [0, 0, 0, 1]);
        assert_eq!(Serdes::i64().serialize("t", &-1).unwrap().unwrap(), [0xff; 8]);
        assert_eq!(Serdes::u32().deserialize("t", &[1, 0, 0, 0]).unwrap(), 1 << 24);
    }

    #[test]
    fn wrong_length_names_type_and_lengths() {
        let err = Serdes::i64().deserialize("t", &[1, 2, 3]).unwrap_err();
        assert_eq!(err.to_string(), "cannot deserialize i64: expected 8 bytes, got 3");
    }

    #[test]
    fn nullable_none_is_null_and_null_is_none() {
        let s = Serdes::nullable(Serdes::string());
        assert_eq!(s.serialize("t", &None).unwrap(), None);
        assert_eq!(s.deserialize_nullable("t", None).unwrap(), None);
        assert_eq!(s.deserialize_nullable("t", Some(b"x")).unwrap(), Some("x".to_string()));
    }

    #[test]
    fn plain_serde_rejects_null_and_names_the_type() {
        let err = Serdes::string().deserialize_nullable("t", None).unwrap_err();
        assert!(err.to_string().starts_with("cannot deserialize string: got null"), "{err}");
    }
}
