//! A Processor API node as its task holds it: the task initializes,
//! punctuates and closes it besides sending it records.

use std::sync::{Arc, Mutex};

use super::{Processor, ProcessorContext, Punctuation};
use crate::StreamsError;

/// What a task does with a Processor API node besides sending it records.
pub(crate) trait Lifecycle: Send {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError>;
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        punctuation: Punctuation,
    ) -> Result<(), StreamsError>;
    fn close(&mut self);
}

/// A user processor with its types erased for the task.
pub(crate) struct Managed<K, V>(pub(crate) Box<dyn Processor<K, V>>);

impl<K, V> Lifecycle for Managed<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        self.0.init(ctx)
    }
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        punctuation: Punctuation,
    ) -> Result<(), StreamsError> {
        self.0.punctuate(ctx, punctuation)
    }
    fn close(&mut self) {
        self.0.close()
    }
}

/// A Processor API node as its task holds it: the shared processor.
pub(crate) struct ManagedNode {
    pub(crate) node: Arc<Mutex<dyn Lifecycle>>,
}
