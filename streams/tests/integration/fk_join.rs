//! Foreign-key table-table joins (issue 16, point 4; Kafka's KIP-213):
//! foreign-key changes, deletes on both sides, rows without a foreign
//! key, and old values for aggregations downstream, through the
//! `TopologyTestDriver`. Different partition counts and out-of-order
//! responses run on the real runtime in `runtime.rs` beside this file.

use runnel_streams::{
    Consumed, Grouped, KTable, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig,
    TopologyTestDriver,
};

fn s(v: &str) -> String {
    v.to_string()
}

/// The customer id of an order value `"<customer>,<item>"` (none when
/// the customer part is empty).
#[allow(clippy::ptr_arg, reason = "the extractor receives the table's value type")]
fn customer_of(order: &String) -> Option<String> {
    order.split(',').next().filter(|c| !c.is_empty()).map(str::to_string)
}

fn tables(b: &mut StreamsBuilder) -> (KTable<String, String>, KTable<String, String>) {
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    (
        b.table::<String, String>("orders", c(), Materialized::new()),
        b.table::<String, String>("customers", c(), Materialized::new()),
    )
}

type Out = Vec<(String, Option<String>)>;

/// Pipes `(topic, key, value)` (None = delete) and returns what the
/// result table forwarded after each.
fn run(b: StreamsBuilder, steps: &[(&str, &str, Option<&str>)]) -> Vec<Out> {
    let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("fk")).unwrap();
    let orders = driver.create_input_topic("orders", Serdes::string(), Serdes::nullable(Serdes::string()));
    let customers =
        driver.create_input_topic("customers", Serdes::string(), Serdes::nullable(Serdes::string()));
    let out = driver.create_output_topic("out", Serdes::string(), Serdes::nullable(Serdes::string()));
    let mut after = Vec::new();
    for &(topic, key, value) in steps {
        let input = if topic == "o" { &orders } else { &customers };
        input.pipe_input(s(key), value.map(s)).unwrap();
        after.push(out.read_key_values_to_list().unwrap());
    }
    after
}

fn some(k: &str, v: &str) -> (String, Option<String>) {
    (s(k), Some(s(v)))
}

fn none(k: &str) -> (String, Option<String>) {
    (s(k), None)
}

const STEPS: &[(&str, &str, Option<&str>)] = &[
    ("o", "o1", Some("c1,book")), // 0: c1 unknown yet
    ("c", "c1", Some("Ann")),     // 1: o1 joins
    ("c", "c2", Some("Bob")),     // 2: nobody orders from c2
    ("o", "o2", Some("c1,pen")),  // 3
    ("o", "o1", Some("c2,book")), // 4: o1 moves to c2
    ("c", "c1", Some("Ann B.")),  // 5: only o2 follows
    ("o", "o3", Some(",cash")),   // 6: no customer
    ("c", "c1", None),            // 7: c1 deleted
    ("o", "o1", None),            // 8: o1 deleted
    ("c", "c2", Some("Bobby")),   // 9: nobody left on c2
];

#[test]
fn an_inner_foreign_key_join_follows_key_changes_and_deletes_on_both_sides() {
    let mut b = StreamsBuilder::new();
    let (orders, customers) = tables(&mut b);
    orders
        .join_foreign_key(
            &customers,
            customer_of,
            |o, name| format!("{o}|{name}"),
            Materialized::as_("named-orders").with_value_serde(Serdes::string()),
        )
        .to_stream()
        .to("out", Produced::with(Serdes::string(), Serdes::nullable(Serdes::string())));
    let after = run(b, STEPS);
    assert_eq!(
        after,
        vec![
            vec![],
            vec![some("o1", "c1,book|Ann")],
            vec![],
            vec![some("o2", "c1,pen|Ann")],
            vec![some("o1", "c2,book|Bob")],
            vec![some("o2", "c1,pen|Ann B.")],
            vec![],
            vec![none("o2")],
            vec![none("o1")],
            vec![],
        ]
    );
}

#[test]
fn a_left_foreign_key_join_keeps_rows_without_a_match() {
    let mut b = StreamsBuilder::new();
    let (orders, customers) = tables(&mut b);
    orders
        .left_join_foreign_key(
            &customers,
            customer_of,
            |o, name: Option<&String>| format!("{o}|{}", name.map_or("-", String::as_str)),
            Materialized::with(Serdes::string(), Serdes::string()),
        )
        .to_stream()
        .to("out", Produced::with(Serdes::string(), Serdes::nullable(Serdes::string())));
    let after = run(b, STEPS);
    assert_eq!(
        after,
        vec![
            vec![some("o1", "c1,book|-")],
            vec![some("o1", "c1,book|Ann")],
            vec![],
            vec![some("o2", "c1,pen|Ann")],
            vec![some("o1", "c2,book|Bob")],
            vec![some("o2", "c1,pen|Ann B.")],
            vec![some("o3", ",cash|-")],
            vec![some("o2", "c1,pen|-")],
            vec![none("o1")],
            vec![],
        ]
    );
}

/// The result forwards old values: orders per customer name stay right
/// as orders move and names change.
#[test]
fn an_aggregation_over_a_foreign_key_join_subtracts_what_a_row_contributed_before() {
    let mut b = StreamsBuilder::new();
    let (orders, customers) = tables(&mut b);
    orders
        .join_foreign_key(
            &customers,
            customer_of,
            |_, name: &String| name.clone(),
            Materialized::with(Serdes::string(), Serdes::string()),
        )
        .group_by(|_, name| (name.clone(), 1i64), Grouped::with(Serdes::string(), Serdes::i64()))
        .count(Materialized::as_("orders-per-name"));
    let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("per-name")).unwrap();
    let orders = driver.create_input_topic("orders", Serdes::string(), Serdes::nullable(Serdes::string()));
    let customers =
        driver.create_input_topic("customers", Serdes::string(), Serdes::nullable(Serdes::string()));
    let counts = driver.get_key_value_store("orders-per-name", Serdes::string(), Serdes::i64()).unwrap();
    let count = |name: &str| counts.get(&s(name)).unwrap().unwrap_or(0);
    customers.pipe_input(s("c1"), Some(s("Ann"))).unwrap();
    customers.pipe_input(s("c2"), Some(s("Bob"))).unwrap();
    for i in 0..5 {
        orders.pipe_input(format!("o{i}"), Some(format!("c{},x", 1 + i % 2))).unwrap();
    }
    assert_eq!((count("Ann"), count("Bob")), (3, 2));
    orders.pipe_input(s("o0"), Some(s("c2,x"))).unwrap();
    assert_eq!((count("Ann"), count("Bob")), (2, 3));
    customers.pipe_input(s("c2"), Some(s("Robert"))).unwrap();
    assert_eq!((count("Bob"), count("Robert")), (0, 3));
    customers.pipe_input(s("c1"), None).unwrap();
    orders.pipe_input(s("o1"), None).unwrap();
    assert_eq!((count("Ann"), count("Robert")), (0, 2));
}

#[test]
fn joining_a_table_that_is_not_materialized_on_a_foreign_key_fails_to_build() {
    let mut b = StreamsBuilder::new();
    let (orders, customers) = tables(&mut b);
    orders.join_foreign_key(
        &customers.filter(|_, v| !v.is_empty()),
        customer_of,
        |o, n| format!("{o}{n}"),
        Materialized::with(Serdes::string(), Serdes::string()),
    );
    let err = b.build().unwrap_err();
    assert!(matches!(err, runnel_streams::StreamsError::TableNotMaterialized { .. }), "{err}");
}
