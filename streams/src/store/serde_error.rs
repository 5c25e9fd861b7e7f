//! The error a store's serde failure becomes, naming the store, the
//! operation and the part (key or value).

use crate::serdes::SerdeError;
use crate::StreamsError;

/// See the [module docs](self).
pub(crate) fn serde_error(
    store: &str,
    op: &'static str,
    part: &'static str,
    source: SerdeError,
) -> StreamsError {
    StreamsError::StoreSerde { store: store.to_string(), op, part, source }
}
