//! Stream-stream joins (issue 16, point 1): inner, left and outer joins in
//! `JoinWindows`, with Kafka's semantics since 3.1 (KIP-633, no spurious
//! left/outer results), through the `TopologyTestDriver`.

use std::time::Duration;

use runnel_streams::{
    Consumed, JoinWindows, KStream, Produced, Serdes, StreamJoined, StreamsBuilder, StreamsConfig,
    TopologyTestDriver,
};

type Out = (String, String, i64);

fn s(v: &str) -> String {
    v.to_string()
}

fn joined() -> StreamJoined<String, String, String> {
    StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string())
}

fn inputs(b: &mut StreamsBuilder) -> (KStream<String, String>, KStream<String, String>) {
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    (b.stream::<String, String>("left", c()), b.stream::<String, String>("right", c()))
}

fn fmt(l: Option<&String>, r: Option<&String>) -> String {
    format!("{}+{}", l.map_or("null", String::as_str), r.map_or("null", String::as_str))
}

/// Pipes `(side, key, value, time)` and returns what came out, in order,
/// as `(key, value, timestamp)`.
fn run(b: StreamsBuilder, input: &[(&str, &str, &str, i64)]) -> (Vec<Out>, TopologyTestDriver) {
    let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("join-app")).unwrap();
    let left = driver.create_input_topic("left", Serdes::string(), Serdes::string());
    let right = driver.create_input_topic("right", Serdes::string(), Serdes::string());
    let out = driver.create_output_topic("out", Serdes::string(), Serdes::string());
    for &(side, key, value, time) in input {
        let topic = if side == "L" { &left } else { &right };
        topic.pipe_input_with_timestamp(s(key), s(value), time).unwrap();
    }
    let records = out.read_records_to_list().unwrap();
    (records.into_iter().map(|r| (r.key, r.value, r.timestamp)).collect(), driver)
}

fn to_out(stream: KStream<String, String>) {
    stream.to("out", Produced::with(Serdes::string(), Serdes::string()));
}

#[test]
fn an_inner_join_pairs_records_within_the_window_in_both_directions_with_the_later_timestamp() {
    let mut b = StreamsBuilder::new();
    let (l, r) = inputs(&mut b);
    let windows = JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(100));
    to_out(l.join(&r, |a, b| format!("{a}+{b}"), windows, joined()));
    let (out, _) = run(
        b,
        &[
            ("L", "k", "a", 1_000),
            ("R", "k", "x", 1_050),     // joins a
            ("R", "other", "y", 1_060), // another key: nothing
            ("L", "k", "b", 1_100),     // joins x (50 before)
            ("R", "k", "z", 1_250),     // 150 after b, 250 after a: nothing
            ("L", "k", "c", 1_200),     // z is 50 after: joins z
        ],
    );
    assert_eq!(out, vec![(s("k"), s("a+x"), 1_050), (s("k"), s("b+x"), 1_100), (s("k"), s("c+z"), 1_250),]);
}

#[test]
fn records_with_the_same_key_and_time_are_all_kept_and_joined() {
    let mut b = StreamsBuilder::new();
    let (l, r) = inputs(&mut b);
    let windows = JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(10));
    to_out(l.join(&r, |a, b| format!("{a}+{b}"), windows, joined()));
    let (out, _) = run(b, &[("L", "k", "a1", 500), ("L", "k", "a2", 500), ("R", "k", "x", 500)]);
    let mut values: Vec<String> = out.into_iter().map(|(_, v, _)| v).collect();
    values.sort();
    assert_eq!(values, vec![s("a1+x"), s("a2+x")]);
}

#[test]
fn before_and_after_bound_the_window_on_each_side() {
    let mut b = StreamsBuilder::new();
    let (l, r) = inputs(&mut b);
    // Right records from 0 to 100 ms after the left one.
    let windows =
        JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(100)).before(Duration::ZERO);
    to_out(l.join(&r, |a, b| format!("{a}+{b}"), windows, joined()));
    let (out, _) = run(
        b,
        &[
            ("L", "k", "a", 1_000),
            ("R", "k", "early", 999),
            ("R", "k", "on-time", 1_100),
            ("R", "k", "late", 1_101),
        ],
    );
    assert_eq!(out, vec![(s("k"), s("a+on-time"), 1_100)]);
}

#[test]
fn a_left_join_emits_an_unmatched_record_only_once_its_window_has_closed() {
    let mut b = StreamsBuilder::new();
    let (l, r) = inputs(&mut b);
    let windows =
        JoinWindows::of_time_difference_and_grace(Duration::from_millis(100), Duration::from_millis(50));
    to_out(l.left_join(&r, |a, b| fmt(Some(a), b), windows, joined()));
    let (out, _) = run(
        b,
        &[
            ("L", "k", "a", 1_000),     // window [900, 1100], closes after 1150
            ("L", "j", "b", 1_010),     // window closes after 1160
            ("R", "k", "x", 1_090),     // joins a: a is never emitted alone
            ("R", "other", "t", 1_150), // stream time 1150: nothing closed yet
            ("R", "other", "t", 1_161), // b's window closed: b+null
            ("L", "k", "c", 1_300),
        ],
    );
    assert_eq!(out, vec![(s("k"), s("a+x"), 1_090), (s("j"), s("b+null"), 1_010)]);
}

#[test]
fn a_match_arriving_late_but_within_grace_replaces_the_null_result() {
    let mut b = StreamsBuilder::new();
    let (l, r) = inputs(&mut b);
    let windows =
        JoinWindows::of_time_difference_and_grace(Duration::from_millis(100), Duration::from_millis(500));
    to_out(l.left_join(&r, |a, b| fmt(Some(a), b), windows, joined()));
    let (out, _) = run(
        b,
        &[
            ("L", "k", "a", 1_000),
            ("R", "z", "t", 1_400), // stream time moves past a's window, not its grace
            ("R", "k", "x", 1_050), // out of order, within grace: joins a
            ("R", "z", "t", 2_000), // a's grace is over: a was matched, no a+null
        ],
    );
    assert_eq!(out, vec![(s("k"), s("a+x"), 1_050)]);
}

#[test]
fn an_outer_join_emits_either_side_alone_after_its_window_closes() {
    let mut b = StreamsBuilder::new();
    let (l, r) = inputs(&mut b);
    let windows = JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(100));
    to_out(l.outer_join(&r, fmt, windows, joined()));
    let (out, _) = run(
        b,
        &[
            ("L", "a", "l1", 1_000),
            ("R", "b", "r1", 1_020),
            ("L", "c", "l2", 1_050),
            ("R", "c", "r2", 1_060), // joins l2
            ("L", "z", "tick", 1_500),
        ],
    );
    assert_eq!(
        out,
        vec![(s("c"), s("l2+r2"), 1_060), (s("a"), s("l1+null"), 1_000), (s("b"), s("null+r1"), 1_020),]
    );
}

#[test]
fn records_later_than_their_window_and_grace_are_dropped_and_counted() {
    let mut b = StreamsBuilder::new();
    let (l, r) = inputs(&mut b);
    let windows =
        JoinWindows::of_time_difference_and_grace(Duration::from_millis(100), Duration::from_millis(100));
    to_out(l.join(&r, |a, b| format!("{a}+{b}"), windows, joined()));
    let (out, driver) = run(
        b,
        &[
            ("R", "k", "x", 1_000),
            ("L", "z", "t", 1_500),
            ("L", "k", "too-late", 1_050), // window end 1150 + grace 100 < 1500
            ("L", "k", "in-grace", 1_350), // ...
        ],
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(driver.metrics().dropped_records_total, 1);
}

#[test]
fn a_key_changed_before_the_join_goes_through_a_repartition_topic_and_stores_have_changelogs() {
    let mut b = StreamsBuilder::new();
    let (l, r) = inputs(&mut b);
    let rekeyed = l.select_key(|_, v| v.clone());
    let windows = JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(1));
    to_out(rekeyed.left_join(
        &r,
        |a, b| fmt(Some(a), b),
        windows,
        joined().with_name("enrich").with_store_name("enrich-store"),
    ));
    let topology = b.build().unwrap();
    let repartitions: Vec<String> = topology.repartition_topics("app").into_iter().map(|t| t.name).collect();
    assert_eq!(repartitions, vec![s("app-enrich-left-repartition")]);
    let mut changelogs: Vec<(String, Option<i64>)> =
        topology.changelog_topics("app").into_iter().map(|c| (c.name, c.retention_ms)).collect();
    changelogs.sort();
    let day = 86_400_000;
    assert_eq!(
        changelogs,
        vec![
            (s("app-enrich-store-other-join-store-changelog"), Some(2_000 + day)),
            (s("app-enrich-store-outer-shared-join-store-changelog"), None),
            (s("app-enrich-store-this-join-store-changelog"), Some(2_000 + day)),
        ]
    );
    // And it joins by the new key.
    let driver = TopologyTestDriver::new(topology, StreamsConfig::new("app")).unwrap();
    let left = driver.create_input_topic("left", Serdes::string(), Serdes::string());
    let right = driver.create_input_topic("right", Serdes::string(), Serdes::string());
    let out = driver.create_output_topic("out", Serdes::string(), Serdes::string());
    right.pipe_input_with_timestamp(s("u7"), s("profile"), 100).unwrap();
    left.pipe_input_with_timestamp(s("ignored"), s("u7"), 200).unwrap();
    assert_eq!(out.read_key_values_to_list().unwrap(), vec![(s("u7"), s("u7+profile"))]);
}

/// The input of the join-semantics tables in Kafka's documentation
/// ("Kafka Streams DSL", "Joining"): one key, `None` a null value, in
/// timestamp order, all within one window.
const DOC_INPUT: &[(&str, i64, Option<&str>)] = &[
    ("L", 1, None),
    ("R", 2, None),
    ("L", 3, Some("A")),
    ("R", 4, Some("a")),
    ("L", 5, Some("B")),
    ("R", 6, Some("b")),
    ("L", 7, None),
    ("R", 8, None),
    ("L", 9, Some("C")),
    ("R", 10, Some("c")),
    ("R", 11, None),
    ("L", 12, None),
    ("R", 13, None),
    ("R", 14, Some("d")),
    ("L", 15, Some("D")),
];

/// What a join of the documentation's input emits, as `(timestamp, "[l, r]")`.
fn doc_join(kind: &str) -> Vec<(i64, String)> {
    let mut b = StreamsBuilder::new();
    let c = || Consumed::with(Serdes::string(), Serdes::nullable(Serdes::string()));
    let l = b.stream::<String, Option<String>>("left", c());
    let r = b.stream::<String, Option<String>>("right", c());
    let windows = JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(100));
    let j = || {
        StreamJoined::with(
            Serdes::string(),
            Serdes::nullable(Serdes::string()),
            Serdes::nullable(Serdes::string()),
        )
    };
    let show = |v: Option<&Option<String>>| v.and_then(|v| v.clone()).unwrap_or_else(|| "null".into());
    let out = match kind {
        "inner" => l.join(&r, move |a, b| format!("[{}, {}]", show(Some(a)), show(Some(b))), windows, j()),
        "left" => l.left_join(&r, move |a, b| format!("[{}, {}]", show(Some(a)), show(b)), windows, j()),
        _ => l.outer_join(&r, move |a, b| format!("[{}, {}]", show(a), show(b)), windows, j()),
    };
    out.to("out", Produced::with(Serdes::string(), Serdes::string()));
    let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    let left = driver.create_input_topic("left", Serdes::string(), Serdes::nullable(Serdes::string()));
    let right = driver.create_input_topic("right", Serdes::string(), Serdes::nullable(Serdes::string()));
    let output = driver.create_output_topic("out", Serdes::string(), Serdes::string());
    for &(side, ts, value) in DOC_INPUT {
        let topic = if side == "L" { &left } else { &right };
        topic.pipe_input_with_timestamp(s("k"), value.map(s), ts).unwrap();
    }
    output.read_records_to_list().unwrap().into_iter().map(|r| (r.timestamp, r.value)).collect()
}

/// Kafka's table: inner, left and outer join (3.1 and later) emit the
/// same pairs for this input (no window closes, null values are dropped),
/// at the later timestamp of each pair.
#[test]
fn the_join_tables_of_kafkas_documentation_replay_exactly() {
    let expected: Vec<(i64, String)> = [
        (4, "[A, a]"),
        (5, "[B, a]"),
        (6, "[A, b]"),
        (6, "[B, b]"),
        (9, "[C, a]"),
        (9, "[C, b]"),
        (10, "[A, c]"),
        (10, "[B, c]"),
        (10, "[C, c]"),
        (14, "[A, d]"),
        (14, "[B, d]"),
        (14, "[C, d]"),
        (15, "[D, a]"),
        (15, "[D, b]"),
        (15, "[D, c]"),
        (15, "[D, d]"),
    ]
    .into_iter()
    .map(|(t, v)| (t, v.to_string()))
    .collect();
    for kind in ["inner", "left", "outer"] {
        assert_eq!(doc_join(kind), expected, "{kind} join");
    }
}

#[test]
fn a_record_emitted_without_a_match_is_final_while_a_matched_one_still_joins_late_records() {
    let mut b = StreamsBuilder::new();
    let (l, r) = inputs(&mut b);
    let windows = JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(5_000));
    to_out(l.left_join(&r, |a, b| fmt(Some(a), b), windows, joined()));
    let (out, _) = run(
        b,
        &[
            ("L", "k", "alone", 10_000),
            ("L", "m", "matched", 10_000),
            ("R", "m", "r1", 12_000),   // m: matched+r1
            ("R", "z", "tick", 15_001), // windows of 10 000 closed: alone+null
            ("R", "k", "late", 15_000), // in alone's window, but alone was final
            ("R", "m", "late", 15_000), // matched was never final: matched+late
        ],
    );
    assert_eq!(
        out,
        vec![
            (s("m"), s("matched+r1"), 12_000),
            (s("k"), s("alone+null"), 10_000),
            (s("m"), s("matched+late"), 15_000),
        ]
    );
}

fn table_join_topology(left: bool) -> runnel_streams::Topology {
    let mut b = StreamsBuilder::new();
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    let users = b.table::<String, String>("users", c(), runnel_streams::Materialized::new());
    let clicks = b.stream::<String, String>("clicks", c());
    let joined = || runnel_streams::Joined::with(Serdes::string(), Serdes::string(), Serdes::string());
    let out = if left {
        clicks.left_join_table(&users, |page, region| fmt(Some(page), region), joined())
    } else {
        clicks.join_table(&users, |page, region| format!("{page}+{region}"), joined())
    };
    to_out(out);
    b.build().unwrap()
}

/// `(topic, key, value or None for a tombstone, time)` in; what came out.
fn run_table_join(left: bool, input: &[(&str, &str, Option<&str>, i64)]) -> Vec<Out> {
    let driver = TopologyTestDriver::new(table_join_topology(left), StreamsConfig::new("enrich")).unwrap();
    let users = driver.create_input_topic("users", Serdes::string(), Serdes::nullable(Serdes::string()));
    let clicks = driver.create_input_topic("clicks", Serdes::string(), Serdes::string());
    let out = driver.create_output_topic("out", Serdes::string(), Serdes::string());
    for &(topic, key, value, time) in input {
        if topic == "users" {
            users.pipe_input_with_timestamp(s(key), value.map(s), time).unwrap();
        } else {
            clicks.pipe_input_with_timestamp(s(key), s(value.unwrap()), time).unwrap();
        }
    }
    out.read_records_to_list().unwrap().into_iter().map(|r| (r.key, r.value, r.timestamp)).collect()
}

#[test]
fn a_stream_table_join_looks_the_table_up_when_the_stream_record_arrives() {
    let input = [
        ("clicks", "ann", Some("/a"), 1), // no ann yet
        ("users", "ann", Some("EU"), 2),  // a table update emits nothing
        ("clicks", "ann", Some("/b"), 3),
        ("users", "ann", Some("US"), 4),
        ("clicks", "ann", Some("/c"), 5),
        ("users", "ann", None, 6), // tombstone: ann is gone
        ("clicks", "ann", Some("/d"), 7),
    ];
    assert_eq!(run_table_join(false, &input), vec![(s("ann"), s("/b+EU"), 3), (s("ann"), s("/c+US"), 5)]);
    assert_eq!(
        run_table_join(true, &input),
        vec![
            (s("ann"), s("/a+null"), 1),
            (s("ann"), s("/b+EU"), 3),
            (s("ann"), s("/c+US"), 5),
            (s("ann"), s("/d+null"), 7),
        ]
    );
}

#[test]
fn joining_a_table_that_is_not_materialized_fails_to_build() {
    let mut b = StreamsBuilder::new();
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    let users = b
        .table::<String, String>("users", c(), runnel_streams::Materialized::new())
        .filter(|_, v| !v.is_empty());
    let joined = runnel_streams::Joined::with(Serdes::string(), Serdes::string(), Serdes::string());
    to_out(b.stream::<String, String>("clicks", c()).join_table(&users, |a, b| format!("{a}{b}"), joined));
    let err = b.build().unwrap_err();
    assert!(matches!(err, runnel_streams::StreamsError::TableNotMaterialized { .. }), "{err}");
}

/// The KStream-KTable rows of the join-semantics table in Kafka's
/// documentation: STREAM_1 is the stream, STREAM_2 the table (`None` a
/// tombstone); a null stream value is dropped.
#[test]
fn the_stream_table_rows_of_kafkas_documentation_replay_exactly() {
    let doc: Vec<(&str, i64, Option<&str>)> = DOC_INPUT.iter().map(|&(side, ts, v)| (side, ts, v)).collect();
    let run = |left: bool| -> Vec<(i64, String)> {
        let mut b = StreamsBuilder::new();
        let nullable = || Consumed::with(Serdes::string(), Serdes::nullable(Serdes::string()));
        let table = b.table::<String, String>(
            "right",
            Consumed::with(Serdes::string(), Serdes::string()),
            runnel_streams::Materialized::new(),
        );
        let stream = b.stream::<String, Option<String>>("left", nullable()).filter(|_, v| v.is_some());
        let joined = || {
            runnel_streams::Joined::with(
                Serdes::string(),
                Serdes::nullable(Serdes::string()),
                Serdes::string(),
            )
        };
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "null".into());
        let out = if left {
            stream.left_join_table(
                &table,
                move |a, b| format!("[{}, {}]", show(a), b.map_or("null", String::as_str)),
                joined(),
            )
        } else {
            stream.join_table(&table, move |a, b| format!("[{}, {b}]", show(a)), joined())
        };
        to_out(out);
        let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("doc")).unwrap();
        let l = driver.create_input_topic("left", Serdes::string(), Serdes::nullable(Serdes::string()));
        let r = driver.create_input_topic("right", Serdes::string(), Serdes::nullable(Serdes::string()));
        let output = driver.create_output_topic("out", Serdes::string(), Serdes::string());
        for &(side, ts, value) in &doc {
            let topic = if side == "L" { &l } else { &r };
            topic.pipe_input_with_timestamp(s("k"), value.map(s), ts).unwrap();
        }
        output.read_records_to_list().unwrap().into_iter().map(|r| (r.timestamp, r.value)).collect()
    };
    let pairs = |v: &[(i64, &str)]| v.iter().map(|(t, s)| (*t, s.to_string())).collect::<Vec<_>>();
    assert_eq!(run(false), pairs(&[(5, "[B, a]"), (15, "[D, d]")]));
    assert_eq!(run(true), pairs(&[(3, "[A, null]"), (5, "[B, a]"), (9, "[C, null]"), (15, "[D, d]")]));
}

/// Replays the documentation's input into two tables joined with `kind`
/// and returns what the result table forwarded, as `(timestamp, value)`
/// with `None` a delete.
fn doc_table_join(kind: &str) -> Vec<(i64, Option<String>)> {
    let mut b = StreamsBuilder::new();
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    let m = runnel_streams::Materialized::new;
    let l = b.table::<String, String>("left", c(), m());
    let r = b.table::<String, String>("right", c(), m());
    let show = |v: Option<&String>| v.map_or("null", String::as_str).to_string();
    let out = match kind {
        "inner" => l.join(&r, move |a, b| format!("[{a}, {b}]")),
        "left" => l.left_join(&r, move |a, b| format!("[{a}, {}]", show(b))),
        _ => l.outer_join(&r, move |a, b| format!("[{}, {}]", show(a), show(b))),
    };
    out.to_stream().to("out", Produced::with(Serdes::string(), Serdes::nullable(Serdes::string())));
    let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("doc")).unwrap();
    let left = driver.create_input_topic("left", Serdes::string(), Serdes::nullable(Serdes::string()));
    let right = driver.create_input_topic("right", Serdes::string(), Serdes::nullable(Serdes::string()));
    let output = driver.create_output_topic("out", Serdes::string(), Serdes::nullable(Serdes::string()));
    for &(side, ts, value) in DOC_INPUT {
        let topic = if side == "L" { &left } else { &right };
        topic.pipe_input_with_timestamp(s("k"), value.map(s), ts).unwrap();
    }
    output.read_records_to_list().unwrap().into_iter().map(|r| (r.timestamp, r.value)).collect()
}

/// The KTable-KTable table of Kafka's join semantics: every update of
/// either table looks the other up; `None` (shown as "null" in Kafka's
/// table) is a delete of the result, and rows where Kafka's table is
/// empty emit nothing.
#[test]
fn the_table_table_rows_of_kafkas_documentation_replay_exactly() {
    let rows =
        |v: &[(i64, Option<&str>)]| v.iter().map(|(t, s)| (*t, s.map(str::to_string))).collect::<Vec<_>>();
    assert_eq!(
        doc_table_join("inner"),
        rows(&[
            (4, Some("[A, a]")),
            (5, Some("[B, a]")),
            (6, Some("[B, b]")),
            (7, None),
            (10, Some("[C, c]")),
            (11, None),
            (15, Some("[D, d]")),
        ])
    );
    assert_eq!(
        doc_table_join("left"),
        rows(&[
            (3, Some("[A, null]")),
            (4, Some("[A, a]")),
            (5, Some("[B, a]")),
            (6, Some("[B, b]")),
            (7, None),
            (9, Some("[C, null]")),
            (10, Some("[C, c]")),
            (11, Some("[C, null]")),
            (12, None),
            (15, Some("[D, d]")),
        ])
    );
    assert_eq!(
        doc_table_join("outer"),
        rows(&[
            (3, Some("[A, null]")),
            (4, Some("[A, a]")),
            (5, Some("[B, a]")),
            (6, Some("[B, b]")),
            (7, Some("[null, b]")),
            (8, None),
            (9, Some("[C, null]")),
            (10, Some("[C, c]")),
            (11, Some("[C, null]")),
            (12, None),
            (14, Some("[null, d]")),
            (15, Some("[D, d]")),
        ])
    );
}

/// A join result feeds a `group_by` aggregation: when either side
/// changes, the aggregation subtracts the key's old result and adds the
/// new one (the join forwards both), and a delete subtracts it.
#[test]
fn a_table_join_forwards_old_and_new_results_so_an_aggregation_downstream_stays_right() {
    use runnel_streams::{Grouped, Materialized};
    let mut b = StreamsBuilder::new();
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    // user -> region, user -> plan; count users per (region, plan).
    let regions = b.table::<String, String>("regions", c(), Materialized::new());
    let plans = b.table::<String, String>("plans", c(), Materialized::new());
    regions
        .join(&plans, |region, plan| format!("{region}/{plan}"))
        .group_by(|_, cell| (cell.clone(), 1i64), Grouped::with(Serdes::string(), Serdes::i64()))
        .count(Materialized::as_("users-per-cell"));
    let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("cells")).unwrap();
    let r = driver.create_input_topic("regions", Serdes::string(), Serdes::nullable(Serdes::string()));
    let p = driver.create_input_topic("plans", Serdes::string(), Serdes::nullable(Serdes::string()));
    let store = driver.get_key_value_store("users-per-cell", Serdes::string(), Serdes::i64()).unwrap();
    let count = |cell: &str| store.get(&s(cell)).unwrap();
    r.pipe_input(s("ann"), Some(s("EU"))).unwrap();
    r.pipe_input(s("bob"), Some(s("EU"))).unwrap();
    p.pipe_input(s("ann"), Some(s("pro"))).unwrap();
    p.pipe_input(s("bob"), Some(s("pro"))).unwrap();
    assert_eq!(count("EU/pro"), Some(2));
    r.pipe_input(s("ann"), Some(s("US"))).unwrap(); // left side changes
    assert_eq!((count("EU/pro"), count("US/pro")), (Some(1), Some(1)));
    p.pipe_input(s("bob"), Some(s("free"))).unwrap(); // right side changes
    assert_eq!((count("EU/pro"), count("EU/free")), (Some(0), Some(1)));
    p.pipe_input(s("ann"), None).unwrap(); // right delete removes ann's row
    assert_eq!(count("US/pro"), Some(0));
    r.pipe_input(s("bob"), None).unwrap(); // left delete removes bob's row
    assert_eq!(count("EU/free"), Some(0));
}

/// A join result is materialized, joined again (three tables) and looked
/// up by a stream; a derived table that is not materialized cannot be
/// joined.
#[test]
fn a_materialized_join_result_joins_again_and_serves_a_stream_table_join() {
    use runnel_streams::{Joined, Materialized};
    let mut b = StreamsBuilder::new();
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    let names = b.table::<String, String>("names", c(), Materialized::new());
    let emails = b.table::<String, String>("emails", c(), Materialized::new());
    let phones = b.table::<String, String>("phones", c(), Materialized::new());
    let contacts = names
        .join(&emails, |n, e| format!("{n} <{e}>"))
        .materialize(
            Materialized::as_("contacts").with_key_serde(Serdes::string()).with_value_serde(Serdes::string()),
        )
        .left_join(&phones, |ne, p| format!("{ne} {}", p.map_or("-", String::as_str)))
        .materialize(Materialized::with(Serdes::string(), Serdes::string()));
    let j = Joined::with(Serdes::string(), Serdes::string(), Serdes::string());
    to_out(b.stream::<String, String>("mail", c()).join_table(
        &contacts,
        |m, who| format!("{m} -> {who}"),
        j,
    ));
    let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("contacts")).unwrap();
    let input = |t: &str| driver.create_input_topic(t, Serdes::string(), Serdes::string());
    let (n, e, ph, mail) = (input("names"), input("emails"), input("phones"), input("mail"));
    let out = driver.create_output_topic("out", Serdes::string(), Serdes::string());
    n.pipe_input(s("u1"), s("Ann")).unwrap();
    mail.pipe_input(s("u1"), s("hello")).unwrap(); // no email yet: no contact
    e.pipe_input(s("u1"), s("ann@x")).unwrap();
    mail.pipe_input(s("u1"), s("hi")).unwrap();
    ph.pipe_input(s("u1"), s("555")).unwrap();
    mail.pipe_input(s("u1"), s("call")).unwrap();
    assert_eq!(
        out.read_values_to_list().unwrap(),
        vec![s("hi -> Ann <ann@x> -"), s("call -> Ann <ann@x> 555")]
    );
    let store = driver.get_key_value_store("contacts", Serdes::string(), Serdes::string()).unwrap();
    assert_eq!(store.get(&s("u1")).unwrap(), Some(s("Ann <ann@x>")));

    let mut b = StreamsBuilder::new();
    let names = b.table::<String, String>("names", c(), Materialized::new());
    let emails = b.table::<String, String>("emails", c(), Materialized::new());
    names.join(&emails.filter(|_, e| e.contains('@')), |n, e| format!("{n}{e}"));
    let err = b.build().unwrap_err();
    assert!(matches!(err, runnel_streams::StreamsError::TableNotMaterialized { .. }), "{err}");
}
