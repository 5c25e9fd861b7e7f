//! Event-time windows (Kafka's `TimeWindows`, `SessionWindows`
//! and `SlidingWindows`), the windowed key type [`Windowed`], and the byte
//! layouts of windowed keys in stores and topics.
//!
//! # Time, grace and retention
//!
//! Windows are assigned by record timestamp. A window stays open for late
//! records until stream time (the largest timestamp the task has seen)
//! passes `window end + grace`; a record arriving later than that for
//! every window it belongs to is dropped and counted in the
//! `dropped-records-total` metric. A window's result stays in the store
//! for the retention period (by default `size + grace`, at least that), then
//! its time segment of the store is dropped as a whole.
//!
//! # Key layouts (as Kafka)
//!
//! | where | time windows | session windows |
//! | --- | --- | --- |
//! | store and changelog key | `key ‖ start ‖ seq (4 bytes, 0)` | `key ‖ end ‖ start` |
//! | output topics ([`Serdes::time_windowed`](crate::Serdes::time_windowed), [`Serdes::session_windowed`](crate::Serdes::session_windowed)) | `key ‖ start` | `key ‖ end ‖ start` |
//!
//! Times are 8-byte big-endian milliseconds, so Java applications read the
//! same topics with Kafka's `WindowedSerdes`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::duration::millis;
use crate::serdes::{Serde, SerdeError, Serdes};

/// A time interval in epoch milliseconds. Time windows include `start` and
/// exclude `end`; session windows include both (Kafka's `TimeWindow` and
/// `SessionWindow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// First millisecond of the window.
    pub start: i64,
    /// End of the window (exclusive for time windows, inclusive for
    /// session windows).
    pub end: i64,
}

impl Window {
    /// The window `[start, end)`.
    pub fn new(start: i64, end: i64) -> Self {
        Window { start, end }
    }
}

/// A key with the window it was aggregated in: the key type of windowed
/// aggregation results (Kafka's `Windowed<K>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

impl<K> Windowed<K> {
    /// `key` in `window`.
    pub fn new(key: K, window: Window) -> Self {
        Windowed { key, window }
    }
}

impl<K: fmt::Display> fmt::Display for Windowed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}@{}/{}]", self.key, self.window.start, self.window.end)
    }
}

/// Fixed-size windows by event time: tumbling (`advance == size`, the
/// default) or hopping ([`TimeWindows::advance_by`] smaller than the size,
/// so windows overlap and a record belongs to `size / advance` of them).
///
/// ```
/// use std::time::Duration;
/// use runnel_streams::{TimeWindows, Window};
///
/// let hopping = TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(10))
///     .advance_by(Duration::from_secs(30));
/// assert_eq!(hopping.windows_for(75_000), vec![Window::new(30_000, 90_000), Window::new(60_000, 120_000)]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    pub(crate) size: i64,
    pub(crate) advance: i64,
    pub(crate) grace: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size` that close as soon as stream time passes
    /// their end (no grace for out-of-order records).
    ///
    /// # Panics
    ///
    /// When `size` is zero (a programming error, as in Kafka).
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        Self::of_size_and_grace(size, Duration::ZERO)
    }

    /// Tumbling windows of `size` accepting records up to `grace` after the
    /// window's end.
    ///
    /// # Panics
    ///
    /// When `size` is zero.
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        let size = millis(size);
        assert!(size > 0, "TimeWindows: the window size must be at least 1 ms");
        TimeWindows { size, advance: size, grace: millis(grace) }
    }

    /// Hopping windows: a new window starts every `advance`.
    ///
    /// # Panics
    ///
    /// When `advance` is zero or larger than the size.
    pub fn advance_by(mut self, advance: Duration) -> Self {
        let advance = millis(advance);
        assert!(
            advance > 0 && advance <= self.size,
            "TimeWindows: the advance ({advance} ms) must be in 1..={} ms (the size)",
            self.size
        );
        self.advance = advance;
        self
    }

    /// Window size in milliseconds.
    pub fn size_ms(&self) -> i64 {
        self.size
    }

    /// Grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace
    }

    /// The windows a record at `timestamp` belongs to, oldest first.
    pub fn windows_for(&self, timestamp: i64) -> Vec<Window> {
        self.windows_iter(timestamp).collect()
    }

    /// [`windows_for`](Self::windows_for) without allocating.
    pub(crate) fn windows_iter(&self, timestamp: i64) -> impl Iterator<Item = Window> {
        let first = (timestamp - self.size + self.advance).max(0) / self.advance * self.advance;
        let (size, advance) = (self.size, self.advance);
        (0..)
            .map(move |i| first + i * advance)
            .take_while(move |&start| start <= timestamp)
            .map(move |start| Window::new(start, start.saturating_add(size)))
    }
}

/// Session windows: a key's records closer than the inactivity gap form
/// one session; a record between two sessions merges them (Kafka's
/// `SessionWindows`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    pub(crate) gap: i64,
    pub(crate) grace: i64,
}

impl SessionWindows {
    /// Sessions separated by at least `gap` of inactivity, closed as soon
    /// as stream time passes their end.
    ///
    /// # Panics
    ///
    /// When `gap` is zero.
    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> Self {
        Self::of_inactivity_gap_and_grace(gap, Duration::ZERO)
    }

    /// Sessions separated by at least `gap` of inactivity, accepting
    /// records up to `grace` after a session's end.
    ///
    /// # Panics
    ///
    /// When `gap` is zero.
    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        let gap = millis(gap);
        assert!(gap > 0, "SessionWindows: the inactivity gap must be at least 1 ms");
        SessionWindows { gap, grace: millis(grace) }
    }

    /// The inactivity gap in milliseconds.
    pub fn inactivity_gap_ms(&self) -> i64 {
        self.gap
    }

    /// Grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace
    }
}

/// Sliding windows: every window of `time_difference` that holds records,
/// created as records arrive (Kafka's `SlidingWindows`). A record at `t`
/// updates every window containing it and creates the window
/// `[t - time_difference, t]` ending at it (both ends inclusive), so each
/// distinct set of records within `time_difference` of each other is
/// aggregated exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    pub(crate) difference: i64,
    pub(crate) grace: i64,
}

impl SlidingWindows {
    /// Windows of `time_difference`, closed as soon as stream time passes
    /// their end.
    ///
    /// # Panics
    ///
    /// When `time_difference` is zero.
    pub fn of_time_difference_with_no_grace(time_difference: Duration) -> Self {
        Self::of_time_difference_and_grace(time_difference, Duration::ZERO)
    }

    /// Windows of `time_difference` accepting records up to `grace` after
    /// their end.
    ///
    /// # Panics
    ///
    /// When `time_difference` is zero.
    pub fn of_time_difference_and_grace(time_difference: Duration, grace: Duration) -> Self {
        let difference = millis(time_difference);
        assert!(difference > 0, "SlidingWindows: the time difference must be at least 1 ms");
        SlidingWindows { difference, grace: millis(grace) }
    }

    /// The time difference in milliseconds.
    pub fn time_difference_ms(&self) -> i64 {
        self.difference
    }

    /// Grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace
    }
}

/// Reads an 8-byte big-endian time at `at` of `bytes`.
pub(crate) fn read_time(bytes: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(b)
}

fn too_short(type_name: &'static str, expected: usize, bytes: &[u8]) -> SerdeError {
    SerdeError::Length { type_name, expected, actual: bytes.len() }
}

/// Where the time that places a windowed key in a store segment sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyTime {
    /// Window start, in `key ‖ start ‖ seq`.
    WindowStart,
    /// Session end, in `key ‖ end ‖ start`.
    SessionEnd,
}

impl KeyTime {
    /// The time in `key`, or `None` when the key is too short to hold it.
    pub(crate) fn of(self, key: &[u8]) -> Option<i64> {
        match self {
            KeyTime::WindowStart if key.len() >= 12 => Some(read_time(key, key.len() - 12)),
            KeyTime::SessionEnd if key.len() >= 16 => Some(read_time(key, key.len() - 16)),
            _ => None,
        }
    }
}

/// Store layout of a time-windowed key: `key ‖ start ‖ seq`; the end is
/// `start + size`.
pub(crate) struct WindowStoreKeySerde<K> {
    pub(crate) inner: Arc<dyn Serde<K>>,
    pub(crate) size: i64,
}

impl<K: 'static> Serde<Windowed<K>> for WindowStoreKeySerde<K> {
    fn serialize_into(&self, topic: &str, value: &Windowed<K>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        self.inner.serialize_into(topic, &value.key, out)?;
        out.extend_from_slice(&value.window.start.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        Ok(())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Windowed<K>, SerdeError> {
        if bytes.len() < 12 {
            return Err(too_short("windowed key (key, start, seq)", 12, bytes));
        }
        let start = read_time(bytes, bytes.len() - 12);
        let key = self.inner.deserialize(topic, &bytes[..bytes.len() - 12])?;
        Ok(Windowed::new(key, Window::new(start, start.saturating_add(self.size))))
    }

    fn type_name(&self) -> &'static str {
        "Windowed"
    }
}

/// Session key layout, in stores and topics alike: `key ‖ end ‖ start`.
pub struct SessionWindowedSerde<K> {
    pub(crate) inner: Arc<dyn Serde<K>>,
}

impl<K: 'static> Serde<Windowed<K>> for SessionWindowedSerde<K> {
    fn serialize_into(&self, topic: &str, value: &Windowed<K>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        self.inner.serialize_into(topic, &value.key, out)?;
        out.extend_from_slice(&value.window.end.to_be_bytes());
        out.extend_from_slice(&value.window.start.to_be_bytes());
        Ok(())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Windowed<K>, SerdeError> {
        if bytes.len() < 16 {
            return Err(too_short("session-windowed key (key, end, start)", 16, bytes));
        }
        let n = bytes.len();
        let (end, start) = (read_time(bytes, n - 16), read_time(bytes, n - 8));
        Ok(Windowed::new(self.inner.deserialize(topic, &bytes[..n - 16])?, Window::new(start, end)))
    }

    fn type_name(&self) -> &'static str {
        "Windowed (session)"
    }
}

/// Output layout of a time-windowed key (Kafka's `TimeWindowedSerializer`):
/// `key ‖ start`; the end is `start + size` when read back.
pub struct TimeWindowedSerde<K> {
    pub(crate) inner: Arc<dyn Serde<K>>,
    pub(crate) size: i64,
}

impl<K: 'static> Serde<Windowed<K>> for TimeWindowedSerde<K> {
    fn serialize_into(&self, topic: &str, value: &Windowed<K>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        self.inner.serialize_into(topic, &value.key, out)?;
        out.extend_from_slice(&value.window.start.to_be_bytes());
        Ok(())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Windowed<K>, SerdeError> {
        if bytes.len() < 8 {
            return Err(too_short("windowed key (key, start)", 8, bytes));
        }
        let start = read_time(bytes, bytes.len() - 8);
        let key = self.inner.deserialize(topic, &bytes[..bytes.len() - 8])?;
        Ok(Windowed::new(key, Window::new(start, start.saturating_add(self.size))))
    }

    fn type_name(&self) -> &'static str {
        "Windowed"
    }
}

impl<K> fmt::Debug for TimeWindowedSerde<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeWindowedSerde").field("size", &self.size).finish_non_exhaustive()
    }
}

impl<K> fmt::Debug for SessionWindowedSerde<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionWindowedSerde").finish_non_exhaustive()
    }
}

/// The windowed-key serdes live beside the window types they read and
/// write.
impl Serdes {
    /// Time-windowed keys as Kafka's `TimeWindowedSerde` writes them:
    /// `key ‖ start` (8-byte big-endian millis); reading sets the end to
    /// `start + window_size`.
    pub fn time_windowed<K: 'static>(
        inner: impl Serde<K>,
        window_size: std::time::Duration,
    ) -> TimeWindowedSerde<K> {
        let size = crate::duration::millis(window_size);
        TimeWindowedSerde { inner: std::sync::Arc::new(inner), size }
    }
    /// Session-windowed keys as Kafka's `SessionWindowedSerde` writes them:
    /// `key ‖ end ‖ start`.
    pub fn session_windowed<K: 'static>(inner: impl Serde<K>) -> SessionWindowedSerde<K> {
        SessionWindowedSerde { inner: std::sync::Arc::new(inner) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Serdes;

    #[test]
    fn tumbling_and_hopping_assignment() {
        let tumbling = TimeWindows::of_size_with_no_grace(Duration::from_millis(10));
        assert_eq!(tumbling.windows_for(0), vec![Window::new(0, 10)]);
        assert_eq!(tumbling.windows_for(19), vec![Window::new(10, 20)]);
        let hopping = TimeWindows::of_size_with_no_grace(Duration::from_millis(10))
            .advance_by(Duration::from_millis(5));
        assert_eq!(hopping.windows_for(3), vec![Window::new(0, 10)], "no negative starts");
        assert_eq!(hopping.windows_for(12), vec![Window::new(5, 15), Window::new(10, 20)]);
        assert_eq!(hopping.windows_for(10), vec![Window::new(5, 15), Window::new(10, 20)]);
    }

    #[test]
    fn key_layouts_match_kafka_and_round_trip() {
        let inner: Arc<dyn Serde<String>> = Arc::new(Serdes::string());
        let w = Windowed::new("k".to_string(), Window::new(5, 15));
        let store = WindowStoreKeySerde { inner: Arc::clone(&inner), size: 10 };
        let bytes = store.serialize("t", &w).unwrap().unwrap();
        assert_eq!(bytes, [b"k".as_slice(), &5i64.to_be_bytes(), &[0, 0, 0, 0]].concat());
        assert_eq!(store.deserialize("t", &bytes).unwrap(), w);
        assert_eq!(KeyTime::WindowStart.of(&bytes), Some(5));
        let out = TimeWindowedSerde { inner: Arc::clone(&inner), size: 10 };
        let bytes = out.serialize("t", &w).unwrap().unwrap();
        assert_eq!(bytes, [b"k".as_slice(), &5i64.to_be_bytes()].concat());
        assert_eq!(out.deserialize("t", &bytes).unwrap(), w);
        let session = SessionWindowedSerde { inner };
        let bytes = session.serialize("t", &w).unwrap().unwrap();
        assert_eq!(bytes, [b"k".as_slice(), &15i64.to_be_bytes(), &5i64.to_be_bytes()].concat());
        assert_eq!(session.deserialize("t", &bytes).unwrap(), w);
        assert_eq!(KeyTime::SessionEnd.of(&bytes), Some(15));
        let err = session.deserialize("t", b"short").unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot deserialize session-windowed key (key, end, start): expected 16 bytes, got 5"
        );
    }
}
