//! Stateful operators through the `TopologyTestDriver`: aggregations,
//! tables, repartitioning, changelogs and stores on disk.

use runnel_streams::{
    Consumed, Grouped, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig, StreamsError, Topology,
    TopologyTestDriver,
};

type S = String;

fn s(x: &str) -> String {
    x.to_string()
}

fn strings() -> Consumed<S, S> {
    Consumed::with(Serdes::string(), Serdes::string())
}

fn grouped() -> Grouped<S, S> {
    Grouped::with(Serdes::string(), Serdes::string())
}

fn counts_out() -> Produced<S, Option<i64>> {
    Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64()))
}

fn driver(topology: Topology) -> TopologyTestDriver {
    TopologyTestDriver::new(topology, StreamsConfig::new("app")).unwrap()
}

#[test]
fn count_emits_the_new_count_per_input_record() {
    let mut b = StreamsBuilder::new();
    b.stream("clicks", strings())
        .group_by_key(grouped())
        .count(Materialized::as_("counts"))
        .to_stream()
        .to("out", counts_out());
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
    let out = d.create_output_topic("out", Serdes::string(), Serdes::nullable(Serdes::i64()));
    for (user, page) in [("u1", "/a"), ("u2", "/b"), ("u1", "/c"), ("u1", "/a")] {
        input.pipe_input_with_timestamp(s(user), s(page), 100).unwrap();
    }
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(s("u1"), Some(1)), (s("u2"), Some(1)), (s("u1"), Some(2)), (s("u1"), Some(3))]
    );
    let store = d.get_key_value_store("counts", Serdes::string(), Serdes::i64()).unwrap();
    assert_eq!(store.all().unwrap(), vec![(s("u1"), 3), (s("u2"), 1)]);
    assert_eq!(store.get(&s("nobody")).unwrap(), None);
}

#[test]
fn reduce_and_aggregate_fold_values_per_key() {
    let mut b = StreamsBuilder::new();
    let amounts = b.stream::<S, i64>("amounts", Consumed::with(Serdes::string(), Serdes::i64()));
    let by_key = amounts.group_by_key(Grouped::with(Serdes::string(), Serdes::i64()));
    by_key
        .reduce(|a, b| a.max(b), Materialized::as_("max"))
        .to_stream()
        .to("max-out", Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())));
    by_key
        .aggregate(
            String::new,
            |_, v, agg: String| if agg.is_empty() { v.to_string() } else { format!("{agg},{v}") },
            Materialized::as_("history").with_value_serde(Serdes::string()),
        )
        .to_stream()
        .to("history-out", Produced::with(Serdes::string(), Serdes::nullable(Serdes::string())));
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("amounts", Serdes::string(), Serdes::i64());
    input.pipe_key_value_list([(s("a"), 5), (s("b"), 1), (s("a"), 3), (s("a"), 9)]).unwrap();
    let max = d.create_output_topic("max-out", Serdes::string(), Serdes::nullable(Serdes::i64()));
    assert_eq!(
        max.read_values_to_list().unwrap(),
        vec![Some(5), Some(1), Some(5), Some(9)],
        "the reducer keeps the maximum"
    );
    let history = d.create_output_topic("history-out", Serdes::string(), Serdes::nullable(Serdes::string()));
    assert_eq!(
        history.read_key_values_to_list().unwrap(),
        vec![
            (s("a"), Some(s("5"))),
            (s("b"), Some(s("1"))),
            (s("a"), Some(s("5,3"))),
            (s("a"), Some(s("5,3,9")))
        ]
    );
}

#[test]
fn aggregate_without_a_value_serde_fails_to_build_naming_the_store() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings()).group_by_key(grouped()).aggregate(
        || 0u64,
        |_, _, n| n + 1,
        Materialized::as_("n"),
    );
    let err = b.build().unwrap_err();
    assert!(matches!(&err, StreamsError::MissingSerde { store, part: "value", .. } if store == "n"), "{err}");
}

#[test]
fn two_stores_with_one_name_fail_to_build() {
    let mut b = StreamsBuilder::new();
    let g = b.stream("in", strings()).group_by_key(grouped());
    g.count(Materialized::as_("same"));
    g.count(Materialized::as_("same"));
    assert!(matches!(b.build(), Err(StreamsError::DuplicateStore { store }) if store == "same"));
}

#[test]
fn select_key_then_group_by_key_inserts_a_repartition_named_after_the_store() {
    let mut b = StreamsBuilder::new();
    b.stream("orders", strings())
        .select_key(|_, product| product.clone())
        .group_by_key(grouped())
        .count(Materialized::new())
        .to_stream()
        .to("per-product", counts_out());
    let topology = b.build().unwrap();
    let expected = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [orders])
      --> KSTREAM-KEY-SELECT-0000000001
    Processor: KSTREAM-KEY-SELECT-0000000001 (stores: [])
      --> KSTREAM-SINK-0000000004
      <-- KSTREAM-SOURCE-0000000000
    Sink: KSTREAM-SINK-0000000004 (topic: KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition)
      <-- KSTREAM-KEY-SELECT-0000000001

  Sub-topology: 1
    Source: KSTREAM-SOURCE-0000000005 (topics: [KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition])
      --> KSTREAM-AGGREGATE-0000000003
    Processor: KSTREAM-AGGREGATE-0000000003 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000002])
      --> KTABLE-TOSTREAM-0000000006
      <-- KSTREAM-SOURCE-0000000005
    Processor: KTABLE-TOSTREAM-0000000006 (stores: [])
      --> KSTREAM-SINK-0000000007
      <-- KSTREAM-AGGREGATE-0000000003
    Sink: KSTREAM-SINK-0000000007 (topic: per-product)
      <-- KTABLE-TOSTREAM-0000000006

";
    assert_eq!(topology.describe().to_string(), expected);
    assert_eq!(
        topology.repartition_topics("shop")[0].name,
        "shop-KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition"
    );
    let changelogs = topology.changelog_topics("shop");
    assert_eq!(changelogs.len(), 1);
    assert_eq!(changelogs[0].name, "shop-KSTREAM-AGGREGATE-STATE-STORE-0000000002-changelog");
    assert_eq!(changelogs[0].store, "KSTREAM-AGGREGATE-STATE-STORE-0000000002");

    let d = driver(topology);
    let input = d.create_input_topic("orders", Serdes::string(), Serdes::string());
    input.pipe_key_value_list([(s("o1"), s("pen")), (s("o2"), s("ink")), (s("o3"), s("pen"))]).unwrap();
    let out = d.create_output_topic("per-product", Serdes::string(), Serdes::nullable(Serdes::i64()));
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(s("pen"), Some(1)), (s("ink"), Some(1)), (s("pen"), Some(2))]
    );
    let repartition = d.create_output_topic(
        "app-KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition",
        Serdes::string(),
        Serdes::string(),
    );
    assert_eq!(repartition.read_key_values_to_list().unwrap()[0], (s("pen"), s("pen")));
}

#[test]
fn group_by_key_without_a_key_change_stays_in_one_subtopology() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings()).filter(|_, _| true).group_by_key(grouped()).count(Materialized::as_("c"));
    let topology = b.build().unwrap();
    assert_eq!(topology.describe().subtopologies().len(), 1);
    assert!(topology.repartition_topics("app").is_empty());
}

#[test]
fn table_from_topic_applies_updates_and_tombstones() {
    let mut b = StreamsBuilder::new();
    b.table("users", strings(), Materialized::as_("users-store"))
        .to_stream()
        .to("users-out", Produced::with(Serdes::string(), Serdes::nullable(Serdes::string())));
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("users", Serdes::string(), Serdes::nullable(Serdes::string()));
    input.pipe_input(s("u1"), Some(s("ann"))).unwrap();
    input.pipe_input(s("u2"), Some(s("bob"))).unwrap();
    input.pipe_input(s("u1"), Some(s("anna"))).unwrap();
    input.pipe_input(s("u2"), None).unwrap();
    input.pipe_input(s("u3"), None).unwrap(); // deleting an absent key changes nothing
    let out = d.create_output_topic("users-out", Serdes::string(), Serdes::nullable(Serdes::string()));
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![
            (s("u1"), Some(s("ann"))),
            (s("u2"), Some(s("bob"))),
            (s("u1"), Some(s("anna"))),
            (s("u2"), None)
        ]
    );
    let store = d.get_key_value_store("users-store", Serdes::string(), Serdes::string()).unwrap();
    assert_eq!(store.all().unwrap(), vec![(s("u1"), s("anna"))]);
}

#[test]
fn table_filter_map_values_and_to_stream_forward_changes() {
    let mut b = StreamsBuilder::new();
    b.table::<S, i64>("scores", Consumed::with(Serdes::string(), Serdes::i64()), Materialized::new())
        .filter(|_, score| *score >= 10)
        .map_values(|score| format!("score={score}"))
        .to_stream()
        .to("high", Produced::with(Serdes::string(), Serdes::nullable(Serdes::string())));
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("scores", Serdes::string(), Serdes::i64());
    input.pipe_input(s("a"), 5).unwrap(); // filtered out, was absent: nothing
    input.pipe_input(s("a"), 12).unwrap();
    input.pipe_input(s("b"), 30).unwrap();
    input.pipe_input(s("a"), 3).unwrap(); // drops below: a delete downstream
    let out = d.create_output_topic("high", Serdes::string(), Serdes::nullable(Serdes::string()));
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(s("a"), Some(s("score=12"))), (s("b"), Some(s("score=30"))), (s("a"), None)]
    );
}

#[test]
fn table_filter_not_keeps_failing_entries() {
    let mut b = StreamsBuilder::new();
    b.table::<S, i64>("scores", Consumed::with(Serdes::string(), Serdes::i64()), Materialized::new())
        .filter_not(|_, score| *score >= 10)
        .to_stream()
        .to("low", Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())));
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("scores", Serdes::string(), Serdes::i64());
    input.pipe_key_value_list([(s("a"), 5), (s("b"), 50)]).unwrap();
    let out = d.create_output_topic("low", Serdes::string(), Serdes::nullable(Serdes::i64()));
    assert_eq!(out.read_key_values_to_list().unwrap(), vec![(s("a"), Some(5))]);
}

#[test]
fn stream_to_table_materializes_latest_values() {
    let mut b = StreamsBuilder::new();
    let table = b.stream::<S, i64>("readings", Consumed::with(Serdes::string(), Serdes::i64())).to_table(
        Materialized::as_("latest").with_key_serde(Serdes::string()).with_value_serde(Serdes::i64()),
    );
    assert_eq!(table.queryable_store_name(), Some("latest"));
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("readings", Serdes::string(), Serdes::i64());
    input.pipe_key_value_list([(s("t1"), 20), (s("t2"), 18), (s("t1"), 21)]).unwrap();
    let store = d.get_key_value_store("latest", Serdes::string(), Serdes::i64()).unwrap();
    assert_eq!(store.all().unwrap(), vec![(s("t1"), 21), (s("t2"), 18)]);
}

#[test]
fn table_group_by_moves_a_key_from_one_group_to_another() {
    let mut b = StreamsBuilder::new();
    let table = b.table("user-region", strings(), Materialized::new());
    let by_region = table
        .group_by(|_user, region| (region.clone(), 1i64), Grouped::with(Serdes::string(), Serdes::i64()));
    by_region
        .aggregate(
            || 0i64,
            |_, v, agg| agg + v,
            |_, v, agg| agg - v,
            Materialized::as_("users").with_value_serde(Serdes::i64()),
        )
        .to_stream()
        .to("users-per-region", counts_out());
    by_region.count(Materialized::as_("count"));
    by_region.reduce(|a, b| a + b, |a, b| a - b, Materialized::as_("reduced"));
    let topology = b.build().unwrap();
    assert_eq!(topology.repartition_topics("app").len(), 3);
    let d = driver(topology);
    let input = d.create_input_topic("user-region", Serdes::string(), Serdes::string());
    input.pipe_input(s("alice"), s("A")).unwrap();
    input.pipe_input(s("bob"), s("A")).unwrap();
    let out = d.create_output_topic("users-per-region", Serdes::string(), Serdes::nullable(Serdes::i64()));
    assert_eq!(out.read_key_values_to_list().unwrap(), vec![(s("A"), Some(1)), (s("A"), Some(2))]);
    input.pipe_input(s("alice"), s("B")).unwrap();
    assert_eq!(out.read_key_values_to_list().unwrap(), vec![(s("A"), Some(1)), (s("B"), Some(1))]);
    for name in ["users", "count", "reduced"] {
        let store = d.get_key_value_store(name, Serdes::string(), Serdes::i64()).unwrap();
        assert_eq!(store.all().unwrap(), vec![(s("A"), 1), (s("B"), 1)], "store {name}");
    }
    // The repartition topic carries additions (flags byte 1 = new value)
    // and, for the move, a subtraction from A (flags 2 = old value) before
    // the addition to B.
    let repartition = d.create_output_topic("app-users-repartition", Serdes::string(), Serdes::byte_array());
    let one = 1i64.to_be_bytes();
    let with_flag = |flag: u8| [&[flag][..], &one[..]].concat();
    assert_eq!(
        repartition.read_key_values_to_list().unwrap(),
        vec![(s("A"), with_flag(1)), (s("A"), with_flag(1)), (s("A"), with_flag(2)), (s("B"), with_flag(1))]
    );
}

#[test]
fn changelog_records_carry_each_flushed_value_and_tombstones() {
    let mut b = StreamsBuilder::new();
    b.table("users", strings(), Materialized::as_("users-store"));
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("users", Serdes::string(), Serdes::nullable(Serdes::string()));
    input.pipe_input_with_timestamp(s("u1"), Some(s("ann")), 7).unwrap();
    input.pipe_input_with_timestamp(s("u1"), None, 8).unwrap();
    let changelog = d.create_output_topic(
        "app-users-store-changelog",
        Serdes::string(),
        Serdes::nullable(Serdes::string()),
    );
    let records = changelog.read_records_to_list().unwrap();
    let summary: Vec<_> = records.into_iter().map(|r| (r.key, r.value, r.timestamp)).collect();
    assert_eq!(summary, vec![(s("u1"), Some(s("ann")), 7), (s("u1"), None, 8)]);
}

#[test]
fn store_in_a_state_dir_survives_a_new_driver() {
    let dir = tempfile::tempdir().unwrap();
    let config = || StreamsConfig::new("durable").with_state_dir(dir.path());
    let topology = || {
        let mut b = StreamsBuilder::new();
        b.stream("in", strings()).group_by_key(grouped()).count(Materialized::as_("counts"));
        b.build().unwrap()
    };
    {
        let d = TopologyTestDriver::new(topology(), config()).unwrap();
        let input = d.create_input_topic("in", Serdes::string(), Serdes::string());
        input.pipe_key_value_list([(s("k"), s("1")), (s("k"), s("2"))]).unwrap();
    }
    assert!(
        dir.path().join("durable").join("0_0").join("counts").is_dir(),
        "layout is <state.dir>/<app>/<task>/<store>"
    );
    let d = TopologyTestDriver::new(topology(), config()).unwrap();
    let input = d.create_input_topic("in", Serdes::string(), Serdes::string());
    input.pipe_input(s("k"), s("3")).unwrap();
    let store = d.get_key_value_store("counts", Serdes::string(), Serdes::i64()).unwrap();
    assert_eq!(store.get(&s("k")).unwrap(), Some(3));
}

#[test]
fn unknown_store_names_the_stores_that_exist() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings()).group_by_key(grouped()).count(Materialized::as_("counts"));
    let d = driver(b.build().unwrap());
    let err = d.get_key_value_store("count", Serdes::string(), Serdes::i64()).unwrap_err();
    assert_eq!(err.to_string(), "no state store \"count\" (stores: [\"counts\"])");
}

#[test]
fn a_count_filtered_out_downstream_becomes_a_delete_using_the_old_value() {
    let mut b = StreamsBuilder::new();
    b.stream("clicks", strings())
        .group_by_key(grouped())
        .count(Materialized::as_("counts"))
        .filter(|_, c| *c < 2)
        .to_stream()
        .to("out", counts_out());
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
    let out = d.create_output_topic("out", Serdes::string(), Serdes::nullable(Serdes::i64()));
    input.pipe_input(s("k"), s("a")).unwrap();
    input.pipe_input(s("k"), s("b")).unwrap();
    input.pipe_input(s("k"), s("c")).unwrap();
    // 1 passes; 2 fails while the old value 1 passed: a delete; 3 fails
    // and so did 2: nothing.
    assert_eq!(out.read_key_values_to_list().unwrap(), vec![(s("k"), Some(1)), (s("k"), None)]);
}
