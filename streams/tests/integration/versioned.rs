//! Versioned tables (issue 16, point 2; Kafka's KIP-889/914): a source
//! table with `Materialized::with_versioning` answers a stream-table join
//! as of each stream record's timestamp, ignores out-of-order updates
//! downstream, and forgets versions older than its history retention.

use std::time::Duration;

use runnel_streams::{
    Consumed, Grouped, Joined, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig, StreamsError,
    TopologyTestDriver,
};

fn s(v: &str) -> String {
    v.to_string()
}

/// `(topic, key, value, time)`: "T" the table (None deletes), "S" the
/// stream.
type Step = (&'static str, &'static str, Option<&'static str>, i64);

/// A stream left-joined with the `prices` table, versioned or not;
/// returns the joined stream records and the table's own updates.
/// Joined records and table updates: key, value, timestamp.
type Outputs = (Vec<(String, String, i64)>, Vec<(String, Option<String>, i64)>);

fn run(versioned: bool, steps: &[Step]) -> Outputs {
    let mut b = StreamsBuilder::new();
    let mut m = Materialized::as_("prices");
    if versioned {
        m = m.with_versioning(Duration::from_secs(60));
    }
    let prices = b.table::<String, String>("prices", Consumed::with(Serdes::string(), Serdes::string()), m);
    prices
        .to_stream()
        .to("price-updates", Produced::with(Serdes::string(), Serdes::nullable(Serdes::string())));
    b.stream::<String, String>("orders", Consumed::with(Serdes::string(), Serdes::string()))
        .left_join_table(
            &prices,
            |order, price: Option<&String>| format!("{order}@{}", price.map_or("none", String::as_str)),
            Joined::with(Serdes::string(), Serdes::string(), Serdes::string()),
        )
        .to("priced", Produced::with(Serdes::string(), Serdes::string()));
    let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("versioned")).unwrap();
    let table = driver.create_input_topic("prices", Serdes::string(), Serdes::nullable(Serdes::string()));
    let stream = driver.create_input_topic("orders", Serdes::string(), Serdes::string());
    for &(topic, key, value, time) in steps {
        if topic == "T" {
            table.pipe_input_with_timestamp(s(key), value.map(s), time).unwrap();
        } else {
            stream.pipe_input_with_timestamp(s(key), s(value.unwrap()), time).unwrap();
        }
    }
    let priced = driver.create_output_topic("priced", Serdes::string(), Serdes::string());
    let updates =
        driver.create_output_topic("price-updates", Serdes::string(), Serdes::nullable(Serdes::string()));
    (
        priced.read_records_to_list().unwrap().into_iter().map(|r| (r.key, r.value, r.timestamp)).collect(),
        updates.read_records_to_list().unwrap().into_iter().map(|r| (r.key, r.value, r.timestamp)).collect(),
    )
}

const STEPS: &[Step] = &[
    ("T", "tv", Some("100"), 10_000),
    ("T", "tv", Some("120"), 20_000),
    ("S", "tv", Some("o1"), 15_000), // arrives after the 20 s price
    ("T", "tv", Some("90"), 5_000),  // out of order: history only
    ("S", "tv", Some("o2"), 7_000),
    ("S", "tv", Some("o3"), 3_000), // before any price
    ("T", "tv", None, 30_000),      // deleted at 30 s
    ("S", "tv", Some("o4"), 25_000),
    ("S", "tv", Some("o5"), 35_000),
];

#[test]
fn a_versioned_table_is_joined_as_of_each_stream_records_time() {
    let (priced, _) = run(true, STEPS);
    assert_eq!(
        priced,
        vec![
            (s("tv"), s("o1@100"), 15_000),
            (s("tv"), s("o2@90"), 7_000),
            (s("tv"), s("o3@none"), 3_000),
            (s("tv"), s("o4@120"), 25_000),
            (s("tv"), s("o5@none"), 35_000),
        ]
    );
    // A plain table answers with whatever it holds when the record comes.
    let (plain, _) = run(false, STEPS);
    assert_eq!(
        plain.iter().map(|(_, v, _)| v.as_str()).collect::<Vec<_>>(),
        ["o1@120", "o2@90", "o3@90", "o4@none", "o5@none"]
    );
}

#[test]
fn an_out_of_order_update_of_a_versioned_table_changes_nothing_downstream() {
    let (_, updates) = run(true, STEPS);
    assert_eq!(
        updates,
        vec![(s("tv"), Some(s("100")), 10_000), (s("tv"), Some(s("120")), 20_000), (s("tv"), None, 30_000)]
    );
    let (_, plain) = run(false, STEPS);
    assert_eq!(plain.len(), 4, "a plain table forwards the out-of-order update too: {plain:?}");
}

#[test]
fn versions_older_than_the_history_retention_are_forgotten() {
    let steps: &[Step] = &[
        ("T", "tv", Some("100"), 10_000),
        ("T", "tv", Some("120"), 20_000),
        ("T", "tv", Some("130"), 200_000), // stream time 200 s: history reaches back to 140 s
        ("T", "tv", Some("99"), 100_000),  // older than the history: not stored
        ("S", "tv", Some("late"), 15_000),
        ("S", "tv", Some("edge"), 140_000), // still answered: 120 was valid then (not the expired 99)
        ("S", "tv", Some("now"), 200_000),
    ];
    let (priced, _) = run(true, steps);
    assert_eq!(
        priced.iter().map(|(_, v, _)| v.as_str()).collect::<Vec<_>>(),
        ["late@none", "edge@120", "now@130"]
    );
}

#[test]
fn only_a_source_table_can_be_versioned() {
    let mut b = StreamsBuilder::new();
    b.stream::<String, String>("clicks", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::as_("counts").with_versioning(Duration::from_secs(60)));
    let err = b.build().unwrap_err();
    assert!(matches!(err, StreamsError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("versioned store can only materialize a source table"), "{err}");
}

/// KIP-923: with a grace period, a stream record waits until stream time
/// passes its timestamp plus grace, so a table update that arrives late
/// (but within grace) still counts; a record later than grace is joined
/// at once.
#[test]
fn a_grace_period_lets_late_table_updates_count_for_earlier_stream_records() {
    let run = |grace: Option<Duration>| {
        let mut b = StreamsBuilder::new();
        let m = Materialized::as_("prices").with_versioning(Duration::from_secs(300));
        let prices =
            b.table::<String, String>("prices", Consumed::with(Serdes::string(), Serdes::string()), m);
        let mut joined = Joined::with(Serdes::string(), Serdes::string(), Serdes::string());
        if let Some(grace) = grace {
            joined = joined.with_grace_period(grace);
        }
        b.stream::<String, String>("orders", Consumed::with(Serdes::string(), Serdes::string()))
            .left_join_table(
                &prices,
                |order, price: Option<&String>| format!("{order}@{}", price.map_or("none", String::as_str)),
                joined,
            )
            .to("priced", Produced::with(Serdes::string(), Serdes::string()));
        let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("grace")).unwrap();
        let table = driver.create_input_topic("prices", Serdes::string(), Serdes::string());
        let stream = driver.create_input_topic("orders", Serdes::string(), Serdes::string());
        let priced = driver.create_output_topic("priced", Serdes::string(), Serdes::string());
        let mut after = Vec::new();
        for &(topic, value, time) in &[
            ("T", "100", 10_000),
            ("S", "o1", 15_000),
            ("T", "120", 12_000), // late for o1, within its grace
            ("S", "o2", 26_000),  // stream time 26 s: o1's grace (10 s) has passed
            ("S", "o3", 1_000),   // later than grace already: joined at once
            ("T", "150", 30_000),
            ("S", "o4", 40_000), // o2's grace has passed
        ] {
            if topic == "T" {
                table.pipe_input_with_timestamp(s("tv"), s(value), time).unwrap();
            } else {
                stream.pipe_input_with_timestamp(s("tv"), s(value), time).unwrap();
            }
            after.push(
                priced
                    .read_records_to_list()
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.value, r.timestamp))
                    .collect::<Vec<_>>(),
            );
        }
        after
    };
    let with_grace = run(Some(Duration::from_secs(10)));
    let expect = |v: &[(&str, i64)]| v.iter().map(|(s, t)| (s.to_string(), *t)).collect::<Vec<_>>();
    assert_eq!(
        with_grace,
        vec![
            vec![],
            vec![],
            vec![],
            expect(&[("o1@120", 15_000)]),
            expect(&[("o3@none", 1_000)]),
            vec![],
            expect(&[("o2@120", 26_000)]),
        ]
    );
    let without: Vec<_> = run(None).into_iter().flatten().map(|(v, _)| v).collect();
    assert_eq!(without, ["o1@100", "o2@120", "o3@none", "o4@150"]);

    let mut b = StreamsBuilder::new();
    let plain = b.table::<String, String>(
        "prices",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::new(),
    );
    b.stream::<String, String>("orders", Consumed::with(Serdes::string(), Serdes::string())).join_table(
        &plain,
        |o, p| format!("{o}{p}"),
        Joined::with(Serdes::string(), Serdes::string(), Serdes::string())
            .with_grace_period(Duration::from_secs(1)),
    );
    let err = b.build().unwrap_err();
    assert!(err.to_string().contains("needs a versioned table"), "{err}");

    // A grace period longer than the history could never find a version.
    let mut b = StreamsBuilder::new();
    let m = Materialized::as_("p").with_versioning(Duration::from_secs(5));
    let short = b.table::<String, String>("prices", Consumed::with(Serdes::string(), Serdes::string()), m);
    b.stream::<String, String>("orders", Consumed::with(Serdes::string(), Serdes::string())).join_table(
        &short,
        |o, p| format!("{o}{p}"),
        Joined::with(Serdes::string(), Serdes::string(), Serdes::string())
            .with_grace_period(Duration::from_secs(10)),
    );
    let err = b.build().unwrap_err();
    assert!(err.to_string().contains("longer than the table's history retention"), "{err}");
}

/// A record held back by the grace period keeps its headers.
#[test]
fn a_record_held_for_its_grace_period_keeps_its_headers() {
    let mut b = StreamsBuilder::new();
    let m = Materialized::as_("prices").with_versioning(Duration::from_secs(300));
    let prices = b.table::<String, String>("prices", Consumed::with(Serdes::string(), Serdes::string()), m);
    b.stream::<String, String>("orders", Consumed::with(Serdes::string(), Serdes::string()))
        .join_table(
            &prices,
            |order, price| format!("{order}@{price}"),
            Joined::with(Serdes::string(), Serdes::string(), Serdes::string())
                .with_grace_period(Duration::from_secs(5)),
        )
        .to("priced", Produced::with(Serdes::string(), Serdes::string()));
    let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("headers")).unwrap();
    let table = driver.create_input_topic("prices", Serdes::string(), Serdes::string());
    let stream = driver.create_input_topic("orders", Serdes::string(), Serdes::string());
    let priced = driver.create_output_topic("priced", Serdes::string(), Serdes::string());
    table.pipe_input_with_timestamp(s("tv"), s("100"), 1_000).unwrap();
    let mut order = runnel_streams::Record::new(s("tv"), s("o1"), 2_000);
    order.headers.push((s("trace"), b"t-42".to_vec()));
    order.headers.push((s("empty"), Vec::new()));
    stream.pipe_record(order).unwrap();
    assert!(priced.is_empty(), "held for its grace period");
    // The buffer is checked when stream records arrive: one at 8 s
    // releases o1 (it waits itself).
    stream.pipe_input_with_timestamp(s("tv"), s("o2"), 8_000).unwrap();
    let out = priced.read_records_to_list().unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].value, "o1@100");
    assert_eq!(out[0].headers, vec![(s("trace"), b"t-42".to_vec()), (s("empty"), Vec::new())]);
}
