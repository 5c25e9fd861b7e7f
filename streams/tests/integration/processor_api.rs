//! The Processor API (issue 16, point 7): `Topology::add_source`,
//! `add_processor`, `add_sink`, `add_state_store`; the `Processor`
//! lifecycle (`init`, `process`, `punctuate`, `close`) with stream-time and
//! wall-clock punctuations; stores reached by name; `KStream::process`
//! mixed with the DSL; `TopologyTestDriver::advance_wall_clock_time`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use runnel_streams::{
    Consumed, Forwarder, KeyValueStoreRef, Processor, ProcessorContext, Produced, Punctuation,
    PunctuationType, Record, Serdes, StoreBuilder, StreamsBuilder, StreamsConfig, StreamsError, Topology,
    TopologyTestDriver,
};

fn s(v: &str) -> String {
    v.to_string()
}

/// Sums values per key in a store; every wall-clock second it emits each
/// sum (and clears the store); counts its lifecycle calls.
struct Summer {
    out: Forwarder<String, i64>,
    sums: Option<KeyValueStoreRef<String, i64>>,
    calls: Arc<Calls>,
}

#[derive(Default)]
struct Calls {
    init: AtomicUsize,
    punctuate: AtomicUsize,
    close: AtomicUsize,
}

impl Processor<String, i64> for Summer {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        self.calls.init.fetch_add(1, Ordering::SeqCst);
        self.sums = Some(ctx.key_value_store("sums")?);
        ctx.schedule(Duration::from_secs(1), PunctuationType::WallClockTime)?;
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<String, i64>,
    ) -> Result<(), StreamsError> {
        let sums = self.sums.as_ref().expect("init ran");
        let sum = sums.get(ctx, &record.key)?.unwrap_or(0) + record.value;
        sums.put(ctx, &record.key, Some(&sum))
    }

    fn punctuate(&mut self, ctx: &mut ProcessorContext<'_>, p: Punctuation) -> Result<(), StreamsError> {
        assert_eq!(p.kind, PunctuationType::WallClockTime);
        self.calls.punctuate.fetch_add(1, Ordering::SeqCst);
        let sums = self.sums.as_ref().expect("init ran");
        for (key, sum) in sums.all(ctx)? {
            sums.delete(ctx, &key)?;
            self.out.forward(ctx, Record::new(key, sum, p.timestamp))?;
        }
        Ok(())
    }

    fn close(&mut self) {
        self.calls.close.fetch_add(1, Ordering::SeqCst);
    }
}

fn summer_topology(calls: &Arc<Calls>) -> Topology {
    let calls = Arc::clone(calls);
    let mut topology = Topology::new();
    topology
        .add_source("Source", "amounts", Serdes::string(), Serdes::i64())
        .unwrap()
        .add_processor("Sum", move |out| Summer { out, sums: None, calls: Arc::clone(&calls) }, &["Source"])
        .unwrap()
        .add_state_store(StoreBuilder::key_value("sums", Serdes::string(), Serdes::i64()), &["Sum"])
        .unwrap()
        .add_sink("Sink", "sums-out", Serdes::string(), Serdes::i64(), &["Sum"])
        .unwrap();
    topology
}

#[test]
fn a_topology_built_node_by_node_runs_its_lifecycle_and_wall_clock_punctuations() {
    let calls = Arc::new(Calls::default());
    let topology = summer_topology(&calls);
    let description = topology.describe().to_string();
    assert!(description.contains("Processor: Sum (stores: [sums])"), "{description}");
    let driver = TopologyTestDriver::new(topology, StreamsConfig::new("sums")).unwrap();
    assert_eq!(calls.init.load(Ordering::SeqCst), 1, "init runs before the first record");
    let amounts = driver.create_input_topic("amounts", Serdes::string(), Serdes::i64());
    let out = driver.create_output_topic("sums-out", Serdes::string(), Serdes::i64());
    amounts.pipe_input(s("a"), 5).unwrap();
    amounts.pipe_input(s("b"), 1).unwrap();
    amounts.pipe_input(s("a"), 7).unwrap();
    driver.advance_wall_clock_time(Duration::from_millis(999)).unwrap();
    assert!(out.is_empty(), "not due before 1 s");
    driver.advance_wall_clock_time(Duration::from_millis(1)).unwrap();
    assert_eq!(
        out.read_records_to_list()
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect::<Vec<_>>(),
        vec![(s("a"), 12, 1_000), (s("b"), 1, 1_000)]
    );
    // Late by several intervals: fires once, then again 1 s after.
    amounts.pipe_input(s("a"), 1).unwrap();
    driver.advance_wall_clock_time(Duration::from_millis(5_500)).unwrap();
    assert_eq!(out.read_key_values_to_list().unwrap(), vec![(s("a"), 1)]);
    assert_eq!(calls.punctuate.load(Ordering::SeqCst), 2);
    driver.advance_wall_clock_time(Duration::from_millis(999)).unwrap();
    assert_eq!(calls.punctuate.load(Ordering::SeqCst), 2, "next due at 7.5 s");
    driver.advance_wall_clock_time(Duration::from_millis(1)).unwrap();
    assert_eq!(calls.punctuate.load(Ordering::SeqCst), 3);
    let store = driver.get_key_value_store("sums", Serdes::string(), Serdes::i64()).unwrap();
    assert_eq!(store.get(&s("a")).unwrap(), None, "the punctuation cleared the store");
    assert_eq!(calls.close.load(Ordering::SeqCst), 0);
    driver.close();
    assert_eq!(calls.close.load(Ordering::SeqCst), 1, "close runs when the task closes");
}

/// Drops a record whose key was seen within the last `window` of stream
/// time; a stream-time punctuation forgets old keys.
struct Dedup {
    out: Forwarder<String, String>,
    seen: Option<KeyValueStoreRef<String, i64>>,
    window: i64,
}

impl Processor<String, String> for Dedup {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        self.seen = Some(ctx.key_value_store("seen")?);
        ctx.schedule(Duration::from_millis(self.window as u64), PunctuationType::StreamTime)?;
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<String, String>,
    ) -> Result<(), StreamsError> {
        let seen = self.seen.as_ref().expect("init ran");
        if seen.get(ctx, &record.key)?.is_some() {
            return Ok(());
        }
        seen.put(ctx, &record.key, Some(&record.timestamp))?;
        // Headers and timestamps travel with the record.
        self.out.forward(ctx, record)
    }

    fn punctuate(&mut self, ctx: &mut ProcessorContext<'_>, p: Punctuation) -> Result<(), StreamsError> {
        let seen = self.seen.as_ref().expect("init ran");
        for (key, at) in seen.all(ctx)? {
            if at <= p.timestamp - self.window {
                seen.delete(ctx, &key)?;
            }
        }
        Ok(())
    }
}

#[test]
fn a_processor_with_a_store_and_stream_time_punctuation_mixes_with_the_dsl() {
    let mut b = StreamsBuilder::new();
    b.add_state_store(StoreBuilder::key_value("seen", Serdes::string(), Serdes::i64()));
    b.stream::<String, String>("events", Consumed::with(Serdes::string(), Serdes::string()))
        .filter(|_, v| !v.is_empty())
        .process_with_stores(|out| Dedup { out, seen: None, window: 10_000 }, &["seen"])
        .map_values(|v: String| v.to_uppercase())
        .to("unique", Produced::with(Serdes::string(), Serdes::string()));
    let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("dedup")).unwrap();
    let input = driver.create_input_topic("events", Serdes::string(), Serdes::string());
    let out = driver.create_output_topic("unique", Serdes::string(), Serdes::string());
    let mut headed = Record::new(s("k1"), s("first"), 1_000);
    headed.headers.push((s("trace"), b"t-1".to_vec()));
    input.pipe_record(headed).unwrap();
    input.pipe_input_with_timestamp(s("k1"), s("again"), 5_000).unwrap(); // a duplicate
    input.pipe_input_with_timestamp(s("k2"), s("other"), 9_000).unwrap();
    input.pipe_input_with_timestamp(s("k3"), s("x"), 10_000).unwrap(); // punctuation at 10 s: forgets what is 10 s old: none
    input.pipe_input_with_timestamp(s("k1"), s("still a duplicate"), 12_000).unwrap();
    input.pipe_input_with_timestamp(s("k4"), s("y"), 20_000).unwrap(); // punctuation at 20 s: forgets k1, k2, k3
    input.pipe_input_with_timestamp(s("k1"), s("back"), 21_000).unwrap();
    let records = out.read_records_to_list().unwrap();
    let got: Vec<_> = records.iter().map(|r| (r.key.clone(), r.value.clone(), r.timestamp)).collect();
    assert_eq!(
        got,
        vec![
            (s("k1"), s("FIRST"), 1_000),
            (s("k2"), s("OTHER"), 9_000),
            (s("k3"), s("X"), 10_000),
            (s("k4"), s("Y"), 20_000),
            (s("k1"), s("BACK"), 21_000)
        ]
    );
    assert_eq!(records[0].headers, vec![(s("trace"), b"t-1".to_vec())]);
}

struct Nothing;

impl Processor<String, String> for Nothing {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        let _: KeyValueStoreRef<String, String> = ctx.key_value_store("numbers")?;
        Ok(())
    }
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        _: Record<String, String>,
    ) -> Result<(), StreamsError> {
        ctx.schedule(Duration::from_secs(1), PunctuationType::StreamTime).map(|_| ())
    }
}

#[test]
fn wrong_names_types_and_calls_are_refused_with_what_was_wrong() {
    let mut t = Topology::new();
    t.add_source("Source", "in", Serdes::string(), Serdes::string()).unwrap();
    let err = t.add_processor("P", |_out: Forwarder<String, String>| Nothing, &["Nope"]).err().unwrap();
    assert!(err.to_string().contains("no parent named \"Nope\""), "{err}");
    let err = t.add_source("Source", "other", Serdes::string(), Serdes::string()).err().unwrap();
    assert!(matches!(err, StreamsError::DuplicateName { .. }), "{err}");
    // The failed calls left the topology as it was.
    t.add_processor("P", |_out: Forwarder<String, String>| Nothing, &["Source"]).unwrap();
    let err =
        t.add_state_store(StoreBuilder::key_value("numbers", Serdes::string(), Serdes::i64()), &["Q"]).err();
    assert!(err.unwrap().to_string().contains("no processor named \"Q\""));
    t.add_state_store(StoreBuilder::key_value("numbers", Serdes::string(), Serdes::i64()), &["P"]).unwrap();
    // The processor asks for (String, String): init fails naming the types.
    let err = TopologyTestDriver::new(t, StreamsConfig::new("wrong")).err().unwrap();
    assert!(err.to_string().contains("store \"numbers\" does not hold"), "{err}");

    assert!(matches!(
        TopologyTestDriver::new(Topology::new(), StreamsConfig::new("empty")),
        Err(StreamsError::NoSources)
    ));

    let mut b = StreamsBuilder::new();
    b.stream::<String, String>("in", Consumed::with(Serdes::string(), Serdes::string()))
        .process(|_out: Forwarder<String, String>| Late);
    let driver = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("late")).unwrap();
    let err = driver
        .create_input_topic("in", Serdes::string(), Serdes::string())
        .pipe_input(s("k"), s("v"))
        .unwrap_err();
    assert!(err.to_string().contains("schedule is only available in Processor::init"), "{err}");
}

struct Late;

impl Processor<String, String> for Late {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        _: Record<String, String>,
    ) -> Result<(), StreamsError> {
        ctx.schedule(Duration::from_secs(1), PunctuationType::StreamTime).map(|_| ())
    }
}
