//! Foreign-key table-table joins (KIP-213): [`KTable::join_foreign_key`]
//! and [`KTable::left_join_foreign_key`].
//!
//! # How it runs
//!
//! The left table (keyed by `K`) holds rows that name a row of the right
//! table (keyed by `KO`) through `extractor(value)`. The two tables may be
//! partitioned differently, so the join talks through two internal topics,
//! as Kafka's does:
//!
//! 1. **Subscription** (`<application.id>-<name>-subscription-registration-repartition`,
//!    keyed by the foreign key, co-partitioned with the right table): for
//!    each update of a left row, a subscription of `K` to its foreign key,
//!    carrying a hash of the left value; an unsubscription from the old
//!    foreign key when it changed.
//! 2. The right side keeps the subscriptions in a store (`foreign key ‖
//!    K` → hash) and answers each subscription, and each later update of
//!    the right row, with a **response** (`<...>-subscription-response-repartition`,
//!    keyed by `K`, co-partitioned with the left table) holding the hash
//!    and the right value.
//! 3. The left side joins a response with the left row's current value
//!    only if the value still has the hash the response answers (a
//!    response to an older value is dropped), and writes the result into
//!    the join's store, which forwards `Change`s (new and old result).
//!
//! A left row deleted, or whose extractor returns `None`, is resolved on
//! the left side at once (a delete of the result for the inner join;
//! `joiner(value, None)` for the left join) and unsubscribes from its old
//! foreign key.

use std::rc::Rc;
use std::sync::Arc;

use crate::change::Change;
use crate::dsl::kgrouped::{define_store, repartition_names, serde_or_missing};
use crate::dsl::kstream::add_repartition;
use crate::dsl::versioned::TableReader;
use crate::dsl::KTable;
use crate::graph::{downcast_children, share, BuildContext, Erased, Factory, NodeDef, NodeKind};
use crate::nodes::PassThrough;
use crate::options::Materialized;
use crate::processor::typed_store::TypedStore;
use crate::processor::{Forwarder, Processor, ProcessorContext};
use crate::record::{Headers, Record};
use crate::serdes::{Serde, SerdeError};
use crate::stateful::ChangeForwarder;
use crate::store::cache::EntryContext;
use crate::store::serde_error::serde_error;
use crate::store::state::StoreHandle;
use crate::store::{prefix_end, put_len};
use crate::StreamsError;

/// FNV-1a, 64 bits: the hash of a serialized left value that travels with
/// a subscription and comes back with its response (stable across
/// processes and versions, unlike `std`'s hasher).
fn value_hash(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// What a subscription asks of the right side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subscription {
    /// `key` (serialized) joins the foreign key now, with a value of this
    /// hash: store it and answer.
    Subscribe { hash: u64, key: Vec<u8> },
    /// `key` no longer joins the foreign key: forget it, no answer.
    Unsubscribe { key: Vec<u8> },
}

const VERSION: u8 = 1;
const SUBSCRIBE: u8 = 0;
const UNSUBSCRIBE: u8 = 1;

/// `version ‖ instruction ‖ hash (8, subscribe only) ‖ left key`.
struct SubscriptionSerde;

impl Serde<Subscription> for SubscriptionSerde {
    fn serialize_into(
        &self,
        _topic: &str,
        value: &Subscription,
        out: &mut Vec<u8>,
    ) -> Result<(), SerdeError> {
        out.push(VERSION);
        match value {
            Subscription::Subscribe { hash, key } => {
                out.push(SUBSCRIBE);
                out.extend_from_slice(&hash.to_be_bytes());
                out.extend_from_slice(key);
            }
            Subscription::Unsubscribe { key } => {
                out.push(UNSUBSCRIBE);
                out.extend_from_slice(key);
            }
        }
        Ok(())
    }

    fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<Subscription, SerdeError> {
        let short = |expected| SerdeError::Length {
            type_name: "FK-join subscription",
            expected,
            actual: bytes.len(),
        };
        match bytes {
            [VERSION, SUBSCRIBE, rest @ ..] if rest.len() >= 8 => Ok(Subscription::Subscribe {
                hash: u64::from_be_bytes(rest[..8].try_into().expect("8 bytes")),
                key: rest[8..].to_vec(),
            }),
            [VERSION, UNSUBSCRIBE, rest @ ..] => Ok(Subscription::Unsubscribe { key: rest.to_vec() }),
            _ => Err(short(10)),
        }
    }
}

/// The right side's answer: the hash it answers and the right value.
#[derive(Debug, Clone)]
pub(crate) struct Response<VO> {
    hash: u64,
    value: Option<VO>,
}

/// `version ‖ hash (8) ‖ present (1) ‖ right value`.
struct ResponseSerde<VO>(Arc<dyn Serde<VO>>);

impl<VO: 'static> Serde<Response<VO>> for ResponseSerde<VO> {
    fn serialize_into(&self, topic: &str, value: &Response<VO>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.push(VERSION);
        out.extend_from_slice(&value.hash.to_be_bytes());
        match &value.value {
            Some(v) => {
                out.push(1);
                self.0.serialize_into(topic, v, out)
            }
            None => {
                out.push(0);
                Ok(())
            }
        }
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Response<VO>, SerdeError> {
        match bytes {
            [VERSION, rest @ ..] if rest.len() >= 9 => {
                let hash = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
                let value = match rest[8] {
                    0 => None,
                    _ => Some(self.0.deserialize(topic, &rest[9..])?),
                };
                Ok(Response { hash, value })
            }
            _ => Err(SerdeError::Length { type_name: "FK-join response", expected: 10, actual: bytes.len() }),
        }
    }
}

/// `joiner(left, right)`, or `None` when the row has no result.
type FkJoiner<V, VO, VR> = Arc<dyn Fn(&V, Option<&VO>) -> Option<VR> + Send + Sync>;
/// The foreign key of a left value, if it has one.
type Extractor<V, KO> = Arc<dyn Fn(&V) -> Option<KO> + Send + Sync>;

/// Serializes with `serde`, naming `store` on failure.
fn bytes_of<T: 'static>(
    serde: &dyn Serde<T>,
    topic: &str,
    value: &T,
    store: &str,
    part: &'static str,
) -> Result<Vec<u8>, StreamsError> {
    let mut out = Vec::new();
    serde.serialize_into(topic, value, &mut out).map_err(|e| serde_error(store, "serialize", part, e))?;
    Ok(out)
}

/// Left side, on each left-table update: subscribes, unsubscribes, and
/// resolves deletes and rows without a foreign key at once.
struct SubscriptionSender<K, V, KO, VO, VR> {
    extractor: Extractor<V, KO>,
    joiner: FkJoiner<V, VO, VR>,
    fk_serde: Arc<dyn Serde<KO>>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    /// The left table's changelog topic, which its serdes are called with.
    left_topic: Arc<str>,
    result: TypedStore<K, VR>,
    out: Forwarder<KO, Subscription>,
}

impl<K, V, KO, VO, VR> Processor<K, Change<V>> for SubscriptionSender<K, V, KO, VO, VR>
where
    K: Clone + Send + 'static,
    V: Send + 'static,
    KO: Clone + Send + 'static,
    VO: Send + 'static,
    VR: Clone + Send + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        let Record { key, value: change, timestamp, headers } = record;
        let store = self.result.name();
        let key_bytes = bytes_of(&*self.key_serde, &self.left_topic, &key, store, "key")?;
        let fk_new = change.new.as_ref().and_then(|v| (self.extractor)(v));
        let fk_old = change.old.as_ref().and_then(|v| (self.extractor)(v));
        let fk_bytes = |fk: &KO| bytes_of(&*self.fk_serde, &self.left_topic, fk, store, "foreign key");
        let new_fk_bytes = fk_new.as_ref().map(fk_bytes).transpose()?;
        if let Some(old) = fk_old {
            if Some(fk_bytes(&old)?) != new_fk_bytes {
                let unsubscribe = Subscription::Unsubscribe { key: key_bytes.clone() };
                self.out.forward(
                    ctx,
                    Record { key: old, value: unsubscribe, timestamp, headers: headers.clone() },
                )?;
            }
        }
        match (change.new, fk_new) {
            (Some(value), Some(fk)) => {
                let hash =
                    value_hash(&bytes_of(&*self.value_serde, &self.left_topic, &value, store, "value")?);
                let subscribe = Subscription::Subscribe { hash, key: key_bytes };
                self.out.forward(ctx, Record { key: fk, value: subscribe, timestamp, headers })
            }
            // No foreign key: no right row can match.
            (Some(value), None) => {
                let result = (self.joiner)(&value, None);
                self.result.set_key(&key)?;
                self.result.put(ctx, result.as_ref(), timestamp, headers)
            }
            (None, _) => {
                self.result.set_key(&key)?;
                self.result.put(ctx, None, timestamp, headers)
            }
        }
    }
}

/// `len(foreign key) ‖ foreign key ‖ left key`: the subscription store's
/// keys, so one foreign key's subscribers are one key range.
fn subscription_key(fk: &[u8], key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + fk.len() + key.len());
    put_len(&mut out, fk.len());
    out.extend_from_slice(fk);
    out.extend_from_slice(key);
    out
}

/// The subscription store as both right-side processors use it.
struct Subscribers<K, KO> {
    handle: StoreHandle,
    name: Arc<str>,
    fk_serde: Arc<dyn Serde<KO>>,
    key_serde: Arc<dyn Serde<K>>,
    /// The subscription topic, which the serdes are called with.
    topic: Arc<str>,
}

impl<K: 'static, KO: 'static> Subscribers<K, KO> {
    /// Resolves the store `store` for node `node`.
    fn open(
        ctx: &mut BuildContext<'_>,
        node: &str,
        store: &str,
        fk_serde: &Arc<dyn Serde<KO>>,
        key_serde: &Arc<dyn Serde<K>>,
    ) -> Result<Self, StreamsError> {
        let (handle, topic) = ctx.store(node, store)?;
        Ok(Subscribers {
            handle,
            name: Arc::from(store),
            fk_serde: Arc::clone(fk_serde),
            key_serde: Arc::clone(key_serde),
            topic: Arc::from(topic),
        })
    }

    fn fk_bytes(&self, fk: &KO) -> Result<Vec<u8>, StreamsError> {
        bytes_of(&*self.fk_serde, &self.topic, fk, &self.name, "foreign key")
    }

    fn left_key(&self, bytes: &[u8]) -> Result<K, StreamsError> {
        self.key_serde
            .deserialize(&self.topic, bytes)
            .map_err(|e| serde_error(&self.name, "deserialize", "key", e))
    }
}

/// Right side, on each subscription: records or forgets it and answers a
/// subscription with the right row's current value.
struct SubscriptionReceiver<K, KO, VO> {
    subscribers: Subscribers<K, KO>,
    right: TableReader<KO, VO>,
    out: Forwarder<K, Response<VO>>,
}

impl<K, KO, VO> Processor<KO, Subscription> for SubscriptionReceiver<K, KO, VO>
where
    K: Clone + Send + 'static,
    KO: Send + 'static,
    VO: Clone + Send + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<KO, Subscription>,
    ) -> Result<(), StreamsError> {
        let Record { key: fk, value, timestamp, headers } = record;
        let fk_bytes = self.subscribers.fk_bytes(&fk)?;
        let context = EntryContext {
            timestamp,
            topic: ctx.topic_index,
            offset: ctx.offset,
            headers: Headers::default(),
        };
        let handle = self.subscribers.handle;
        match value {
            Subscription::Unsubscribe { key } => {
                ctx.stores.put(handle, &subscription_key(&fk_bytes, &key), None, context);
                Ok(())
            }
            Subscription::Subscribe { hash, key } => {
                ctx.stores.put(
                    handle,
                    &subscription_key(&fk_bytes, &key),
                    Some(hash.to_be_bytes().to_vec()),
                    context,
                );
                self.right.set_key(&fk)?;
                let right = self.right.get(ctx)?;
                let left_key = self.subscribers.left_key(&key)?;
                let response = Response { hash, value: right };
                self.out.forward(ctx, Record { key: left_key, value: response, timestamp, headers })
            }
        }
    }
}

/// Right side, on each right-table update: answers every subscriber of
/// the row with its new value.
struct RightUpdates<K, KO, VO> {
    subscribers: Subscribers<K, KO>,
    out: Forwarder<K, Response<VO>>,
}

impl<K, KO, VO> Processor<KO, Change<VO>> for RightUpdates<K, KO, VO>
where
    K: Clone + Send + 'static,
    KO: Send + 'static,
    VO: Clone + Send + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<KO, Change<VO>>,
    ) -> Result<(), StreamsError> {
        let Record { key: fk, value: change, timestamp, headers } = record;
        let prefix = subscription_key(&self.subscribers.fk_bytes(&fk)?, &[]);
        let end = prefix_end(&prefix);
        for (stored, hash) in ctx.stores.range(self.subscribers.handle, &prefix, end.as_deref())? {
            let (Some(key), Ok(hash)) = (stored.get(prefix.len()..), <[u8; 8]>::try_from(hash.as_slice()))
            else {
                continue;
            };
            let left_key = self.subscribers.left_key(key)?;
            let response = Response { hash: u64::from_be_bytes(hash), value: change.new.clone() };
            self.out.forward(
                ctx,
                Record { key: left_key, value: response, timestamp, headers: headers.clone() },
            )?;
        }
        Ok(())
    }
}

/// Left side, on each response: joins it with the left row if the row
/// still has the value the response answers.
struct ResponseJoiner<K, V, VO, VR> {
    left: TableReader<K, V>,
    value_serde: Arc<dyn Serde<V>>,
    joiner: FkJoiner<V, VO, VR>,
    result: TypedStore<K, VR>,
}

impl<K, V, VO, VR> Processor<K, Response<VO>> for ResponseJoiner<K, V, VO, VR>
where
    K: Clone + Send + 'static,
    V: Send + 'static,
    VO: Send + 'static,
    VR: Clone + Send + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<K, Response<VO>>,
    ) -> Result<(), StreamsError> {
        let Record { key, value: response, timestamp, headers } = record;
        self.left.set_key(&key)?;
        let Some(current) = self.left.get(ctx)? else { return Ok(()) };
        let bytes = bytes_of(&*self.value_serde, self.left.topic(), &current, self.left.name(), "value")?;
        if value_hash(&bytes) != response.hash {
            // Answers an older value of the row: a newer answer follows.
            return Ok(());
        }
        let result = (self.joiner)(&current, response.value.as_ref());
        self.result.set_key(&key)?;
        self.result.put(ctx, result.as_ref(), timestamp, headers)
    }
}

impl<K, V> KTable<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Joins each row of this table with the row of `other` whose key
    /// `extractor` finds in it (Kafka's foreign-key `KTable#join`,
    /// KIP-213): the result, keyed like this table, holds
    /// `joiner(row, other_row)` while both exist, and follows updates of
    /// either side, changes of the foreign key and deletes. Both tables
    /// must be materialized; they may have different partition counts.
    /// The result is materialized as `materialized` says (its value serde
    /// is required).
    ///
    /// ```
    /// use runnel_streams::{Consumed, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig, TopologyTestDriver};
    ///
    /// // order -> "customer,item"; customer -> name.
    /// let mut b = StreamsBuilder::new();
    /// let c = || Consumed::with(Serdes::string(), Serdes::string());
    /// let orders = b.table::<String, String>("orders", c(), Materialized::new());
    /// let customers = b.table::<String, String>("customers", c(), Materialized::new());
    /// orders
    ///     .join_foreign_key(
    ///         &customers,
    ///         |order: &String| order.split(',').next().map(str::to_string),
    ///         |order, name| format!("{order} for {name}"),
    ///         Materialized::with(Serdes::string(), Serdes::string()),
    ///     )
    ///     .to_stream()
    ///     .to("orders-named", Produced::with(Serdes::string(), Serdes::nullable(Serdes::string())));
    /// let driver = TopologyTestDriver::new(b.build()?, StreamsConfig::new("fk"))?;
    /// let o = driver.create_input_topic("orders", Serdes::string(), Serdes::string());
    /// let cu = driver.create_input_topic("customers", Serdes::string(), Serdes::string());
    /// let out = driver.create_output_topic("orders-named", Serdes::string(), Serdes::nullable(Serdes::string()));
    /// cu.pipe_input("c1".into(), "Ann".into())?;
    /// o.pipe_input("o1".into(), "c1,book".into())?;
    /// cu.pipe_input("c1".into(), "Ann B.".into())?; // the customer changes: the order follows
    /// assert_eq!(
    ///     out.read_values_to_list()?,
    ///     vec![Some("c1,book for Ann".to_string()), Some("c1,book for Ann B.".to_string())]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join_foreign_key<KO, VO, VR, F, J>(
        &self,
        other: &KTable<KO, VO>,
        extractor: F,
        joiner: J,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        KO: Clone + Send + 'static,
        VO: Clone + Send + 'static,
        VR: Clone + Send + 'static,
        F: Fn(&V) -> Option<KO> + Send + Sync + 'static,
        J: Fn(&V, &VO) -> VR + Send + Sync + 'static,
    {
        let joiner: FkJoiner<V, VO, VR> = Arc::new(move |v, vo| vo.map(|vo| joiner(v, vo)));
        self.fk_join(other, Arc::new(extractor), joiner, materialized, "KTABLE-FK-JOIN")
    }

    /// As [`join_foreign_key`](Self::join_foreign_key), and a row whose
    /// foreign key is missing or finds no row has the result
    /// `joiner(row, None)` (Kafka's foreign-key `KTable#leftJoin`).
    pub fn left_join_foreign_key<KO, VO, VR, F, J>(
        &self,
        other: &KTable<KO, VO>,
        extractor: F,
        joiner: J,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        KO: Clone + Send + 'static,
        VO: Clone + Send + 'static,
        VR: Clone + Send + 'static,
        F: Fn(&V) -> Option<KO> + Send + Sync + 'static,
        J: Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    {
        let joiner: FkJoiner<V, VO, VR> = Arc::new(move |v, vo| Some(joiner(v, vo)));
        self.fk_join(other, Arc::new(extractor), joiner, materialized, "KTABLE-FK-LEFTJOIN")
    }

    fn fk_join<KO, VO, VR>(
        &self,
        other: &KTable<KO, VO>,
        extractor: Extractor<V, KO>,
        joiner: FkJoiner<V, VO, VR>,
        materialized: Materialized<K, VR>,
        prefix: &str,
    ) -> KTable<K, VR>
    where
        KO: Clone + Send + 'static,
        VO: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let mut graph = self.graph.borrow_mut();
        let name = graph.new_name(prefix);
        if !Rc::ptr_eq(&self.graph, &other.graph) {
            graph.errors.push(StreamsError::ForeignStream { node: name.clone() });
        }
        let (Some((left_store, (ks, vs))), Some((right_store, (fks, vos)))) = (self.lookup(), other.lookup())
        else {
            graph.errors.push(StreamsError::TableNotMaterialized { node: name });
            drop(graph);
            return KTable::new(Rc::clone(&self.graph), self.node, None);
        };
        let result_store = define_store(&mut graph, &materialized, &format!("{name}-RESULT"));
        let (left_versions, right_versions) = (self.versioned, other.versioned);
        let default_key = Some(Arc::clone(&ks));
        let rks =
            serde_or_missing(&mut graph, materialized.key_serde, default_key, (&name, &result_store, "key"));
        let rvs =
            serde_or_missing(&mut graph, materialized.value_serde, None, (&name, &result_store, "value"));
        let subscriptions = format!("{name}-subscription-store");
        graph.add_internal_store(&subscriptions, true);

        // 1. Left updates to subscriptions (and local results).
        let sender = {
            let (node_name, result_name, left_name) = (
                graph.new_name(&format!("{prefix}-SUBSCRIPTION-SENDER")),
                result_store.clone(),
                left_store.clone(),
            );
            let (extractor, joiner) = (Arc::clone(&extractor), Arc::clone(&joiner));
            let (fks, ks, vs, rks, rvs) =
                (Arc::clone(&fks), Arc::clone(&ks), Arc::clone(&vs), Arc::clone(&rks), Arc::clone(&rvs));
            let factory_name = node_name.clone();
            let factory: Factory = Arc::new(move |ctx: &mut BuildContext<'_>, children: Vec<Erased>| {
                let out = downcast_children::<KO, Subscription>(&factory_name, children)?;
                let (result, result_topic) = ctx.store(&factory_name, &result_name)?;
                let result =
                    TypedStore::new(result, &result_name, result_topic, Arc::clone(&rks), Arc::clone(&rvs));
                let (_, left_topic) = ctx.store(&factory_name, &left_name)?;
                let processor: Box<dyn Processor<K, Change<V>>> = Box::new(SubscriptionSender {
                    extractor: Arc::clone(&extractor),
                    joiner: Arc::clone(&joiner),
                    fk_serde: Arc::clone(&fks),
                    key_serde: Arc::clone(&ks),
                    value_serde: Arc::clone(&vs),
                    left_topic: Arc::from(left_topic),
                    result,
                    out: Forwarder::new(out),
                });
                Ok(Box::new(processor) as Erased)
            });
            graph.push(NodeDef {
                name: node_name,
                kind: NodeKind::Processor { stores: vec![result_store.clone(), left_store.clone()] },
                parents: vec![self.node],
                factory,
                share: share::<K, Change<V>>,
            })
        };
        let names = repartition_names(&mut graph, None, &format!("{name}-subscription-registration"));
        let subscription_source =
            add_repartition(&mut graph, sender, names, Arc::clone(&fks), Arc::new(SubscriptionSerde), None);
        graph.copartitions.push(vec![subscription_source, other.node]);

        // 2. The right side: subscriptions and right updates to responses.
        let receiver = {
            let node_name = graph.new_name(&format!("{prefix}-SUBSCRIPTION-RECEIVER"));
            let (subs, right_name) = (subscriptions.clone(), right_store.clone());
            let (fks, vos, ks) = (Arc::clone(&fks), Arc::clone(&vos), Arc::clone(&ks));
            let factory_name = node_name.clone();
            let factory: Factory = Arc::new(move |ctx: &mut BuildContext<'_>, children: Vec<Erased>| {
                let out = downcast_children::<K, Response<VO>>(&factory_name, children)?;
                let subscribers = Subscribers::open(ctx, &factory_name, &subs, &fks, &ks)?;
                let serdes = (Arc::clone(&fks), Arc::clone(&vos));
                let right = TableReader::open(ctx, &factory_name, &right_name, serdes, right_versions)?;
                let processor: Box<dyn Processor<KO, Subscription>> =
                    Box::new(SubscriptionReceiver { subscribers, right, out: Forwarder::new(out) });
                Ok(Box::new(processor) as Erased)
            });
            graph.push(NodeDef {
                name: node_name,
                kind: NodeKind::Processor { stores: vec![subscriptions.clone(), right_store.clone()] },
                parents: vec![subscription_source],
                factory,
                share: share::<KO, Subscription>,
            })
        };
        let updates = {
            let node_name = graph.new_name(&format!("{prefix}-RIGHT-UPDATES"));
            let subs = subscriptions.clone();
            let (fks, ks) = (Arc::clone(&fks), Arc::clone(&ks));
            let factory_name = node_name.clone();
            let factory: Factory = Arc::new(move |ctx: &mut BuildContext<'_>, children: Vec<Erased>| {
                let out = downcast_children::<K, Response<VO>>(&factory_name, children)?;
                let subscribers = Subscribers::open(ctx, &factory_name, &subs, &fks, &ks)?;
                let processor: Box<dyn Processor<KO, Change<VO>>> =
                    Box::new(RightUpdates { subscribers, out: Forwarder::new(out) });
                Ok(Box::new(processor) as Erased)
            });
            graph.push(NodeDef {
                name: node_name,
                kind: NodeKind::Processor { stores: vec![subscriptions.clone()] },
                parents: vec![other.node],
                factory,
                share: share::<KO, Change<VO>>,
            })
        };
        let responses_name = graph.new_name(&format!("{prefix}-RESPONSES"));
        let responses = graph.add_processor::<K, Response<VO>, K, Response<VO>, _, _>(
            responses_name,
            vec![receiver, updates],
            |out| PassThrough { out },
        );
        let names = repartition_names(&mut graph, None, &format!("{name}-subscription-response"));
        let response_serde: Arc<dyn Serde<Response<VO>>> = Arc::new(ResponseSerde(Arc::clone(&vos)));
        let response_source =
            add_repartition(&mut graph, responses, names, Arc::clone(&ks), response_serde, None);
        graph.copartitions.push(vec![response_source, self.node]);

        // 3. Responses joined with the left rows, into the result store.
        let node = {
            let node_name = graph.new_name(&format!("{prefix}-RESPONSE-JOINER"));
            let (result_name, left_name) = (result_store.clone(), left_store.clone());
            let (ks, vs, rks, rvs) = (Arc::clone(&ks), Arc::clone(&vs), Arc::clone(&rks), Arc::clone(&rvs));
            let joiner = Arc::clone(&joiner);
            let factory_name = node_name.clone();
            let factory: Factory = Arc::new(move |ctx: &mut BuildContext<'_>, children: Vec<Erased>| {
                let out = downcast_children::<K, Change<VR>>(&factory_name, children)?;
                let (result, result_topic) = ctx.store(&factory_name, &result_name)?;
                let result_topic = result_topic.to_string();
                let serdes = (Arc::clone(&ks), Arc::clone(&vs));
                let left = TableReader::open(ctx, &factory_name, &left_name, serdes, left_versions)?;
                let listener = ChangeForwarder {
                    store: Arc::from(result_name.as_str()),
                    topic: Arc::from(result_topic.as_str()),
                    key_serde: Arc::clone(&rks),
                    value_serde: Arc::clone(&rvs),
                    out: Forwarder::new(out),
                };
                ctx.set_flush_listener(result, Box::new(listener));
                let processor: Box<dyn Processor<K, Response<VO>>> = Box::new(ResponseJoiner {
                    left,
                    value_serde: Arc::clone(&vs),
                    joiner: Arc::clone(&joiner),
                    result: TypedStore::new(
                        result,
                        &result_name,
                        &result_topic,
                        Arc::clone(&rks),
                        Arc::clone(&rvs),
                    ),
                });
                Ok(Box::new(processor) as Erased)
            });
            graph.push(NodeDef {
                name: node_name,
                kind: NodeKind::Processor { stores: vec![result_store.clone(), left_store.clone()] },
                parents: vec![response_source],
                factory,
                share: share::<K, Response<VO>>,
            })
        };
        drop(graph);
        KTable::new(Rc::clone(&self.graph), node, Some(result_store)).with_serdes(rks, rvs)
    }
}
