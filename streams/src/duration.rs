//! Durations as Kafka's APIs take them: milliseconds in an `i64`.

use std::time::Duration;

/// A duration in milliseconds, `i64::MAX` when it does not fit.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
