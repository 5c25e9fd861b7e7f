//! TransformChain built from a connector's flat config: order, predicates
//! with negate, and errors that name the alias and the key.

use std::collections::HashMap;

use runnel_connect::data::{Schema, SchemaBuilder, SchemaType, Struct, Value};
use runnel_connect::record::{ConnectRecord, Header};
use runnel_connect::transforms::TransformChain;

fn config(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn chain(pairs: &[(&str, &str)]) -> TransformChain {
    TransformChain::from_config(&config(pairs)).unwrap()
}

fn chain_error(pairs: &[(&str, &str)]) -> String {
    TransformChain::from_config(&config(pairs)).unwrap_err().to_string()
}

#[test]
fn transforms_apply_in_order() {
    let c = chain(&[
        ("name", "my-connector"),
        ("transforms", "route, insert"),
        ("transforms.route.type", "org.apache.kafka.connect.transforms.RegexRouter"),
        ("transforms.route.regex", "(.*)-raw"),
        ("transforms.route.replacement", "$1"),
        ("transforms.insert.type", "org.apache.kafka.connect.transforms.InsertField$Value"),
        ("transforms.insert.topic.field", "topic"),
    ]);
    assert_eq!(c.aliases(), ["route", "insert"]);
    let out = c.apply(ConnectRecord::new("orders-raw", Value::Map(vec![]))).unwrap().unwrap();
    assert_eq!(out.topic, "orders");
    // InsertField ran after the router: it saw the new topic.
    assert_eq!(out.value, Value::Map(vec![("topic".into(), "orders".into())]));
}

#[test]
fn schema_records_flow_through_a_chain() {
    let address = SchemaBuilder::structure().field("city", Schema::of(SchemaType::String)).build().unwrap();
    let schema = SchemaBuilder::structure()
        .field("id", Schema::of(SchemaType::Int32))
        .field("ssn", Schema::of(SchemaType::String))
        .field("address", address.clone())
        .build()
        .unwrap();
    let a = Struct::with_values(address, vec!["Delft".into()]).unwrap();
    let s = Struct::with_values(schema.clone(), vec![7.into(), "123".into(), a.into()]).unwrap();
    let c = chain(&[
        ("transforms", "key,mask,flat"),
        ("transforms.key.type", "ValueToKey"),
        ("transforms.key.fields", "id"),
        ("transforms.mask.type", "MaskField$Value"),
        ("transforms.mask.fields", "ssn"),
        ("transforms.flat.type", "Flatten$Value"),
        ("transforms.flat.delimiter", "_"),
    ]);
    let out = c.apply(ConnectRecord::default().with_value(Some(schema), s)).unwrap().unwrap();
    let key = out.key.as_struct().unwrap();
    assert_eq!(key.values(), &[Value::Int32(7)]);
    let v = out.value.as_struct().unwrap();
    let names: Vec<_> = v.schema().fields().iter().map(|f| f.name()).collect();
    assert_eq!(names, ["id", "ssn", "address_city"]);
    assert_eq!(v.values(), &[Value::Int32(7), Value::String(String::new()), "Delft".into()]);
}

fn filter_chain(predicate: (&str, &str), extra: (&str, &str), negate: Option<&str>) -> TransformChain {
    let mut pairs = vec![
        ("transforms", "drop"),
        ("transforms.drop.type", "org.apache.kafka.connect.transforms.Filter"),
        ("transforms.drop.predicate", "p"),
        ("predicates", "p"),
        ("predicates.p.type", predicate.0),
    ];
    if !predicate.1.is_empty() {
        pairs.push(extra);
    }
    if let Some(n) = negate {
        pairs.push(("transforms.drop.negate", n));
    }
    chain(&pairs)
}

#[test]
fn topic_name_matches_gates_filter_with_and_without_negate() {
    let pred = ("org.apache.kafka.connect.transforms.predicates.TopicNameMatches", "x");
    let pattern = ("predicates.p.pattern", "audit-.*");
    let audit = ConnectRecord::new("audit-log", 1i64);
    let orders = ConnectRecord::new("orders", 1i64);
    let c = filter_chain(pred, pattern, None);
    assert_eq!(c.apply(audit.clone()).unwrap(), None);
    assert_eq!(c.apply(orders.clone()).unwrap(), Some(orders.clone()));
    let c = filter_chain(pred, pattern, Some("true"));
    assert_eq!(c.apply(audit.clone()).unwrap(), Some(audit));
    assert_eq!(c.apply(orders).unwrap(), None);
}

#[test]
fn has_header_key_gates_filter_with_and_without_negate() {
    let pred = ("HasHeaderKey", "x");
    let name = ("predicates.p.name", "skip");
    let flagged = ConnectRecord::new("t", 1i64).with_header(Header::raw("skip", vec![]));
    let plain = ConnectRecord::new("t", 1i64);
    let c = filter_chain(pred, name, Some("false"));
    assert_eq!(c.apply(flagged.clone()).unwrap(), None);
    assert_eq!(c.apply(plain.clone()).unwrap(), Some(plain.clone()));
    let c = filter_chain(pred, name, Some("true"));
    assert_eq!(c.apply(flagged.clone()).unwrap(), Some(flagged));
    assert_eq!(c.apply(plain).unwrap(), None);
}

#[test]
fn record_is_tombstone_gates_filter_with_and_without_negate() {
    let pred = ("org.apache.kafka.connect.transforms.predicates.RecordIsTombstone", "");
    let tombstone = ConnectRecord::new("t", Value::Null);
    let live = ConnectRecord::new("t", 1i64);
    let c = filter_chain(pred, ("", ""), None);
    assert_eq!(c.apply(tombstone.clone()).unwrap(), None);
    assert_eq!(c.apply(live.clone()).unwrap(), Some(live.clone()));
    let c = filter_chain(pred, ("", ""), Some("TRUE"));
    assert_eq!(c.apply(tombstone.clone()).unwrap(), Some(tombstone));
    assert_eq!(c.apply(live).unwrap(), None);
}

#[test]
fn empty_config_is_an_empty_chain() {
    let c = chain(&[("transforms", " ")]);
    assert!(c.is_empty());
    let r = ConnectRecord::new("t", 1i64);
    assert_eq!(c.apply(r.clone()).unwrap(), Some(r));
}

#[test]
fn missing_type_names_alias_and_key() {
    assert_eq!(
        chain_error(&[("transforms", "a")]),
        "transform `a`: missing required configuration `transforms.a.type`: The transform's class name."
    );
}

#[test]
fn unknown_class_names_alias_key_and_class() {
    assert_eq!(
        chain_error(&[("transforms", "a"), ("transforms.a.type", "com.example.Nope")]),
        "transform `a`: invalid value `com.example.Nope` for configuration `transforms.a.type`: unknown \
         transformation class"
    );
    assert_eq!(
        chain_error(&[("transforms", "a"), ("transforms.a.type", "InsertField")]),
        "transform `a`: invalid value `InsertField` for configuration `transforms.a.type`: unknown \
         transformation class"
    );
}

#[test]
fn missing_required_key_names_alias_and_full_key() {
    assert_eq!(
        chain_error(&[
            ("transforms", "route"),
            ("transforms.route.type", "RegexRouter"),
            ("transforms.route.regex", "x")
        ]),
        "transform `route`: missing required configuration `transforms.route.replacement`: Replacement with \
         $1-style group references."
    );
}

#[test]
fn invalid_value_names_alias_and_full_key() {
    assert_eq!(
        chain_error(&[
            ("transforms", "ts"),
            ("transforms.ts.type", "org.apache.kafka.connect.transforms.TimestampConverter$Value"),
            ("transforms.ts.target.type", "Timestamp"),
            ("transforms.ts.unix.precision", "minutes"),
        ]),
        "transform `ts`: invalid value `minutes` for configuration `transforms.ts.unix.precision`: must be one \
         of seconds, milliseconds, microseconds, nanoseconds"
    );
}

#[test]
fn unknown_transform_key_is_named() {
    assert_eq!(
        chain_error(&[
            ("transforms", "h"),
            ("transforms.h.type", "HoistField$Key"),
            ("transforms.h.feild", "x")
        ]),
        "transform `h`: unknown configuration `transforms.h.feild`"
    );
}

#[test]
fn undefined_predicate_is_named() {
    assert_eq!(
        chain_error(&[("transforms", "f"), ("transforms.f.type", "Filter"), ("transforms.f.predicate", "p")]),
        "transform `f`: predicate `p` (key `transforms.f.predicate`) is not listed in `predicates`"
    );
}

#[test]
fn predicate_errors_name_the_predicate_and_key() {
    assert_eq!(
        chain_error(&[("predicates", "p"), ("predicates.p.type", "TopicNameMatches")]),
        "predicate `p`: missing required configuration `predicates.p.pattern`: Regex the whole topic must match."
    );
    assert_eq!(
        chain_error(&[("predicates", "p"), ("predicates.p.type", "Nope")]),
        "predicate `p`: invalid value `Nope` for configuration `predicates.p.type`: unknown predicate class"
    );
}

#[test]
fn negate_without_predicate_and_bad_negate_are_errors() {
    assert_eq!(
        chain_error(&[("transforms", "f"), ("transforms.f.type", "Filter"), ("transforms.f.negate", "true")]),
        "transform `f`: invalid value `true` for configuration `transforms.f.negate`: negate needs a predicate \
         (`transforms.f.predicate`)"
    );
    assert_eq!(
        chain_error(&[
            ("transforms", "f"),
            ("transforms.f.type", "Filter"),
            ("transforms.f.predicate", "p"),
            ("transforms.f.negate", "yes"),
            ("predicates", "p"),
            ("predicates.p.type", "RecordIsTombstone"),
        ]),
        "transform `f`: invalid value `yes` for configuration `transforms.f.negate`: expected `true` or `false`"
    );
}

#[test]
fn duplicate_alias_is_an_error() {
    assert_eq!(
        chain_error(&[("transforms", "a,a"), ("transforms.a.type", "Filter")]),
        "transform `a`: invalid value `a` for configuration `transforms`: duplicate transform alias"
    );
}

#[test]
fn apply_errors_name_the_alias() {
    let c = chain(&[
        ("transforms", "ins"),
        ("transforms.ins.type", "InsertField$Value"),
        ("transforms.ins.topic.field", "t"),
    ]);
    let err = c.apply(ConnectRecord::new("t", "plain")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "transform `ins` failed: InsertField: only map values are supported for field insertion without a \
         schema, found string"
    );
}
