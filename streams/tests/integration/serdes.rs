//! Built-in serdes: round trips, Kafka-compatible byte layouts, and error
//! messages.

use bytes::Bytes;
use proptest::prelude::*;
use runnel_streams::{Serde, SerdeError, Serdes};
use serde::{Deserialize, Serialize};

fn round_trip<T, S: Serde<T>>(serde: &S, value: &T) -> T {
    let bytes = serde.serialize("t", value).unwrap();
    serde.deserialize_nullable("t", bytes.as_deref()).unwrap()
}

proptest! {
    #[test]
    fn i32_round_trips_as_four_big_endian_bytes(n: i32) {
        prop_assert_eq!(Serdes::i32().serialize("t", &n).unwrap().unwrap(), n.to_be_bytes().to_vec());
        prop_assert_eq!(round_trip(&Serdes::i32(), &n), n);
    }

    #[test]
    fn i64_round_trips_as_eight_big_endian_bytes(n: i64) {
        prop_assert_eq!(Serdes::i64().serialize("t", &n).unwrap().unwrap(), n.to_be_bytes().to_vec());
        prop_assert_eq!(round_trip(&Serdes::i64(), &n), n);
    }

    #[test]
    fn unsigned_integers_round_trip(a: u32, b: u64) {
        prop_assert_eq!(round_trip(&Serdes::u32(), &a), a);
        prop_assert_eq!(round_trip(&Serdes::u64(), &b), b);
    }

    #[test]
    fn f64_round_trips_bit_for_bit(bits: u64) {
        let x = f64::from_bits(bits);
        prop_assert_eq!(round_trip(&Serdes::f64(), &x).to_bits(), bits);
    }

    #[test]
    fn strings_round_trip_as_utf8(s: String) {
        prop_assert_eq!(Serdes::string().serialize("t", &s).unwrap().unwrap(), s.as_bytes().to_vec());
        prop_assert_eq!(round_trip(&Serdes::string(), &s), s);
    }

    #[test]
    fn bytes_round_trip_unchanged(v: Vec<u8>) {
        prop_assert_eq!(round_trip(&Serdes::byte_array(), &v), v.clone());
        let b = Bytes::from(v.clone());
        prop_assert_eq!(round_trip(&Serdes::bytes(), &b), b);
    }

    #[test]
    fn nullable_round_trips_some_and_none(v: Option<i64>) {
        prop_assert_eq!(round_trip(&Serdes::nullable(Serdes::i64()), &v), v);
    }

    #[test]
    fn wrong_length_integers_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
        prop_assume!(bytes.len() != 8);
        let err = Serdes::i64().deserialize("t", &bytes).unwrap_err();
        let is_length_error = matches!(err, SerdeError::Length { expected: 8, actual, .. } if actual == bytes.len());
        prop_assert!(is_length_error);
    }
}

#[test]
fn f64_uses_kafka_double_layout() {
    assert_eq!(Serdes::f64().serialize("t", &1.5).unwrap().unwrap(), 1.5f64.to_bits().to_be_bytes());
}

#[test]
fn length_errors_name_the_type_and_both_lengths() {
    let err = Serdes::i32().deserialize("t", &[0; 5]).unwrap_err();
    assert_eq!(err.to_string(), "cannot deserialize i32: expected 4 bytes, got 5");
    let err = Serdes::u64().deserialize("t", &[]).unwrap_err();
    assert_eq!(err.to_string(), "cannot deserialize u64: expected 8 bytes, got 0");
    let err = Serdes::f64().deserialize("t", &[1]).unwrap_err();
    assert_eq!(err.to_string(), "cannot deserialize f64: expected 8 bytes, got 1");
}

#[test]
fn invalid_utf8_names_the_position() {
    let err = Serdes::string().deserialize("t", &[b'o', b'k', 0xff, b'!']).unwrap_err();
    assert!(matches!(err, SerdeError::Utf8 { valid_up_to: 2, len: 4 }));
    assert_eq!(err.to_string(), "cannot deserialize string: invalid utf-8 at byte 2 of 4");
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Click {
    user: String,
    count: u32,
}

#[test]
fn json_round_trips_and_reports_serde_json_errors() {
    let serde = Serdes::json::<Click>();
    let click = Click { user: "u1".into(), count: 3 };
    let bytes = serde.serialize("t", &click).unwrap().unwrap();
    assert_eq!(bytes, br#"{"user":"u1","count":3}"#);
    assert_eq!(serde.deserialize("t", &bytes).unwrap(), click);

    let err = serde.deserialize("t", br#"{"user":"u1"}"#).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("cannot deserialize "), "{message}");
    assert!(message.contains("Click as json: missing field `count` at line 1 column 13"), "{message}");
    assert!(matches!(err, SerdeError::Json { op: "deserialize", .. }));
}

#[test]
fn json_serialization_errors_are_reported() {
    use std::collections::HashMap;
    // JSON object keys must be strings; a map keyed by a tuple cannot be encoded.
    let serde = Serdes::json::<HashMap<(u8, u8), u8>>();
    let value = HashMap::from([((1, 2), 3)]);
    let err = serde.serialize("t", &value).unwrap_err();
    assert!(matches!(err, SerdeError::Json { op: "serialize", .. }));
    assert!(err.to_string().contains("key must be a string"), "{err}");
}

#[test]
fn unit_is_always_null() {
    assert_eq!(Serdes::unit().serialize("t", &()).unwrap(), None);
    assert!(Serdes::unit().deserialize_nullable("t", None).is_ok());
    let err = Serdes::unit().deserialize("t", b"abc").unwrap_err();
    assert_eq!(err.to_string(), "cannot deserialize (): expected null, got 3 bytes");
}

#[test]
fn plain_serdes_reject_null() {
    let err = Serdes::i64().deserialize_nullable("t", None).unwrap_err();
    assert!(matches!(err, SerdeError::UnexpectedNull { type_name: "i64" }));
    let err = Serdes::json::<Click>().deserialize_nullable("t", None).unwrap_err();
    assert!(err.to_string().contains("Click: got null"), "{err}");
}

#[test]
fn empty_string_is_not_null() {
    assert_eq!(Serdes::string().serialize("t", &String::new()).unwrap(), Some(Vec::new()));
    assert_eq!(
        Serdes::nullable(Serdes::string()).serialize("t", &Some(String::new())).unwrap(),
        Some(Vec::new())
    );
}
