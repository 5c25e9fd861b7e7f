//! Windowed aggregations through the `TopologyTestDriver`: tumbling,
//! hopping and session windows with out-of-order and late records, grace,
//! the dropped-records metric, retention, and Kafka's key layouts.

use std::time::Duration;

use runnel_streams::{
    Consumed, Grouped, Materialized, Produced, Serdes, SessionWindows, StreamsBuilder, StreamsConfig,
    StreamsError, TimeWindows, TopologyTestDriver, Window, Windowed,
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

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `(key, window start, count)` of each update written to `out`.
fn time_windowed_counts(d: &TopologyTestDriver, size: Duration) -> Vec<(S, i64, Option<i64>)> {
    d.create_output_topic(
        "out",
        Serdes::time_windowed(Serdes::string(), size),
        Serdes::nullable(Serdes::i64()),
    )
    .read_key_values_to_list()
    .unwrap()
    .into_iter()
    .map(|(w, c)| (w.key, w.window.start, c))
    .collect()
}

fn count_by(windows: TimeWindows, materialized: Materialized<S, i64>) -> StreamsBuilder {
    let mut b = StreamsBuilder::new();
    b.stream("clicks", strings())
        .group_by_key(grouped())
        .windowed_by(windows)
        .count(materialized)
        .to_stream()
        .to(
            "out",
            Produced::with(
                Serdes::time_windowed(Serdes::string(), Duration::from_millis(windows.size_ms() as u64)),
                Serdes::nullable(Serdes::i64()),
            ),
        );
    b
}

#[test]
fn tumbling_count_accepts_out_of_order_records_within_grace_and_drops_later_ones() {
    let windows = TimeWindows::of_size_and_grace(ms(10_000), ms(5_000));
    let b = count_by(windows, Materialized::as_("counts"));
    let d = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
    for (key, t) in [("a", 1_000), ("a", 12_000), ("b", 9_000), ("a", 3_000), ("a", 16_000), ("a", 2_000)] {
        input.pipe_input_with_timestamp(s(key), s("x"), t).unwrap();
    }
    // At 3_000 stream time is 12_000: window [0, 10s) closes at 15_000, so
    // the record counts. At 2_000 stream time is 16_000: it is dropped.
    assert_eq!(
        time_windowed_counts(&d, ms(10_000)),
        vec![
            (s("a"), 0, Some(1)),
            (s("a"), 10_000, Some(1)),
            (s("b"), 0, Some(1)),
            (s("a"), 0, Some(2)),
            (s("a"), 10_000, Some(2)),
        ]
    );
    assert_eq!(d.metrics().dropped_records_total, 1);
    assert_eq!(d.metrics().process_total, 6, "the dropped record was processed too");
    let store = d.get_window_store("counts", Serdes::string(), Serdes::i64()).unwrap();
    assert_eq!(store.fetch(&s("a"), 0).unwrap(), Some(2));
    assert_eq!(store.fetch(&s("a"), 5_000).unwrap(), None);
    assert_eq!(store.fetch_range(&s("a"), 0, 20_000).unwrap(), vec![(0, 2), (10_000, 2)]);
    assert_eq!(store.fetch_range(&s("b"), 0, 20_000).unwrap(), vec![(0, 1)]);
}

#[test]
fn without_grace_a_window_closes_when_stream_time_reaches_its_end() {
    let windows = TimeWindows::of_size_with_no_grace(ms(10));
    let b = count_by(windows, Materialized::new());
    let d = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
    for t in [5, 9, 10, 9] {
        input.pipe_input_with_timestamp(s("k"), s("x"), t).unwrap();
    }
    assert_eq!(
        time_windowed_counts(&d, ms(10)),
        vec![(s("k"), 0, Some(1)), (s("k"), 0, Some(2)), (s("k"), 10, Some(1))]
    );
    assert_eq!(d.metrics().dropped_records_total, 1);
}

#[test]
fn hopping_windows_update_every_window_holding_the_record() {
    let windows = TimeWindows::of_size_and_grace(ms(10), ms(100)).advance_by(ms(5));
    let b = count_by(windows, Materialized::as_("hops"));
    let d = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
    for t in [7, 12, 3] {
        input.pipe_input_with_timestamp(s("k"), s("x"), t).unwrap();
    }
    assert_eq!(
        time_windowed_counts(&d, ms(10)),
        vec![
            (s("k"), 0, Some(1)),
            (s("k"), 5, Some(1)),
            (s("k"), 5, Some(2)),
            (s("k"), 10, Some(1)),
            (s("k"), 0, Some(2)),
        ]
    );
    let store = d.get_window_store("hops", Serdes::string(), Serdes::i64()).unwrap();
    assert_eq!(store.fetch_range(&s("k"), 0, 10).unwrap(), vec![(0, 2), (5, 2), (10, 1)]);
    assert_eq!(d.metrics().dropped_records_total, 0);
}

#[test]
fn windowed_reduce_and_aggregate_fold_per_window() {
    let mut b = StreamsBuilder::new();
    let grouped_stream = b
        .stream::<S, i64>("amounts", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()));
    let windows = TimeWindows::of_size_and_grace(ms(100), ms(100));
    grouped_stream.windowed_by(windows).reduce(|a, b| a + b, Materialized::as_("sums"));
    grouped_stream.windowed_by(windows).aggregate(
        String::new,
        |_k, v, agg| format!("{agg}{v};"),
        Materialized::as_("lists").with_value_serde(Serdes::string()),
    );
    let d = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic("amounts", Serdes::string(), Serdes::i64());
    for (v, t) in [(1, 10), (2, 50), (4, 150), (8, 99)] {
        input.pipe_input_with_timestamp(s("k"), v, t).unwrap();
    }
    let sums = d.get_window_store("sums", Serdes::string(), Serdes::i64()).unwrap();
    assert_eq!(sums.fetch_range(&s("k"), 0, 1_000).unwrap(), vec![(0, 11), (100, 4)]);
    let lists = d.get_window_store("lists", Serdes::string(), Serdes::string()).unwrap();
    assert_eq!(lists.fetch_range(&s("k"), 0, 1_000).unwrap(), vec![(0, s("1;2;8;")), (100, s("4;"))]);
}

#[test]
fn old_windows_expire_by_retention() {
    let minute = Duration::from_secs(60);
    let b = count_by(TimeWindows::of_size_with_no_grace(minute), Materialized::as_("counts"));
    let d = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
    input.pipe_input_with_timestamp(s("k"), s("x"), 1_000).unwrap();
    input.pipe_input_with_timestamp(s("k"), s("x"), 61_000).unwrap();
    let store = d.get_window_store("counts", Serdes::string(), Serdes::i64()).unwrap();
    assert_eq!(store.fetch_range(&s("k"), 0, 600_000).unwrap(), vec![(0, 1), (60_000, 1)]);
    // Retention is size + grace = 1 minute: at 3m20s the first minute's
    // segment is dropped; the second minute is within a live segment.
    input.pipe_input_with_timestamp(s("k"), s("x"), 200_000).unwrap();
    assert_eq!(store.fetch(&s("k"), 0).unwrap(), None);
    assert_eq!(store.fetch(&s("k"), 180_000).unwrap(), Some(1));
    // A longer retention keeps windows longer.
    let b = count_by(
        TimeWindows::of_size_with_no_grace(minute),
        Materialized::as_("counts").with_retention(Duration::from_secs(3600)),
    );
    let d = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
    input.pipe_input_with_timestamp(s("k"), s("x"), 1_000).unwrap();
    input.pipe_input_with_timestamp(s("k"), s("x"), 200_000).unwrap();
    let store = d.get_window_store("counts", Serdes::string(), Serdes::i64()).unwrap();
    assert_eq!(store.fetch(&s("k"), 0).unwrap(), Some(1));
}

#[test]
fn a_retention_shorter_than_size_plus_grace_fails_the_build() {
    let windows = TimeWindows::of_size_and_grace(ms(10_000), ms(5_000));
    let b = count_by(windows, Materialized::as_("counts").with_retention(ms(12_000)));
    let err = b.build().unwrap_err();
    assert!(matches!(err, StreamsError::RetentionTooShort { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "invalid topology: store \"counts\" has retention 12000 ms, less than the 15000 ms its windows stay \
         open (size or gap plus grace)"
    );
}

#[test]
fn windowed_keys_use_kafkas_layouts_in_outputs_and_changelogs() {
    let windows = TimeWindows::of_size_with_no_grace(ms(10_000));
    let topology = count_by(windows, Materialized::as_("counts")).build().unwrap();
    let changelogs = topology.changelog_topics("app");
    assert_eq!(changelogs[0].name, "app-counts-changelog");
    assert_eq!(changelogs[0].retention_ms, Some(10_000 + 24 * 3600 * 1000));
    let d = TopologyTestDriver::new(topology, StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
    input.pipe_input_with_timestamp(s("k"), s("x"), 12_345).unwrap();
    let raw = d.create_output_topic("out", Serdes::byte_array(), Serdes::byte_array());
    let (key, value) = raw.read_key_value().unwrap();
    assert_eq!(key, [b"k".as_slice(), &10_000i64.to_be_bytes()].concat(), "key ‖ start");
    assert_eq!(value, 1i64.to_be_bytes());
    let changelog = d.create_output_topic("app-counts-changelog", Serdes::byte_array(), Serdes::byte_array());
    let (key, _) = changelog.read_key_value().unwrap();
    assert_eq!(key, [b"k".as_slice(), &10_000i64.to_be_bytes(), &[0, 0, 0, 0]].concat(), "key ‖ start ‖ seq");
}

#[test]
fn windowed_aggregation_after_select_key_repartitions_first() {
    let mut b = StreamsBuilder::new();
    b.stream("clicks", strings())
        .group_by(|_user, page| page.clone(), grouped())
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(1_000)))
        .count(Materialized::as_("page-counts"))
        .to_stream()
        .to(
            "out",
            Produced::with(
                Serdes::time_windowed(Serdes::string(), ms(1_000)),
                Serdes::nullable(Serdes::i64()),
            ),
        );
    let topology = b.build().unwrap();
    assert_eq!(topology.repartition_topics("app")[0].name, "app-page-counts-repartition");
    let d = TopologyTestDriver::new(topology, StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
    input.pipe_input_with_timestamp(s("u1"), s("/a"), 100).unwrap();
    input.pipe_input_with_timestamp(s("u2"), s("/a"), 200).unwrap();
    assert_eq!(time_windowed_counts(&d, ms(1_000)), vec![(s("/a"), 0, Some(1)), (s("/a"), 0, Some(2))]);
}

fn session_updates(d: &TopologyTestDriver) -> Vec<(S, Window, Option<i64>)> {
    d.create_output_topic("out", Serdes::session_windowed(Serdes::string()), Serdes::nullable(Serdes::i64()))
        .read_key_values_to_list()
        .unwrap()
        .into_iter()
        .map(|(w, c): (Windowed<S>, _)| (w.key, w.window, c))
        .collect()
}

fn session_counts(windows: SessionWindows) -> TopologyTestDriver {
    let mut b = StreamsBuilder::new();
    b.stream("clicks", strings())
        .group_by_key(grouped())
        .windowed_by_sessions(windows)
        .count(Materialized::as_("sessions"))
        .to_stream()
        .to(
            "out",
            Produced::with(Serdes::session_windowed(Serdes::string()), Serdes::nullable(Serdes::i64())),
        );
    TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("app")).unwrap()
}

#[test]
fn a_record_between_two_sessions_merges_them() {
    let d = session_counts(SessionWindows::of_inactivity_gap_and_grace(ms(5_000), ms(60_000)));
    let input = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
    for (key, t) in [("a", 1_000), ("a", 20_000), ("b", 20_500), ("a", 10_000), ("a", 15_000)] {
        input.pipe_input_with_timestamp(s(key), s("x"), t).unwrap();
    }
    let w = Window::new;
    assert_eq!(
        session_updates(&d),
        vec![
            (s("a"), w(1_000, 1_000), Some(1)),
            (s("a"), w(20_000, 20_000), Some(1)),
            (s("b"), w(20_500, 20_500), Some(1)),
            (s("a"), w(10_000, 10_000), Some(1)),
            // 15s is within 5s of both 10s and 20s: one session of three.
            (s("a"), w(10_000, 10_000), None),
            (s("a"), w(20_000, 20_000), None),
            (s("a"), w(10_000, 20_000), Some(3)),
        ]
    );
    let store = d.get_session_store("sessions", Serdes::string(), Serdes::i64()).unwrap();
    assert_eq!(store.fetch(&s("a")).unwrap(), vec![(w(1_000, 1_000), 1), (w(10_000, 20_000), 3)]);
    assert_eq!(store.fetch(&s("b")).unwrap(), vec![(w(20_500, 20_500), 1)]);
}

#[test]
fn a_record_after_its_sessions_close_is_dropped_and_counted() {
    let d = session_counts(SessionWindows::of_inactivity_gap_and_grace(ms(1_000), ms(2_000)));
    let input = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
    input.pipe_input_with_timestamp(s("a"), s("x"), 10_000).unwrap();
    // Close time is 8s: a new session at 8.5s is still open.
    input.pipe_input_with_timestamp(s("a"), s("x"), 8_500).unwrap();
    // A record at 7s would only form a session ending at 7s: late.
    input.pipe_input_with_timestamp(s("a"), s("x"), 7_000).unwrap();
    // ...but 7.5s reaches the open session at 8.5s and merges into it.
    input.pipe_input_with_timestamp(s("a"), s("x"), 7_600).unwrap();
    assert_eq!(d.metrics().dropped_records_total, 1);
    let store = d.get_session_store("sessions", Serdes::string(), Serdes::i64()).unwrap();
    let w = Window::new;
    assert_eq!(store.fetch(&s("a")).unwrap(), vec![(w(7_600, 8_500), 2), (w(10_000, 10_000), 1)]);
}

#[test]
fn session_reduce_and_aggregate_merge_aggregates() {
    let mut b = StreamsBuilder::new();
    let grouped_stream = b
        .stream::<S, i64>("amounts", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()));
    let windows = SessionWindows::of_inactivity_gap_with_no_grace(ms(20));
    grouped_stream.windowed_by_sessions(windows).reduce(|a, b| a.max(b), Materialized::as_("max"));
    grouped_stream.windowed_by_sessions(windows).aggregate(
        String::new,
        |_k, v, agg| format!("{agg}{v};"),
        |_k, a, b| format!("{a}{b}"),
        Materialized::as_("lists").with_value_serde(Serdes::string()),
    );
    let d = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("app")).unwrap();
    let input = d.create_input_topic("amounts", Serdes::string(), Serdes::i64());
    // 100 and 130 are 30 apart: two sessions, until 115 bridges them.
    for (v, t) in [(5, 100), (9, 130), (1, 115)] {
        input.pipe_input_with_timestamp(s("k"), v, t).unwrap();
    }
    let w = Window::new;
    let max = d.get_session_store("max", Serdes::string(), Serdes::i64()).unwrap();
    assert_eq!(max.fetch(&s("k")).unwrap(), vec![(w(100, 130), 9)]);
    let lists = d.get_session_store("lists", Serdes::string(), Serdes::string()).unwrap();
    assert_eq!(lists.fetch(&s("k")).unwrap(), vec![(w(100, 130), s("5;9;1;"))]);
}

#[test]
fn session_store_of_a_longer_key_does_not_leak_into_a_shorter_one() {
    let d = session_counts(SessionWindows::of_inactivity_gap_with_no_grace(ms(1_000)));
    let input = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
    input.pipe_input_with_timestamp(s("ab"), s("x"), 100).unwrap();
    input.pipe_input_with_timestamp(s("a"), s("x"), 200).unwrap();
    let store = d.get_session_store("sessions", Serdes::string(), Serdes::i64()).unwrap();
    assert_eq!(store.fetch(&s("a")).unwrap(), vec![(Window::new(200, 200), 1)]);
    assert_eq!(store.fetch(&s("ab")).unwrap(), vec![(Window::new(100, 100), 1)]);
}

mod sliding {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use runnel_streams::SlidingWindows;

    use super::*;

    fn sliding_counts(windows: SlidingWindows) -> TopologyTestDriver {
        let mut b = StreamsBuilder::new();
        b.stream("clicks", strings())
            .group_by_key(grouped())
            .windowed_by_sliding(windows)
            .count(Materialized::as_("sliding"))
            .to_stream()
            .to(
                "out",
                Produced::with(
                    Serdes::time_windowed(Serdes::string(), ms(windows.time_difference_ms() as u64)),
                    Serdes::nullable(Serdes::i64()),
                ),
            );
        TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("app")).unwrap()
    }

    /// Kafka's sliding-window content, computed from all the records: each
    /// record's left window `[t - d, t]` (`[0, d]` for `t < d`) and, when a
    /// later record is within `d + 1`, its right window `[t + 1, t + 1 + d]`;
    /// each window counts the records in it.
    fn expected(times: &[i64], d: i64) -> BTreeMap<i64, i64> {
        let mut starts = std::collections::BTreeSet::new();
        for &t in times {
            starts.insert((t - d).max(0));
            if times.iter().any(|&u| u > t && u <= t + 1 + d) {
                starts.insert(t + 1);
            }
        }
        starts
            .into_iter()
            .map(|s| (s, times.iter().filter(|&&u| s <= u && u <= s + d).count() as i64))
            .collect()
    }

    fn stored(d: &TopologyTestDriver) -> BTreeMap<i64, i64> {
        let store = d.get_window_store("sliding", Serdes::string(), Serdes::i64()).unwrap();
        store.fetch_range(&s("k"), 0, i64::MAX / 2).unwrap().into_iter().collect()
    }

    #[test]
    fn in_order_records_create_left_and_right_windows() {
        let d = sliding_counts(SlidingWindows::of_time_difference_with_no_grace(ms(10)));
        let input = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
        for t in [20, 25, 33] {
            input.pipe_input_with_timestamp(s("k"), s("x"), t).unwrap();
        }
        assert_eq!(stored(&d), BTreeMap::from([(10, 1), (15, 2), (21, 1), (23, 2), (26, 1)]));
        // Every update went downstream, keyed by [start, start + d].
        let updates: Vec<(i64, i64, Option<i64>)> = d
            .create_output_topic(
                "out",
                Serdes::time_windowed(Serdes::string(), ms(10)),
                Serdes::nullable(Serdes::i64()),
            )
            .read_key_values_to_list()
            .unwrap()
            .into_iter()
            .map(|(w, c)| (w.window.start, w.window.end, c))
            .collect();
        assert_eq!(
            updates,
            vec![
                (10, 20, Some(1)),
                (21, 31, Some(1)),
                (15, 25, Some(2)),
                (26, 36, Some(1)),
                (23, 33, Some(2))
            ]
        );
    }

    #[test]
    fn a_record_later_than_its_last_window_is_dropped() {
        let d = sliding_counts(SlidingWindows::of_time_difference_and_grace(ms(10), ms(5)));
        let input = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
        input.pipe_input_with_timestamp(s("k"), s("x"), 100).unwrap();
        // Close time 95: the last window a record at 83 could be in is
        // [84, 94], closed, so it is dropped.
        input.pipe_input_with_timestamp(s("k"), s("x"), 83).unwrap();
        assert_eq!(d.metrics().dropped_records_total, 1);
        // 90 joins [90, 100] and gets its right window [91, 101]; its own
        // left window [80, 90] is closed and not created.
        input.pipe_input_with_timestamp(s("k"), s("x"), 90).unwrap();
        assert_eq!(d.metrics().dropped_records_total, 1);
        assert_eq!(stored(&d), BTreeMap::from([(90, 2), (91, 1)]));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Records in any order (no grace limit): the store holds exactly
        /// the windows, and counts, the definition gives.
        #[test]
        fn any_order_gives_the_defined_windows(times in proptest::collection::vec(0i64..60, 1..25), d in 1i64..12) {
            let driver = sliding_counts(SlidingWindows::of_time_difference_and_grace(ms(d as u64), ms(1_000)));
            let input = driver.create_input_topic("clicks", Serdes::string(), Serdes::string());
            for &t in &times {
                input.pipe_input_with_timestamp(s("k"), s("x"), t).unwrap();
            }
            prop_assert_eq!(stored(&driver), expected(&times, d));
        }
    }
}
