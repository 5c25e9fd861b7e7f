//! Every DSL operator run through the `TopologyTestDriver`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use runnel_streams::{
    Branched, Consumed, Forwarder, Named, Processor, ProcessorContext, Produced, Record, Repartitioned,
    Serdes, StreamsBuilder, StreamsConfig, StreamsError, TestInputTopic, TestOutputTopic, Topology,
    TopologyTestDriver,
};

type S = String;

fn s(x: &str) -> String {
    x.to_string()
}

fn strings() -> Consumed<S, S> {
    Consumed::with(Serdes::string(), Serdes::string())
}

fn out_strings() -> Produced<S, S> {
    Produced::with(Serdes::string(), Serdes::string())
}

fn driver(topology: Topology) -> TopologyTestDriver {
    TopologyTestDriver::new(topology, StreamsConfig::new("app")).unwrap()
}

fn string_input(driver: &TopologyTestDriver, topic: &str) -> TestInputTopic<S, S> {
    driver.create_input_topic(topic, Serdes::string(), Serdes::string())
}

fn string_output(driver: &TopologyTestDriver, topic: &str) -> TestOutputTopic<S, S> {
    driver.create_output_topic(topic, Serdes::string(), Serdes::string())
}

#[test]
fn filter_keeps_matching_records_in_order_with_timestamps() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings()).filter(|k, v| k.starts_with('a') && !v.is_empty()).to("out", out_strings());
    let d = driver(b.build().unwrap());
    let (input, output) = (string_input(&d, "in"), string_output(&d, "out"));

    input.pipe_input_with_timestamp(s("a1"), s("x"), 10).unwrap();
    input.pipe_input_with_timestamp(s("b1"), s("y"), 20).unwrap();
    input.pipe_input_with_timestamp(s("a2"), s(""), 30).unwrap();
    input.pipe_input_with_timestamp(s("a3"), s("z"), 40).unwrap();

    assert_eq!(output.queue_size(), 2);
    let first = output.read_record().unwrap();
    assert_eq!((first.key, first.value, first.timestamp), (s("a1"), s("x"), 10));
    let second = output.read_record().unwrap();
    assert_eq!((second.key, second.value, second.timestamp), (s("a3"), s("z"), 40));
    assert!(output.is_empty());
    assert!(matches!(output.read_record(), Err(StreamsError::EmptyTopic { .. })));
}

#[test]
fn filter_not_drops_matching_records() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings()).filter_not(|_, v| v == "spam").to("out", out_strings());
    let d = driver(b.build().unwrap());
    let (input, output) = (string_input(&d, "in"), string_output(&d, "out"));
    input.pipe_key_value_list([(s("1"), s("ham")), (s("2"), s("spam")), (s("3"), s("eggs"))]).unwrap();
    assert_eq!(output.read_values_to_list().unwrap(), vec![s("ham"), s("eggs")]);
}

#[test]
fn map_changes_key_and_value_types_and_keeps_timestamp_and_headers() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings())
        .map(|k, v| (v.len() as i64, format!("{k}:{v}")))
        .to("out", Produced::with(Serdes::i64(), Serdes::string()));
    let d = driver(b.build().unwrap());
    let input = string_input(&d, "in");
    let output = d.create_output_topic("out", Serdes::i64(), Serdes::string());

    let mut record = Record::new(s("k"), s("hello"), 77);
    record.headers = vec![(s("trace"), b"t-1".to_vec()), (s("empty"), Vec::new())];
    input.pipe_record(record).unwrap();

    let out = output.read_record().unwrap();
    assert_eq!(out.key, 5);
    assert_eq!(out.value, "k:hello");
    assert_eq!(out.timestamp, 77);
    assert_eq!(out.headers, vec![(s("trace"), b"t-1".to_vec()), (s("empty"), Vec::new())]);
}

#[test]
fn map_values_and_map_values_with_key() {
    let mut b = StreamsBuilder::new();
    let stream = b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()));
    stream.map_values(|n| n * 10).to("times-ten", Produced::with(Serdes::string(), Serdes::i64()));
    stream.map_values_with_key(|k, n| format!("{k}={n}")).to("labelled", out_strings());
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("in", Serdes::string(), Serdes::i64());
    let times_ten = d.create_output_topic("times-ten", Serdes::string(), Serdes::i64());
    let labelled = string_output(&d, "labelled");

    input.pipe_key_value_list([(s("a"), 1), (s("b"), 2)]).unwrap();
    assert_eq!(times_ten.read_key_values_to_list().unwrap(), vec![(s("a"), 10), (s("b"), 20)]);
    assert_eq!(labelled.read_key_values_to_list().unwrap(), vec![(s("a"), s("a=1")), (s("b"), s("b=2"))]);
}

#[test]
fn flat_map_emits_each_pair_with_the_input_timestamp_and_headers() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings())
        .flat_map(|k, v| {
            v.split(',').map(|part| (format!("{k}-{part}"), part.to_uppercase())).collect::<Vec<_>>()
        })
        .to("out", out_strings());
    let d = driver(b.build().unwrap());
    let (input, output) = (string_input(&d, "in"), string_output(&d, "out"));

    let mut record = Record::new(s("k"), s("a,b,c"), 5);
    record.headers = vec![(s("h"), vec![1])];
    input.pipe_record(record).unwrap();
    input.pipe_input_with_timestamp(s("none"), s(""), 6).unwrap(); // one empty part

    let records = output.read_records_to_list().unwrap();
    let summary: Vec<_> = records.iter().map(|r| (r.key.as_str(), r.value.as_str(), r.timestamp)).collect();
    assert_eq!(summary, vec![("k-a", "A", 5), ("k-b", "B", 5), ("k-c", "C", 5), ("none-", "", 6)]);
    assert!(records[..3].iter().all(|r| r.headers == vec![(s("h"), vec![1])]));
}

#[test]
fn flat_map_values_keeps_the_key_and_may_emit_nothing() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings())
        .flat_map_values(|line| line.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .to("words", out_strings());
    let d = driver(b.build().unwrap());
    let (input, output) = (string_input(&d, "in"), string_output(&d, "words"));
    input.pipe_input(s("l1"), s("to be")).unwrap();
    input.pipe_input(s("l2"), s("   ")).unwrap();
    input.pipe_input(s("l3"), s("or")).unwrap();
    assert_eq!(
        output.read_key_values_to_list().unwrap(),
        vec![(s("l1"), s("to")), (s("l1"), s("be")), (s("l3"), s("or"))]
    );
}

#[test]
fn select_key_replaces_the_key_only() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings())
        .select_key(|_, v| v.len() as u32)
        .to("out", Produced::with(Serdes::u32(), Serdes::string()));
    let d = driver(b.build().unwrap());
    let input = string_input(&d, "in");
    let output = d.create_output_topic("out", Serdes::u32(), Serdes::string());
    input.pipe_input_with_timestamp(s("old"), s("four"), 9).unwrap();
    let out = output.read_record().unwrap();
    assert_eq!((out.key, out.value.as_str(), out.timestamp), (4, "four", 9));
}

#[test]
fn peek_sees_every_record_and_passes_it_on() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut b = StreamsBuilder::new();
    let log = Arc::clone(&seen);
    b.stream("in", strings())
        .peek(move |k, v| log.lock().unwrap().push(format!("{k}/{v}")))
        .to("out", out_strings());
    let d = driver(b.build().unwrap());
    let (input, output) = (string_input(&d, "in"), string_output(&d, "out"));
    input.pipe_key_value_list([(s("a"), s("1")), (s("b"), s("2"))]).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![s("a/1"), s("b/2")]);
    assert_eq!(output.read_key_values_to_list().unwrap(), vec![(s("a"), s("1")), (s("b"), s("2"))]);
}

#[test]
fn foreach_is_terminal_and_sees_every_record() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut b = StreamsBuilder::new();
    let log = Arc::clone(&seen);
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i32()))
        .foreach(move |k, v| log.lock().unwrap().push((k.clone(), *v)));
    let topology = b.build().unwrap();
    assert_eq!(
        topology.describe().to_string(),
        "Topologies:\n   Sub-topology: 0\n    Source: KSTREAM-SOURCE-0000000000 (topics: [in])\n      \
         --> KSTREAM-FOREACH-0000000001\n    Processor: KSTREAM-FOREACH-0000000001 (stores: [])\n      \
         --> none\n      <-- KSTREAM-SOURCE-0000000000\n\n"
    );
    let d = driver(topology);
    let input = d.create_input_topic("in", Serdes::string(), Serdes::i32());
    input.pipe_input(s("x"), -3).unwrap();
    input.pipe_input(s("y"), 7).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![(s("x"), -3), (s("y"), 7)]);
    assert!(d.produced_topic_names().is_empty());
}

#[test]
fn split_sends_each_record_to_the_first_matching_branch_or_the_default() {
    let mut b = StreamsBuilder::new();
    let branches = b
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .named(Named::as_("num-"))
        .split()
        .branch(|_, n| *n < 0, Branched::as_("negative"))
        .branch(|_, n| *n < 10, Branched::as_("small")) // not reached by negatives
        .default_branch(Branched::as_("large"));
    let mut names: Vec<_> = branches.keys().cloned().collect();
    names.sort();
    assert_eq!(names, vec!["num-large", "num-negative", "num-small"]);
    for (name, stream) in &branches {
        stream.to(format!("out-{name}"), Produced::with(Serdes::string(), Serdes::i64()));
    }
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("in", Serdes::string(), Serdes::i64());
    let read = |topic: &str| {
        d.create_output_topic(topic, Serdes::string(), Serdes::i64()).read_values_to_list().unwrap()
    };
    input.pipe_key_value_list([(s("a"), -5), (s("b"), 3), (s("c"), 100), (s("d"), -1), (s("e"), 9)]).unwrap();
    assert_eq!(read("out-num-negative"), vec![-5, -1]);
    assert_eq!(read("out-num-small"), vec![3, 9]);
    assert_eq!(read("out-num-large"), vec![100]);
}

#[test]
fn split_without_default_drops_unmatched_records_and_numbers_unnamed_branches() {
    let mut b = StreamsBuilder::new();
    let branches = b
        .stream("in", strings())
        .split()
        .branch(|_, v| v == "x", Branched::default())
        .branch(|_, v| v == "y", Branched::default())
        .no_default_branch();
    let prefix = "KSTREAM-BRANCH-0000000001-";
    branches[&format!("{prefix}1")].to("xs", out_strings());
    branches[&format!("{prefix}2")].to("ys", out_strings());
    let d = driver(b.build().unwrap());
    let input = string_input(&d, "in");
    input.pipe_key_value_list([(s("1"), s("x")), (s("2"), s("z")), (s("3"), s("y"))]).unwrap();
    assert_eq!(string_output(&d, "xs").read_keys_for_test(), vec![s("1")]);
    assert_eq!(string_output(&d, "ys").read_keys_for_test(), vec![s("3")]);
    assert_eq!(d.produced_topic_names(), vec![s("xs"), s("ys")]);
}

trait ReadKeys {
    fn read_keys_for_test(&self) -> Vec<String>;
}

impl ReadKeys for TestOutputTopic<S, S> {
    fn read_keys_for_test(&self) -> Vec<String> {
        self.read_key_values_to_list().unwrap().into_iter().map(|(k, _)| k).collect()
    }
}

#[test]
fn merge_interleaves_two_streams_in_processing_order() {
    let mut b = StreamsBuilder::new();
    let left = b.stream("left", strings()).map_values(|v| format!("L{v}"));
    let right = b.stream("right", strings()).map_values(|v| format!("R{v}"));
    left.merge(&right).to("out", out_strings());
    let d = driver(b.build().unwrap());
    let (l, r, out) = (string_input(&d, "left"), string_input(&d, "right"), string_output(&d, "out"));
    l.pipe_input(s("k"), s("1")).unwrap();
    r.pipe_input(s("k"), s("2")).unwrap();
    l.pipe_input(s("k"), s("3")).unwrap();
    assert_eq!(out.read_values_to_list().unwrap(), vec![s("L1"), s("R2"), s("L3")]);
}

#[test]
fn merge_of_two_branches_of_one_stream_shares_the_downstream_nodes() {
    let counter = Arc::new(Mutex::new(0));
    let mut b = StreamsBuilder::new();
    let source = b.stream("in", strings());
    let upper = source.map_values(|v| v.to_uppercase());
    let lower = source.map_values(|v| v.to_lowercase());
    let c = Arc::clone(&counter);
    upper
        .merge(&lower)
        .process(move |out| Counting { count: 0, shared: Arc::clone(&c), out })
        .to("out", Produced::with(Serdes::string(), Serdes::u64()));
    let d = driver(b.build().unwrap());
    string_input(&d, "in").pipe_input(s("k"), s("MiXeD")).unwrap();
    let out = d.create_output_topic("out", Serdes::string(), Serdes::u64());
    // One processor instance behind both parents: its count runs 1, 2.
    assert_eq!(out.read_key_values_to_list().unwrap(), vec![(s("MIXED"), 1), (s("mixed"), 2)]);
    assert_eq!(*counter.lock().unwrap(), 2);
}

/// Emits (value, number of records seen by this instance).
struct Counting {
    count: u64,
    shared: Arc<Mutex<u64>>,
    out: Forwarder<String, u64>,
}

impl Processor<String, String> for Counting {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<String, String>,
    ) -> Result<(), StreamsError> {
        self.count += 1;
        *self.shared.lock().unwrap() += 1;
        let value = record.value.clone();
        self.out.forward(ctx, record.with_key_value(value, self.count))
    }
}

#[test]
fn using_a_stream_twice_fans_out_a_copy_to_each_child() {
    let mut b = StreamsBuilder::new();
    let source = b.stream("in", strings());
    source.to("copy-a", out_strings());
    source.filter(|_, v| v != "skip").to("copy-b", out_strings());
    let d = driver(b.build().unwrap());
    let input = string_input(&d, "in");
    input.pipe_key_value_list([(s("1"), s("keep")), (s("2"), s("skip"))]).unwrap();
    assert_eq!(string_output(&d, "copy-a").read_values_to_list().unwrap(), vec![s("keep"), s("skip")]);
    assert_eq!(string_output(&d, "copy-b").read_values_to_list().unwrap(), vec![s("keep")]);
}

#[test]
fn to_dynamic_picks_the_topic_per_record() {
    let mut b = StreamsBuilder::new();
    b.stream("events", strings())
        .to_dynamic(|_, v: &String| if v.starts_with("err") { "errors" } else { "events-ok" }, out_strings());
    let topology = b.build().unwrap();
    assert!(topology.describe().to_string().contains("Sink: KSTREAM-SINK-0000000001 (extractor class: "));
    let d = driver(topology);
    string_input(&d, "events")
        .pipe_key_value_list([(s("1"), s("ok")), (s("2"), s("error: disk")), (s("3"), s("ok again"))])
        .unwrap();
    assert_eq!(d.produced_topic_names(), vec![s("errors"), s("events-ok")]);
    assert_eq!(string_output(&d, "errors").read_keys_for_test(), vec![s("2")]);
    assert_eq!(string_output(&d, "events-ok").read_keys_for_test(), vec![s("1"), s("3")]);
}

#[test]
fn to_dynamic_may_build_topic_names_from_the_record() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings()).to_dynamic(|k: &String, _: &String| format!("user-{k}"), out_strings());
    let d = driver(b.build().unwrap());
    string_input(&d, "in").pipe_key_value_list([(s("a"), s("1")), (s("b"), s("2"))]).unwrap();
    assert_eq!(d.produced_topic_names(), vec![s("user-a"), s("user-b")]);
}

fn rekeying_topology() -> Topology {
    let mut b = StreamsBuilder::new();
    b.stream("clicks", strings())
        .select_key(|_user, page| page.clone())
        .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).name("by-page").partitions(3))
        .map_values(|v| v.to_uppercase())
        .to("out", out_strings());
    b.build().unwrap()
}

#[test]
fn repartition_after_select_key_delivers_records_with_the_new_key() {
    let d = driver(rekeying_topology());
    let (input, output) = (string_input(&d, "clicks"), string_output(&d, "out"));
    let mut record = Record::new(s("u1"), s("/docs"), 1_000);
    record.headers = vec![(s("src"), b"web".to_vec())];
    input.pipe_record(record).unwrap();
    input.pipe_input_with_timestamp(s("u2"), s("/blog"), 2_000).unwrap();

    let first = output.read_record().unwrap();
    assert_eq!((first.key.as_str(), first.value.as_str(), first.timestamp), ("/docs", "/DOCS", 1_000));
    assert_eq!(first.headers, vec![(s("src"), b"web".to_vec())]);
    assert_eq!(output.read_key_value().unwrap(), (s("/blog"), s("/BLOG")));
    assert!(output.is_empty());

    // The internal topic is a real topic too, with the application id prefix.
    let internal = string_output(&d, "app-by-page-repartition");
    assert_eq!(
        internal.read_key_values_to_list().unwrap(),
        vec![(s("/docs"), s("/docs")), (s("/blog"), s("/blog"))]
    );
    assert!(matches!(
        string_input(&d, "by-page-repartition").pipe_input(s("k"), s("v")),
        Err(StreamsError::UnknownTopic { .. })
    ));
}

#[test]
fn repartition_splits_the_topology_into_two_subtopologies() {
    let topology = rekeying_topology();
    let expected = "\
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [clicks])
      --> KSTREAM-KEY-SELECT-0000000001
    Processor: KSTREAM-KEY-SELECT-0000000001 (stores: [])
      --> by-page-repartition-sink
      <-- KSTREAM-SOURCE-0000000000
    Sink: by-page-repartition-sink (topic: by-page-repartition)
      <-- KSTREAM-KEY-SELECT-0000000001

  Sub-topology: 1
    Source: by-page-repartition-source (topics: [by-page-repartition])
      --> KSTREAM-MAPVALUES-0000000002
    Processor: KSTREAM-MAPVALUES-0000000002 (stores: [])
      --> KSTREAM-SINK-0000000003
      <-- by-page-repartition-source
    Sink: KSTREAM-SINK-0000000003 (topic: out)
      <-- KSTREAM-MAPVALUES-0000000002

";
    assert_eq!(topology.describe().to_string(), expected);
    let repartition = topology.repartition_topics("my-app");
    assert_eq!(repartition.len(), 1);
    assert_eq!(repartition[0].name, "my-app-by-page-repartition");
    assert_eq!(repartition[0].partitions, Some(3));
    assert_eq!(topology.source_topics("my-app"), vec![s("clicks"), s("my-app-by-page-repartition")]);
}

#[test]
fn unnamed_repartition_gets_a_generated_topic_name() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings())
        .map(|k, v| (v, k))
        .repartition(Repartitioned::with(Serdes::string(), Serdes::string()))
        .to("out", out_strings());
    let topology = b.build().unwrap();
    let topics = topology.repartition_topics("a");
    assert_eq!(topics[0].name, "a-KSTREAM-REPARTITION-0000000002-repartition");
    assert_eq!(topics[0].partitions, None);
    let description = topology.describe();
    let sub1 = &description.subtopologies()[1];
    assert_eq!(sub1.nodes()[0].name(), "KSTREAM-SOURCE-0000000004");
    let d = driver(topology);
    string_input(&d, "in").pipe_input(s("k"), s("v")).unwrap();
    assert_eq!(string_output(&d, "out").read_key_value().unwrap(), (s("v"), s("k")));
}

#[test]
fn describe_orders_nodes_by_downstream_size_then_name() {
    let mut b = StreamsBuilder::new();
    let source = b.stream(["a", "b"], strings());
    source.filter(|_, _| true).named(Named::as_("z-sink")).to("big", out_strings());
    source.named(Named::as_("a-sink")).to("small", out_strings());
    let text = b.build().unwrap().describe().to_string();
    let expected = "\
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [a, b])
      --> KSTREAM-FILTER-0000000001, a-sink
    Processor: KSTREAM-FILTER-0000000001 (stores: [])
      --> z-sink
      <-- KSTREAM-SOURCE-0000000000
    Sink: a-sink (topic: small)
      <-- KSTREAM-SOURCE-0000000000
    Sink: z-sink (topic: big)
      <-- KSTREAM-FILTER-0000000001

";
    assert_eq!(text, expected);
}

#[test]
fn a_source_may_read_several_topics() {
    let mut b = StreamsBuilder::new();
    b.stream(vec!["t1", "t2"], strings()).to("out", out_strings());
    let d = driver(b.build().unwrap());
    string_input(&d, "t2").pipe_input(s("from"), s("t2")).unwrap();
    string_input(&d, "t1").pipe_input(s("from"), s("t1")).unwrap();
    assert_eq!(string_output(&d, "out").read_values_to_list().unwrap(), vec![s("t2"), s("t1")]);
}

/// Records what the context says about each record.
struct ContextProbe {
    out: Forwarder<String, String>,
}

impl Processor<String, String> for ContextProbe {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<String, String>,
    ) -> Result<(), StreamsError> {
        let seen = format!(
            "task={} topic={} partition={} offset={} ts={} stream_time={}",
            ctx.task_id(),
            ctx.topic(),
            ctx.partition(),
            ctx.offset(),
            record.timestamp,
            ctx.stream_time()
        );
        self.out.forward(ctx, record.with_value(seen))
    }
}

#[test]
fn context_reports_input_metadata_and_stream_time_is_the_max_timestamp() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings()).process(|out| ContextProbe { out }).to("out", out_strings());
    let d = driver(b.build().unwrap());
    let input = string_input(&d, "in");
    input.pipe_input_with_timestamp(s("a"), s(""), 100).unwrap();
    input.pipe_input_with_timestamp(s("b"), s(""), 50).unwrap(); // out of order
    input.pipe_input_with_timestamp(s("c"), s(""), 120).unwrap();
    assert_eq!(
        string_output(&d, "out").read_values_to_list().unwrap(),
        vec![
            s("task=0_0 topic=in partition=0 offset=0 ts=100 stream_time=100"),
            s("task=0_0 topic=in partition=0 offset=1 ts=50 stream_time=100"),
            s("task=0_0 topic=in partition=0 offset=2 ts=120 stream_time=120"),
        ]
    );
}

#[test]
fn stream_time_is_kept_per_task() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings())
        .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).name("r"))
        .process(|out| ContextProbe { out })
        .to("out", out_strings());
    b.stream("other", strings()).process(|out| ContextProbe { out }).to("other-out", out_strings());
    let d = driver(b.build().unwrap());
    string_input(&d, "other").pipe_input_with_timestamp(s("x"), s(""), 999).unwrap();
    string_input(&d, "in").pipe_input_with_timestamp(s("y"), s(""), 5).unwrap();
    assert_eq!(
        string_output(&d, "out").read_value().unwrap(),
        "task=1_0 topic=app-r-repartition partition=0 offset=0 ts=5 stream_time=5"
    );
    assert_eq!(
        string_output(&d, "other-out").read_value().unwrap(),
        "task=2_0 topic=other partition=0 offset=0 ts=999 stream_time=999"
    );
}

#[test]
fn input_topic_time_starts_at_zero_and_advances_on_request() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings()).to("out", out_strings());
    let d = driver(b.build().unwrap());
    let input = string_input(&d, "in");
    input.pipe_input(s("a"), s("1")).unwrap();
    input.advance_time(Duration::from_secs(2));
    input.pipe_input(s("b"), s("2")).unwrap();
    d.advance_wall_clock_time(Duration::from_millis(1_500)).unwrap();
    assert_eq!(d.wall_clock_time(), 1_500);
    input.pipe_input(s("c"), s("3")).unwrap();
    let timestamps: Vec<i64> =
        string_output(&d, "out").read_records_to_list().unwrap().iter().map(|r| r.timestamp).collect();
    assert_eq!(timestamps, vec![0, 2_000, 2_000]);
}

#[test]
fn tombstones_and_keyless_records_flow_through_nullable_serdes() {
    let mut b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::unit(), Serdes::nullable(Serdes::string())))
        .map_values(|v: Option<String>| v.map(|s| s.len() as i64))
        .to("out", Produced::with(Serdes::unit(), Serdes::nullable(Serdes::i64())));
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("in", Serdes::unit(), Serdes::nullable(Serdes::string()));
    input.pipe_input((), Some(s("four"))).unwrap();
    input.pipe_input((), None).unwrap();
    let out = d.create_output_topic("out", Serdes::unit(), Serdes::nullable(Serdes::i64()));
    assert_eq!(out.read_values_to_list().unwrap(), vec![Some(4), None]);
    // Read raw: the key is null and the second value is a real null, not empty bytes.
    input.pipe_input((), None).unwrap();
    let raw = d.create_output_topic(
        "out",
        Serdes::nullable(Serdes::byte_array()),
        Serdes::nullable(Serdes::byte_array()),
    );
    assert_eq!(raw.read_key_value().unwrap(), (None, None));
}

#[test]
fn null_value_for_a_plain_serde_is_a_deserialization_error() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings()).to("out", out_strings());
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("in", Serdes::string(), Serdes::nullable(Serdes::string()));
    input.pipe_input(s("ok"), Some(s("v"))).unwrap();
    let err = input.pipe_input(s("k"), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot deserialize value of record in-0@1: cannot deserialize string: got null \
         (wrap the serde with Serdes::nullable to accept nulls)"
    );
}

#[test]
fn undecodable_bytes_name_topic_offset_and_part() {
    let mut b = StreamsBuilder::new();
    b.stream("nums", Consumed::with(Serdes::string(), Serdes::i64())).to("out", out_strings_i64());
    let d = driver(b.build().unwrap());
    let input = d.create_input_topic("nums", Serdes::string(), Serdes::i32());
    let err = input.pipe_input(s("k"), 7).unwrap_err();
    assert!(matches!(err, StreamsError::Deserialization { part: "value", offset: 0, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot deserialize value of record nums-0@0: cannot deserialize i64: expected 8 bytes, got 4"
    );
}

fn out_strings_i64() -> Produced<S, i64> {
    Produced::with(Serdes::string(), Serdes::i64())
}

#[test]
fn piping_into_a_topic_no_source_reads_is_an_error() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings()).to("out", out_strings());
    let d = driver(b.build().unwrap());
    let err = string_input(&d, "typo").pipe_input(s("k"), s("v")).unwrap_err();
    assert_eq!(err.to_string(), "no source node reads topic \"typo\" (topics read: [\"in\"])");
}

#[test]
fn negative_timestamps_are_rejected() {
    let mut b = StreamsBuilder::new();
    b.stream("in", strings()).to("out", out_strings());
    let d = driver(b.build().unwrap());
    let err = string_input(&d, "in").pipe_input_with_timestamp(s("k"), s("v"), -1).unwrap_err();
    assert!(matches!(err, StreamsError::InvalidTimestamp { timestamp: -1, .. }), "{err:?}");
    assert!(string_output(&d, "out").is_empty());
}

#[test]
fn json_values_round_trip_through_a_topology() {
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Order {
        id: u32,
        amount: f64,
    }
    let mut b = StreamsBuilder::new();
    b.stream("orders", Consumed::with(Serdes::string(), Serdes::json::<Order>()))
        .map_values(|o| Order { amount: o.amount * 2.0, ..o })
        .to("doubled", Produced::with(Serdes::string(), Serdes::json()));
    let d = driver(b.build().unwrap());
    d.create_input_topic("orders", Serdes::string(), Serdes::json())
        .pipe_input(s("c1"), Order { id: 7, amount: 1.25 })
        .unwrap();
    let raw = string_output(&d, "doubled");
    assert_eq!(raw.read_value().unwrap(), r#"{"id":7,"amount":2.5}"#);
}

mod validation {
    use super::*;

    #[test]
    fn a_topology_without_sources_is_rejected() {
        let err = StreamsBuilder::new().build().unwrap_err();
        assert!(matches!(err, StreamsError::NoSources));
        assert!(err.to_string().contains("no source nodes"));
    }

    #[test]
    fn a_name_used_twice_is_rejected() {
        let mut b = StreamsBuilder::new();
        let source = b.stream("in", strings());
        source.named(Named::as_("step")).filter(|_, _| true);
        source.named(Named::as_("step")).map_values(|v| v);
        let err = b.build().unwrap_err();
        assert_eq!(err.to_string(), "invalid topology: node name \"step\" is used more than once");
    }

    #[test]
    fn empty_topic_names_are_rejected() {
        let mut b = StreamsBuilder::new();
        b.stream("", strings());
        assert!(
            matches!(b.build(), Err(StreamsError::EmptyTopicName { node }) if node == "KSTREAM-SOURCE-0000000000")
        );

        let mut b = StreamsBuilder::new();
        b.stream("in", strings()).to("", out_strings());
        let err = b.build().unwrap_err();
        assert_eq!(err.to_string(), "invalid topology: node KSTREAM-SINK-0000000001 has an empty topic name");

        let mut b = StreamsBuilder::new();
        b.stream("in", strings())
            .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).name(""));
        assert!(matches!(b.build(), Err(StreamsError::EmptyTopicName { .. })));

        let mut b = StreamsBuilder::new();
        b.stream(Vec::<String>::new(), strings());
        assert!(matches!(b.build(), Err(StreamsError::NoTopics { .. })));
    }

    #[test]
    fn a_topic_read_by_two_sources_is_rejected() {
        let mut b = StreamsBuilder::new();
        b.stream("in", strings());
        b.stream(["other", "in"], strings());
        let err = b.build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid topology: topic \"in\" is read by both KSTREAM-SOURCE-0000000000 and KSTREAM-SOURCE-0000000001"
        );
    }

    #[test]
    fn zero_repartition_partitions_are_rejected() {
        let mut b = StreamsBuilder::new();
        b.stream("in", strings())
            .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).partitions(0));
        assert!(matches!(b.build(), Err(StreamsError::ZeroPartitions { .. })));
    }

    #[test]
    fn merging_a_stream_from_another_builder_is_rejected() {
        let mut b1 = StreamsBuilder::new();
        let mut b2 = StreamsBuilder::new();
        let s1 = b1.stream("a", strings());
        let s2 = b2.stream("b", strings());
        s1.merge(&s2).to("out", out_strings());
        let err = b1.build().unwrap_err();
        assert!(
            matches!(err, StreamsError::ForeignStream { ref node } if node == "KSTREAM-MERGE-0000000001")
        );
    }

    #[test]
    fn invalid_application_id_is_rejected_by_the_driver() {
        let mut b = StreamsBuilder::new();
        b.stream("in", strings());
        let err = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("")).unwrap_err();
        assert_eq!(err.to_string(), "invalid config application.id: must not be empty");
    }
}
