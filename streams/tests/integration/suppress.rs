//! Suppress and emit-final (issue 16, point 6): `KTable::suppress` with
//! `Suppressed::until_window_closes` / `until_time_limit` and
//! `BufferConfig`, and `EmitStrategy::on_window_close`, through the
//! `TopologyTestDriver`. The restart case is in `runtime.rs` beside this file.

use std::time::Duration;

use runnel_streams::{
    BufferConfig, Consumed, EmitStrategy, Grouped, KTable, Materialized, Produced, Serdes, StreamsBuilder,
    StreamsConfig, StreamsError, Suppressed, TimeWindows, TopologyTestDriver, Windowed,
};

const MINUTE: Duration = Duration::from_secs(60);

/// An output record: window key, count, timestamp.
type Out = (String, i64, i64);

fn s(v: &str) -> String {
    v.to_string()
}

/// A 1-minute windowed count per key with 10 s of grace.
fn windowed_counts(b: &mut StreamsBuilder, emit: EmitStrategy) -> KTable<Windowed<String>, i64> {
    b.stream::<String, String>("clicks", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .windowed_by(TimeWindows::of_size_and_grace(MINUTE, Duration::from_secs(10)))
        .emit_strategy(emit)
        .count(Materialized::as_("counts"))
}

fn to_out(table: KTable<Windowed<String>, i64>) {
    table
        .to_stream()
        .map(|w, n| (format!("{}@{}", w.key, w.window.start), n.map_or(-1, |n| n)))
        .to("out", Produced::with(Serdes::string(), Serdes::i64()));
}

/// Pipes `(key, time)` clicks; returns what came out after each, as
/// `(window key, count, timestamp)`.
fn run(b: StreamsBuilder, clicks: &[(&str, i64)]) -> (Vec<Vec<Out>>, TopologyTestDriver) {
    let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("suppress")).unwrap();
    let input = driver.create_input_topic("clicks", Serdes::string(), Serdes::string());
    let out = driver.create_output_topic("out", Serdes::string(), Serdes::i64());
    let mut after = Vec::new();
    for &(key, time) in clicks {
        input.pipe_input_with_timestamp(s(key), s("click"), time).unwrap();
        after.push(
            out.read_records_to_list().unwrap().into_iter().map(|r| (r.key, r.value, r.timestamp)).collect(),
        );
    }
    (after, driver)
}

const CLICKS: &[(&str, i64)] = &[
    ("ann", 1_000),
    ("ann", 30_000),
    ("bob", 59_000),
    ("ann", 61_000),  // the next window; the first is open until 70 s
    ("bob", 65_000),  // also the next window
    ("ann", 55_000),  // late but within grace: the first window's count grows
    ("bob", 70_000),  // stream time 70 s: the first window closes
    ("ann", 5_000),   // too late (window closed): dropped by the aggregation
    ("ann", 131_000), // closes [60, 120) at 130 s
];

#[test]
fn until_window_closes_emits_each_windows_final_count_once_when_it_closes() {
    let mut b = StreamsBuilder::new();
    let counts = windowed_counts(&mut b, EmitStrategy::on_window_update());
    to_out(counts.suppress(Suppressed::until_window_closes(BufferConfig::unbounded())));
    let (after, driver) = run(b, CLICKS);
    let emitted: Vec<usize> = after.iter().map(Vec::len).collect();
    assert_eq!(emitted, [0, 0, 0, 0, 0, 0, 2, 0, 2], "{after:?}");
    // Final counts, at the timestamp of each window's last update.
    assert_eq!(after[6], vec![(s("ann@0"), 3, 55_000), (s("bob@0"), 1, 59_000)]);
    assert_eq!(after[8], vec![(s("ann@60000"), 1, 61_000), (s("bob@60000"), 2, 70_000)]);
    assert_eq!(driver.metrics().dropped_records_total, 1);
}

#[test]
fn emit_strategy_on_window_close_gives_the_same_final_results_and_keeps_the_store_queryable() {
    let mut b = StreamsBuilder::new();
    let counts = windowed_counts(&mut b, EmitStrategy::on_window_close());
    assert_eq!(counts.queryable_store_name(), Some("counts"));
    to_out(counts);
    let (after, driver) = run(b, CLICKS);
    let flat: Vec<_> = after.into_iter().flatten().collect();
    assert_eq!(
        flat,
        vec![
            (s("ann@0"), 3, 55_000),
            (s("bob@0"), 1, 59_000),
            (s("ann@60000"), 1, 61_000),
            (s("bob@60000"), 2, 70_000)
        ]
    );
    let store = driver.get_window_store("counts", Serdes::string(), Serdes::i64()).unwrap();
    assert_eq!(store.fetch(&s("ann"), 0).unwrap(), Some(3));
}

/// A key's updates are held `limit` after the first one (later ones do
/// not restart the timer) and the latest goes out; the old value
/// forwarded is the one last emitted, so an aggregation downstream
/// subtracts the right amount.
#[test]
fn until_time_limit_forwards_a_keys_latest_update_once_per_limit_with_the_last_emitted_as_old() {
    let mut b = StreamsBuilder::new();
    let balances = b.table::<String, i64>(
        "balances",
        Consumed::with(Serdes::string(), Serdes::i64()),
        Materialized::new(),
    );
    let limited =
        balances.suppress(Suppressed::until_time_limit(Duration::from_secs(10), BufferConfig::unbounded()));
    limited.to_stream().to("out", Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())));
    // Total over all accounts, from the suppressed updates.
    limited.group_by(|_, v| (s("total"), *v), Grouped::with(Serdes::string(), Serdes::i64())).reduce(
        |a, b| a + b,
        |a, b| a - b,
        Materialized::as_("total"),
    );
    let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("limit")).unwrap();
    let input = driver.create_input_topic("balances", Serdes::string(), Serdes::i64());
    let out = driver.create_output_topic("out", Serdes::string(), Serdes::nullable(Serdes::i64()));
    let total = driver.get_key_value_store("total", Serdes::string(), Serdes::i64()).unwrap();
    let read = || {
        out.read_records_to_list()
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect::<Vec<_>>()
    };
    input.pipe_input_with_timestamp(s("a"), 100, 0).unwrap();
    input.pipe_input_with_timestamp(s("a"), 150, 4_000).unwrap();
    input.pipe_input_with_timestamp(s("b"), 7, 9_000).unwrap();
    assert_eq!(read(), vec![]);
    input.pipe_input_with_timestamp(s("a"), 170, 9_999).unwrap(); // still within a's 10 s
    assert_eq!(read(), vec![]);
    input.pipe_input_with_timestamp(s("c"), 1, 10_000).unwrap(); // a is due (0 + 10 s)
    assert_eq!(read(), vec![(s("a"), Some(170), 9_999)]);
    assert_eq!(total.get(&s("total")).unwrap(), Some(170));
    input.pipe_input_with_timestamp(s("a"), 200, 12_000).unwrap(); // a buffered again, old = 170
    input.pipe_input_with_timestamp(s("c"), 2, 22_000).unwrap(); // b (9 s), c (10 s), a (12 s) are due
    assert_eq!(
        read(),
        vec![(s("b"), Some(7), 9_000), (s("c"), Some(2), 22_000), (s("a"), Some(200), 12_000)]
    );
    assert_eq!(total.get(&s("total")).unwrap(), Some(209), "170 - 170 + 200 + 7 + 2");
}

#[test]
fn a_full_buffer_emits_its_oldest_entries_early_or_stops_the_app_as_configured() {
    let build = |buffer: BufferConfig| {
        let mut b = StreamsBuilder::new();
        b.table::<String, i64>("t", Consumed::with(Serdes::string(), Serdes::i64()), Materialized::new())
            .suppress(Suppressed::until_time_limit(Duration::from_secs(3600), buffer).with_name("held"))
            .to_stream()
            .to("out", Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())));
        TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("full")).unwrap()
    };
    let driver = build(BufferConfig::max_records(2));
    let input = driver.create_input_topic("t", Serdes::string(), Serdes::i64());
    let out = driver.create_output_topic("out", Serdes::string(), Serdes::nullable(Serdes::i64()));
    for (i, key) in ["x", "y", "z", "w"].into_iter().enumerate() {
        input.pipe_input_with_timestamp(s(key), i as i64, i as i64).unwrap();
    }
    // Two fit; each key beyond pushes the oldest out early.
    assert_eq!(out.read_key_values_to_list().unwrap(), vec![(s("x"), Some(0)), (s("y"), Some(1))]);

    let driver = build(BufferConfig::max_records(2).shut_down_when_full());
    let input = driver.create_input_topic("t", Serdes::string(), Serdes::i64());
    input.pipe_input_with_timestamp(s("x"), 0, 0).unwrap();
    input.pipe_input_with_timestamp(s("y"), 1, 1).unwrap();
    let err = input.pipe_input_with_timestamp(s("z"), 2, 2).unwrap_err();
    assert!(matches!(err, StreamsError::SuppressionBufferFull { records: 3, .. }), "{err}");
    assert!(err.to_string().contains("held"), "{err}");
}

#[test]
fn suppress_that_cannot_be_final_or_lacks_serdes_fails_to_build() {
    let mut b = StreamsBuilder::new();
    let counts = windowed_counts(&mut b, EmitStrategy::on_window_update());
    counts.suppress(Suppressed::until_window_closes(BufferConfig::max_records(10)));
    let err = b.build().unwrap_err();
    assert!(matches!(err, StreamsError::InvalidSuppression { .. }), "{err}");
    assert!(err.to_string().contains("cannot emit early"), "{err}");

    let mut b = StreamsBuilder::new();
    b.table::<String, i64>("t", Consumed::with(Serdes::string(), Serdes::i64()), Materialized::new())
        .map_values(|v| v + 1)
        .suppress(Suppressed::until_time_limit(MINUTE, BufferConfig::unbounded()));
    let err = b.build().unwrap_err();
    assert!(err.to_string().contains("serdes are not known"), "{err}");
}

/// Windows of each kind a windowed count can have.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Tumbling,
    Sliding,
    Session,
}

/// A deterministic click sequence: three keys, time mostly moving
/// forward with some records up to 3 s late, and long pauses so sessions
/// end.
fn clicks_sequence() -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let mut t = 0i64;
    let mut x: u64 = 7;
    for i in 0..300 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        t += ((x >> 33) % 2_000) as i64;
        if i % 50 == 49 {
            t += 30_000;
        }
        let late = if (x >> 20) % 5 == 0 { ((x >> 40) % 3_000) as i64 } else { 0 };
        out.push((format!("k{}", (x >> 50) % 3), (t - late).max(0)));
    }
    out
}

/// Runs a count in `kind` windows (10 s, 5 s of grace) over the
/// sequence, suppressed to final results or not, then one record far
/// ahead to close every window; returns each output as
/// (key, window start, window end, count).
fn windowed_run(kind: Kind, finals: bool) -> Vec<(String, i64, i64, Option<i64>)> {
    use runnel_streams::{SessionWindows, SlidingWindows};
    let (ten, grace) = (Duration::from_secs(10), Duration::from_secs(5));
    let mut b = StreamsBuilder::new();
    let grouped = b
        .stream::<String, String>("clicks", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()));
    let emit = if finals { EmitStrategy::on_window_close() } else { EmitStrategy::on_window_update() };
    let counts = match kind {
        Kind::Tumbling => grouped
            .windowed_by(TimeWindows::of_size_and_grace(ten, grace))
            .emit_strategy(emit)
            .count(Materialized::as_("c")),
        Kind::Sliding => grouped
            .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(ten, grace))
            .emit_strategy(emit)
            .count(Materialized::as_("c")),
        Kind::Session => {
            let counts = grouped
                .windowed_by_sessions(SessionWindows::of_inactivity_gap_and_grace(ten, grace))
                .count(Materialized::as_("c"));
            if finals {
                counts.suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
            } else {
                counts
            }
        }
    };
    counts
        .to_stream()
        .map(|w, n| (format!("{}|{}|{}", w.key, w.window.start, w.window.end), n.map_or(-1, |n| n)))
        .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("kinds")).unwrap();
    let input = driver.create_input_topic("clicks", Serdes::string(), Serdes::string());
    let out = driver.create_output_topic("out", Serdes::string(), Serdes::i64());
    for (key, t) in clicks_sequence() {
        input.pipe_input_with_timestamp(key, s("c"), t).unwrap();
    }
    input.pipe_input_with_timestamp(s("end"), s("c"), 10_000_000).unwrap();
    out.read_key_values_to_list()
        .unwrap()
        .into_iter()
        .map(|(k, n)| {
            let mut parts = k.split('|');
            let key = parts.next().unwrap().to_string();
            let start: i64 = parts.next().unwrap().parse().unwrap();
            let end: i64 = parts.next().unwrap().parse().unwrap();
            (key, start, end, (n >= 0).then_some(n))
        })
        .filter(|(key, ..)| key != "end")
        .collect()
}

/// For every kind of window: emit-final (or suppress until the window
/// closes) emits each window once, with the value its last update had,
/// and nothing for a session merged away; no window emitted as final
/// changes afterwards.
#[test]
fn final_results_equal_the_last_update_of_each_window_for_every_window_kind() {
    for kind in [Kind::Tumbling, Kind::Sliding, Kind::Session] {
        let updates = windowed_run(kind, false);
        let finals = windowed_run(kind, true);
        let mut last = std::collections::BTreeMap::new();
        for (key, start, end, n) in &updates {
            last.insert((key.clone(), *start, *end), *n);
        }
        let expected: std::collections::BTreeMap<_, _> =
            last.into_iter().filter_map(|(w, n)| n.map(|n| (w, n))).collect();
        let mut got = std::collections::BTreeMap::new();
        for (key, start, end, n) in finals {
            let previous = got.insert((key, start, end), n.expect("a final result is a count"));
            assert!(previous.is_none(), "{kind:?}: a window emitted twice");
        }
        assert!(expected.len() > 20, "{kind:?}: {} windows", expected.len());
        assert_eq!(got, expected, "{kind:?}");
    }
}

/// A bounded buffer under a stream of new keys emits its oldest entries
/// early, in the order they were buffered, however far apart their times.
#[test]
fn a_full_buffer_emits_early_in_buffer_time_order() {
    let mut b = StreamsBuilder::new();
    b.table::<String, i64>("t", Consumed::with(Serdes::string(), Serdes::i64()), Materialized::new())
        .suppress(Suppressed::until_time_limit(
            Duration::from_secs(3600 * 24 * 365),
            BufferConfig::max_records(50),
        ))
        .to_stream()
        .to("out", Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())));
    let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("order")).unwrap();
    let input = driver.create_input_topic("t", Serdes::string(), Serdes::i64());
    let out = driver.create_output_topic("out", Serdes::string(), Serdes::nullable(Serdes::i64()));
    // Times grow unevenly (1 ms to ~17 minutes apart).
    let mut t = 0i64;
    for i in 0..200i64 {
        t += 1 + (i * i * 2_503) % 1_000_000;
        input.pipe_input_with_timestamp(format!("k{i:03}"), i, t).unwrap();
    }
    let keys: Vec<String> = out.read_key_values_to_list().unwrap().into_iter().map(|(k, _)| k).collect();
    let expected: Vec<String> = (0..150).map(|i| format!("k{i:03}")).collect();
    assert_eq!(keys, expected);
}
