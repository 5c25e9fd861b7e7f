//! Round-trip properties for every converter.

use std::collections::HashMap;

use proptest::prelude::*;
use runnel_connect::converter::{converter_for_class, Converter};
use runnel_connect::data::{Schema, SchemaBuilder, SchemaType, Struct, Value};

fn configured(class: &str, pairs: &[(&str, &str)]) -> Box<dyn Converter> {
    let mut c = converter_for_class(class).unwrap();
    let props: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    c.configure(&props, false).unwrap();
    c
}

/// A schema and a value valid for it, nested up to a small depth.
fn schema_and_value() -> impl Strategy<Value = (Schema, Value)> {
    let leaf = prop_oneof![
        any::<i8>().prop_map(|v| (Schema::of(SchemaType::Int8), Value::Int8(v))),
        any::<i16>().prop_map(|v| (Schema::of(SchemaType::Int16), Value::Int16(v))),
        any::<i32>().prop_map(|v| (Schema::of(SchemaType::Int32), Value::Int32(v))),
        any::<i64>().prop_map(|v| (Schema::of(SchemaType::Int64), Value::Int64(v))),
        any::<f32>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|v| (Schema::of(SchemaType::Float32), Value::Float32(v))),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|v| (Schema::of(SchemaType::Float64), Value::Float64(v))),
        any::<bool>().prop_map(|v| (Schema::of(SchemaType::Boolean), Value::Boolean(v))),
        ".*".prop_map(|v| (Schema::of(SchemaType::String), Value::String(v))),
        proptest::collection::vec(any::<u8>(), 0..16)
            .prop_map(|v| (Schema::of(SchemaType::Bytes), Value::Bytes(v))),
        any::<i32>().prop_map(|v| (
            Schema::optional_of(SchemaType::Int32),
            if v % 3 == 0 { Value::Null } else { Value::Int32(v) }
        )),
        (any::<i64>(), 0i32..6).prop_map(|(v, scale)| {
            let d = runnel_connect::data::DecimalValue::new(v.into(), scale);
            (runnel_connect::data::Decimal::schema(scale), Value::Bytes(d.to_bytes()))
        }),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            // Arrays: items share the schema of the first generated element.
            (inner.clone(), 0usize..4).prop_map(|((s, v), n)| {
                let schema = SchemaBuilder::array(s).build().unwrap();
                (schema, Value::Array(vec![v; n]))
            }),
            // Maps with string keys (JSON objects) and with int keys (pair arrays).
            (inner.clone(), proptest::collection::vec("[a-z]{0,4}", 0..3)).prop_map(|((s, v), keys)| {
                let schema = SchemaBuilder::map(Schema::of(SchemaType::String), s).build().unwrap();
                (schema, Value::Map(keys.into_iter().map(|k| (Value::String(k), v.clone())).collect()))
            }),
            (inner.clone(), proptest::collection::vec(any::<i16>(), 0..3)).prop_map(|((s, v), keys)| {
                let schema = SchemaBuilder::map(Schema::of(SchemaType::Int16), s).build().unwrap();
                (schema, Value::Map(keys.into_iter().map(|k| (Value::Int16(k), v.clone())).collect()))
            }),
            proptest::collection::vec(inner, 1..4).prop_map(|fields| {
                let mut b = SchemaBuilder::structure().name("S").version(1).doc("doc");
                for (i, (s, _)) in fields.iter().enumerate() {
                    b = b.field(format!("f{i}"), s.clone());
                }
                let schema = b.build().unwrap();
                let values = fields.into_iter().map(|(_, v)| v).collect();
                let s = Struct::with_values(schema.clone(), values).unwrap();
                (schema, Value::Struct(s))
            }),
        ]
    })
}

/// Values JSON without schemas reads back unchanged: int64, float64,
/// booleans, strings, arrays and string-keyed maps.
fn schemaless_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Int64),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::Float64),
        any::<bool>().prop_map(Value::Boolean),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("[a-z]{0,3}", inner), 0..4)
                .prop_map(|kv| Value::Map(kv.into_iter().map(|(k, v)| (Value::String(k), v)).collect())),
        ]
    })
}

proptest! {
    #[test]
    fn json_with_schemas_round_trips((schema, value) in schema_and_value(), numeric in any::<bool>()) {
        let format = if numeric { "NUMERIC" } else { "BASE64" };
        let c = configured("JsonConverter", &[("decimal.format", format)]);
        let bytes = c.from_connect("t", Some(&schema), &value).unwrap();
        let back = c.to_connect("t", bytes.as_deref()).unwrap();
        prop_assert_eq!(back.schema.as_ref(), Some(&schema));
        prop_assert_eq!(back.value, value);
    }

    #[test]
    fn json_without_schemas_round_trips_schemaless_values(value in schemaless_value()) {
        let c = configured("org.apache.kafka.connect.json.JsonConverter", &[("schemas.enable", "false")]);
        let bytes = c.from_connect("t", None, &value).unwrap();
        let back = c.to_connect("t", bytes.as_deref()).unwrap();
        prop_assert_eq!(back.schema, None);
        prop_assert_eq!(back.value, value);
    }

    #[test]
    fn json_envelope_round_trips_schemaless_values(value in schemaless_value()) {
        let c = configured("JsonConverter", &[]);
        let bytes = c.from_connect("t", None, &value).unwrap();
        let back = c.to_connect("t", bytes.as_deref()).unwrap();
        prop_assert_eq!(back.value, value);
    }

    #[test]
    fn string_converter_round_trips(text in proptest::option::of(".*")) {
        let c = configured("org.apache.kafka.connect.storage.StringConverter", &[]);
        let value = Value::from(text.clone());
        let bytes = c.from_connect("t", Some(&Schema::optional_of(SchemaType::String)), &value).unwrap();
        prop_assert_eq!(bytes.as_deref(), text.as_deref().map(str::as_bytes));
        let back = c.to_connect("t", bytes.as_deref()).unwrap();
        prop_assert_eq!(back.schema, Some(Schema::optional_of(SchemaType::String)));
        prop_assert_eq!(back.value, value);
    }

    #[test]
    fn byte_array_converter_round_trips(bytes in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))) {
        let c = configured("org.apache.kafka.connect.converters.ByteArrayConverter", &[]);
        let value = Value::from(bytes.clone());
        let out = c.from_connect("t", Some(&Schema::optional_of(SchemaType::Bytes)), &value).unwrap();
        prop_assert_eq!(&out, &bytes);
        let back = c.to_connect("t", out.as_deref()).unwrap();
        prop_assert_eq!(back.value, value);
    }
}

#[test]
fn non_finite_floats_round_trip_as_jackson_strings() {
    let c = configured("JsonConverter", &[]);
    let schema = Schema::of(SchemaType::Float64);
    for v in [f64::INFINITY, f64::NEG_INFINITY] {
        let bytes = c.from_connect("t", Some(&schema), &Value::Float64(v)).unwrap();
        assert_eq!(c.to_connect("t", bytes.as_deref()).unwrap().value, Value::Float64(v));
    }
}

#[test]
fn string_converter_writes_other_values_as_text() {
    let c = configured("StringConverter", &[]);
    assert_eq!(c.from_connect("t", None, &Value::Int32(5)).unwrap().as_deref(), Some(&b"5"[..]));
}

#[test]
fn byte_array_converter_rejects_other_schemas() {
    let c = configured("ByteArrayConverter", &[]);
    let err = c.from_connect("t", Some(&Schema::of(SchemaType::String)), &Value::from("x")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "converting Kafka Connect data to bytes failed for topic `t`: ByteArrayConverter needs a bytes schema, got string"
    );
}
