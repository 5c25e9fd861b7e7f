//! JsonConverter: the exact envelope text Kafka's JsonConverter writes, and
//! reading it back.

use std::collections::HashMap;

use runnel_connect::converter::{Converter, ConverterError, JsonConverter};
use runnel_connect::data::{
    Date, Decimal, DecimalValue, Schema, SchemaAndValue, SchemaBuilder, SchemaType, Struct, Timestamp, Value,
};

fn converter(pairs: &[(&str, &str)]) -> JsonConverter {
    let mut c = JsonConverter::new();
    let props: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    c.configure(&props, false).unwrap();
    c
}

fn order() -> (Schema, Struct) {
    let schema = SchemaBuilder::structure()
        .name("com.example.Order")
        .field("id", Schema::of(SchemaType::Int32))
        .field("price", Decimal::schema(2))
        .field("day", Date::schema())
        .field("at", Timestamp::builder().optional().build().unwrap())
        .field("note", Schema::optional_of(SchemaType::String))
        .build()
        .unwrap();
    let mut s = Struct::new(schema.clone()).unwrap();
    s.put("id", 1)
        .unwrap()
        .put("price", DecimalValue::new(1234, 2).to_bytes())
        .unwrap()
        .put("day", 19_000)
        .unwrap()
        .put("at", 1_641_600_000_123i64)
        .unwrap();
    (schema, s)
}

#[test]
fn struct_with_logical_fields_matches_kafka_envelope_text() {
    let (schema, s) = order();
    let bytes = converter(&[]).from_connect("orders", Some(&schema), &Value::Struct(s)).unwrap().unwrap();
    let expected = concat!(
        r#"{"schema":{"type":"struct","fields":["#,
        r#"{"type":"int32","optional":false,"field":"id"},"#,
        r#"{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"},"field":"price"},"#,
        r#"{"type":"int32","optional":false,"name":"org.apache.kafka.connect.data.Date","version":1,"field":"day"},"#,
        r#"{"type":"int64","optional":true,"name":"org.apache.kafka.connect.data.Timestamp","version":1,"field":"at"},"#,
        r#"{"type":"string","optional":true,"field":"note"}"#,
        r#"],"optional":false,"name":"com.example.Order"},"#,
        r#""payload":{"id":1,"price":"BNI=","day":19000,"at":1641600000123,"note":null}}"#
    );
    assert_eq!(String::from_utf8(bytes).unwrap(), expected);
}

#[test]
fn numeric_decimal_format_writes_a_number() {
    let (schema, s) = order();
    let c = converter(&[("decimal.format", "NUMERIC")]);
    let bytes = c.from_connect("orders", Some(&schema), &Value::Struct(s.clone())).unwrap().unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.ends_with(r#""payload":{"id":1,"price":12.34,"day":19000,"at":1641600000123,"note":null}}"#),
        "{text}"
    );
    let back = c.to_connect("orders", Some(&bytes)).unwrap();
    assert_eq!(back, SchemaAndValue::new(Some(schema), s));
}

#[test]
fn envelope_reads_back_to_the_same_schema_and_struct() {
    let (schema, s) = order();
    let c = converter(&[]);
    let bytes = c.from_connect("orders", Some(&schema), &Value::Struct(s.clone())).unwrap().unwrap();
    assert_eq!(c.to_connect("orders", Some(&bytes)).unwrap(), SchemaAndValue::new(Some(schema), s));
}

#[test]
fn schema_metadata_and_defaults_are_written_in_kafka_order() {
    let schema = SchemaBuilder::int64()
        .optional()
        .name("n")
        .version(2)
        .doc("d")
        .parameter("p", "v")
        .default_value(5i64);
    let schema = schema.build().unwrap();
    let text = converter(&[]).schema_to_json(&schema).unwrap();
    assert_eq!(
        text,
        r#"{"type":"int64","optional":true,"name":"n","version":2,"doc":"d","parameters":{"p":"v"},"default":5}"#
    );
}

#[test]
fn maps_with_string_keys_are_objects_and_others_pair_arrays() {
    let c = converter(&[]);
    let strings =
        SchemaBuilder::map(Schema::of(SchemaType::String), Schema::of(SchemaType::Int32)).build().unwrap();
    let v = Value::Map(vec![("a".into(), 1.into())]);
    let bytes = c.from_connect("t", Some(&strings), &v).unwrap().unwrap();
    assert_eq!(
        bytes,
        br#"{"schema":{"type":"map","keys":{"type":"string","optional":false},"values":{"type":"int32","optional":false},"optional":false},"payload":{"a":1}}"#
    );
    let ints =
        SchemaBuilder::map(Schema::of(SchemaType::Int8), Schema::of(SchemaType::Boolean)).build().unwrap();
    let v = Value::Map(vec![(Value::Int8(3), true.into())]);
    let bytes =
        converter(&[("schemas.enable", "false")]).from_connect("t", Some(&ints), &v).unwrap().unwrap();
    assert_eq!(bytes, b"[[3,true]]");
}

#[test]
fn schemaless_json_is_inferred() {
    let c = converter(&[("schemas.enable", "false")]);
    let v = c.to_connect("t", Some(br#"{"a":1,"b":[1.5,"x",null,true]}"#)).unwrap();
    assert_eq!(v.schema, None);
    assert_eq!(
        v.value,
        Value::Map(vec![
            ("a".into(), Value::Int64(1)),
            (
                "b".into(),
                Value::Array(vec![Value::Float64(1.5), "x".into(), Value::Null, Value::Boolean(true)])
            ),
        ])
    );
}

#[test]
fn null_without_schema_is_a_tombstone_both_ways() {
    let c = converter(&[]);
    assert_eq!(c.from_connect("t", None, &Value::Null).unwrap(), None);
    assert_eq!(c.to_connect("t", None).unwrap(), SchemaAndValue::null());
}

#[test]
fn plain_json_with_schemas_enabled_names_the_fix() {
    let err = converter(&[]).to_connect("t", Some(br#"{"a":1}"#)).unwrap_err();
    let ConverterError::Deserialize { topic, reason } = err else { panic!("wrong error") };
    assert_eq!(topic, "t");
    assert!(reason.contains("set schemas.enable=false"), "{reason}");
}

#[test]
fn required_null_field_is_an_error_naming_the_field() {
    let (schema, _) = order();
    let s = Struct::new(schema.clone()).unwrap();
    let err = converter(&[]).from_connect("orders", Some(&schema), &Value::Struct(s)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "converting Kafka Connect data to bytes failed for topic `orders`: `id` is null but its schema is \
         required and has no default"
    );
}

#[test]
fn out_of_range_integer_is_rejected_on_read() {
    let text = br#"{"schema":{"type":"int8","optional":false},"payload":300}"#;
    let err = converter(&[]).to_connect("t", Some(text)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "converting bytes to Kafka Connect data failed for topic `t`: `value`: 300 is out of range for int8"
    );
}

#[test]
fn bad_decimal_format_names_the_key() {
    let mut c = JsonConverter::new();
    let props = HashMap::from([("decimal.format".to_string(), "HEX".to_string())]);
    let err = c.configure(&props, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid converter config: invalid value `HEX` for configuration `decimal.format`: must be one of BASE64, NUMERIC"
    );
}
