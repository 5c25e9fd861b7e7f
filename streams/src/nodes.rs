//! Stateless processors behind the `KStream` operators. Each holds the
//! user's closure (shared by all tasks through an `Arc`) and its children.

use std::sync::Arc;

use crate::processor::{Forwarder, Processor, ProcessorContext};
use crate::record::Record;
use crate::StreamsError;

type Res = Result<(), StreamsError>;

/// `filter` (`keep == true`) and `filter_not` (`keep == false`).
pub(crate) struct Filter<F, K, V> {
    pub(crate) pred: Arc<F>,
    pub(crate) keep: bool,
    pub(crate) out: Forwarder<K, V>,
}

impl<K, V, F> Processor<K, V> for Filter<F, K, V>
where
    K: Clone + Send,
    V: Clone + Send,
    F: Fn(&K, &V) -> bool + Send + Sync,
{
    #[inline]
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Res {
        if (self.pred)(&record.key, &record.value) == self.keep {
            self.out.forward(ctx, record)
        } else {
            Ok(())
        }
    }
}

/// `map`: new key and value.
pub(crate) struct Map<F, KO, VO> {
    pub(crate) f: Arc<F>,
    pub(crate) out: Forwarder<KO, VO>,
}

impl<K, V, KO, VO, F> Processor<K, V> for Map<F, KO, VO>
where
    KO: Clone + Send,
    VO: Clone + Send,
    F: Fn(K, V) -> (KO, VO) + Send + Sync,
{
    #[inline]
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Res {
        let Record { key, value, timestamp, headers } = record;
        let (key, value) = (self.f)(key, value);
        self.out.forward(ctx, Record { key, value, timestamp, headers })
    }
}

/// `map_values` and `map_values_with_key`: new value, same key.
pub(crate) struct MapValues<F, K, VO> {
    pub(crate) f: Arc<F>,
    pub(crate) out: Forwarder<K, VO>,
}

impl<K, V, VO, F> Processor<K, V> for MapValues<F, K, VO>
where
    K: Clone + Send,
    VO: Clone + Send,
    F: Fn(&K, V) -> VO + Send + Sync,
{
    #[inline]
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Res {
        let Record { key, value, timestamp, headers } = record;
        let value = (self.f)(&key, value);
        self.out.forward(ctx, Record { key, value, timestamp, headers })
    }
}

/// `flat_map`: zero or more records with new keys and values.
pub(crate) struct FlatMap<F, KO, VO> {
    pub(crate) f: Arc<F>,
    pub(crate) out: Forwarder<KO, VO>,
}

impl<K, V, KO, VO, F, I> Processor<K, V> for FlatMap<F, KO, VO>
where
    KO: Clone + Send,
    VO: Clone + Send,
    F: Fn(K, V) -> I + Send + Sync,
    I: IntoIterator<Item = (KO, VO)>,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Res {
        let Record { key, value, timestamp, headers } = record;
        for (key, value) in (self.f)(key, value) {
            self.out.forward(ctx, Record { key, value, timestamp, headers: headers.clone() })?;
        }
        Ok(())
    }
}

/// `flat_map_values`: zero or more values, each with the input key.
pub(crate) struct FlatMapValues<F, K, VO> {
    pub(crate) f: Arc<F>,
    pub(crate) out: Forwarder<K, VO>,
}

impl<K, V, VO, F, I> Processor<K, V> for FlatMapValues<F, K, VO>
where
    K: Clone + Send,
    VO: Clone + Send,
    F: Fn(&K, V) -> I + Send + Sync,
    I: IntoIterator<Item = VO>,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Res {
        let Record { key, value, timestamp, headers } = record;
        for value in (self.f)(&key, value) {
            let record = Record { key: key.clone(), value, timestamp, headers: headers.clone() };
            self.out.forward(ctx, record)?;
        }
        Ok(())
    }
}

/// `select_key`: new key, same value.
pub(crate) struct SelectKey<F, KO, V> {
    pub(crate) f: Arc<F>,
    pub(crate) out: Forwarder<KO, V>,
}

impl<K, V, KO, F> Processor<K, V> for SelectKey<F, KO, V>
where
    KO: Clone + Send,
    V: Clone + Send,
    F: Fn(&K, &V) -> KO + Send + Sync,
{
    #[inline]
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Res {
        let key = (self.f)(&record.key, &record.value);
        let Record { value, timestamp, headers, .. } = record;
        self.out.forward(ctx, Record { key, value, timestamp, headers })
    }
}

/// `peek` (forwards afterwards) and `foreach` (has no children).
pub(crate) struct Peek<F, K, V> {
    pub(crate) f: Arc<F>,
    pub(crate) out: Forwarder<K, V>,
}

impl<K, V, F> Processor<K, V> for Peek<F, K, V>
where
    K: Clone + Send,
    V: Clone + Send,
    F: Fn(&K, &V) + Send + Sync,
{
    #[inline]
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Res {
        (self.f)(&record.key, &record.value);
        self.out.forward(ctx, record)
    }
}

/// Forwards unchanged: `merge`, and each branch of `split`.
pub(crate) struct PassThrough<K, V> {
    pub(crate) out: Forwarder<K, V>,
}

impl<K: Clone + Send, V: Clone + Send> Processor<K, V> for PassThrough<K, V> {
    #[inline]
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Res {
        self.out.forward(ctx, record)
    }
}

/// A branch predicate of `split`.
pub(crate) type BranchPredicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// `split`: the record goes to the first branch whose predicate holds, else
/// to the default branch if there is one, else nowhere. Child `i` is branch
/// `i`; the default branch, when present, is the last child.
pub(crate) struct Split<K, V> {
    pub(crate) predicates: Arc<[BranchPredicate<K, V>]>,
    pub(crate) has_default: bool,
    pub(crate) out: Vec<Box<dyn Processor<K, V>>>,
}

impl<K: Send, V: Send> Processor<K, V> for Split<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Res {
        let target = self
            .predicates
            .iter()
            .position(|p| p(&record.key, &record.value))
            .or(if self.has_default { Some(self.predicates.len()) } else { None });
        match target.and_then(|i| self.out.get_mut(i)) {
            Some(child) => child.process(ctx, record),
            None => Ok(()),
        }
    }
}
