//! Global tables: stream-table joins through the `TopologyTestDriver`,
//! the topology description, and validation.

use runnel_streams::{
    Consumed, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig, StreamsError, TopologyTestDriver,
};

type S = String;

fn s(x: &str) -> String {
    x.to_string()
}

fn strings() -> Consumed<S, S> {
    Consumed::with(Serdes::string(), Serdes::string())
}

fn enrich(left: bool) -> StreamsBuilder {
    let mut b = StreamsBuilder::new();
    let users = b.global_table("users", strings(), Materialized::as_("users-store"));
    let clicks = b.stream::<S, S>("clicks", strings());
    // click value: "<user>:<page>"; join on the user, keep the click key.
    let user_of = |_: &S, v: &S| v.split(':').next().unwrap_or_default().to_string();
    let joined = if left {
        clicks.left_join_global(&users, user_of, |click, name: Option<&S>| {
            format!("{click} by {}", name.map_or("?", String::as_str))
        })
    } else {
        clicks.join_global(&users, user_of, |click, name| format!("{click} by {name}"))
    };
    joined.to("enriched", Produced::with(Serdes::string(), Serdes::string()));
    b
}

#[test]
fn inner_join_drops_unmatched_records_and_sees_table_updates() {
    let d = TopologyTestDriver::new(enrich(false).build().unwrap(), StreamsConfig::new("app")).unwrap();
    let users = d.create_input_topic("users", Serdes::string(), Serdes::nullable(Serdes::string()));
    let clicks = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
    let out = d.create_output_topic("enriched", Serdes::string(), Serdes::string());
    users.pipe_input(s("u1"), Some(s("Ann"))).unwrap();
    clicks.pipe_input(s("c1"), s("u1:/home")).unwrap();
    clicks.pipe_input(s("c2"), s("u2:/home")).unwrap();
    users.pipe_input(s("u1"), Some(s("Ann B."))).unwrap();
    clicks.pipe_input(s("c3"), s("u1:/docs")).unwrap();
    users.pipe_input(s("u1"), None).unwrap();
    clicks.pipe_input(s("c4"), s("u1:/blog")).unwrap();
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![(s("c1"), s("u1:/home by Ann")), (s("c3"), s("u1:/docs by Ann B."))]
    );
    let store = d.get_key_value_store("users-store", Serdes::string(), Serdes::string()).unwrap();
    assert_eq!(store.get(&s("u1")).unwrap(), None, "the tombstone deleted the user");
}

#[test]
fn left_join_keeps_unmatched_records() {
    let d = TopologyTestDriver::new(enrich(true).build().unwrap(), StreamsConfig::new("app")).unwrap();
    let users = d.create_input_topic("users", Serdes::string(), Serdes::string());
    let clicks = d.create_input_topic("clicks", Serdes::string(), Serdes::string());
    let out = d.create_output_topic("enriched", Serdes::string(), Serdes::string());
    users.pipe_input(s("u1"), s("Ann")).unwrap();
    clicks.pipe_input(s("c1"), s("u1:/home")).unwrap();
    clicks.pipe_input(s("c2"), s("u2:/home")).unwrap();
    assert_eq!(out.read_values_to_list().unwrap(), vec![s("u1:/home by Ann"), s("u2:/home by ?")]);
}

#[test]
fn describe_lists_the_global_store_after_the_subtopologies() {
    let topology = enrich(false).build().unwrap();
    assert_eq!(topology.global_topics(), vec![s("users")]);
    assert_eq!(
        topology.describe().to_string(),
        "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000002 (topics: [clicks])
      --> KSTREAM-JOIN-0000000003
    Processor: KSTREAM-JOIN-0000000003 (stores: [])
      --> KSTREAM-SINK-0000000004
      <-- KSTREAM-SOURCE-0000000002
    Sink: KSTREAM-SINK-0000000004 (topic: enriched)
      <-- KSTREAM-JOIN-0000000003

  Sub-topology: 1 for global store (will not generate tasks)
    Source: KSTREAM-SOURCE-0000000000 (topics: [users])
      --> KTABLE-SOURCE-0000000001
    Processor: KTABLE-SOURCE-0000000001 (stores: [users-store])
      --> none
      <-- KSTREAM-SOURCE-0000000000

"
    );
}

#[test]
fn a_topic_cannot_be_both_a_global_table_and_a_stream() {
    let mut b = StreamsBuilder::new();
    b.global_table("users", strings(), Materialized::as_("users-store"));
    b.stream::<S, S>("users", strings()).to("out", Produced::with(Serdes::string(), Serdes::string()));
    let err = b.build().unwrap_err();
    assert!(matches!(err, StreamsError::TopicSourcedTwice { .. }), "{err:?}");
    assert!(err.to_string().contains("global table users-store"), "{err}");
}
