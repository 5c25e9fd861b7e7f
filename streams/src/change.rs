//! [`Change`]: what flows between table nodes, and its serde for
//! repartition topics.

use std::sync::Arc;

use crate::serdes::{Serde, SerdeError};

/// An update of one key of a table: the new value and the value it
/// replaces (`None` = absent). Table nodes forward changes so downstream
/// aggregations can subtract the old value (Kafka's `Change<V>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<V> {
    /// The value after the update; `None` when the key was deleted.
    pub new: Option<V>,
    /// The value before the update; `None` when the key was absent.
    pub old: Option<V>,
}

impl<V> Change<V> {
    /// An update from `old` to `new`.
    pub fn new(new: Option<V>, old: Option<V>) -> Self {
        Change { new, old }
    }
}

/// Encodes a [`Change`] for a repartition topic.
///
/// # Layout
///
/// ```text
/// byte 0      flags: bit 0 = new value present, bit 1 = old value present
/// if both:    4-byte big-endian length N of the new value, N bytes new value, old value (rest)
/// if one:     that value's bytes (rest)
/// ```
///
/// A change with neither value is never written (table nodes drop it).
pub(crate) struct ChangeSerde<V>(pub(crate) Arc<dyn Serde<V>>);

const NEW: u8 = 1;
const OLD: u8 = 2;

impl<V: 'static> Serde<Change<V>> for ChangeSerde<V> {
    fn serialize_into(&self, topic: &str, change: &Change<V>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        let flags = (u8::from(change.new.is_some()) * NEW) | (u8::from(change.old.is_some()) * OLD);
        out.push(flags);
        if let Some(new) = &change.new {
            if change.old.is_some() {
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                self.0.serialize_into(topic, new, out)?;
                let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
                out[at..at + 4].copy_from_slice(&len.to_be_bytes());
            } else {
                self.0.serialize_into(topic, new, out)?;
            }
        }
        if let Some(old) = &change.old {
            self.0.serialize_into(topic, old, out)?;
        }
        Ok(())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Change<V>, SerdeError> {
        let short = |expected| SerdeError::Length { type_name: "Change", expected, actual: bytes.len() };
        let (&flags, rest) = bytes.split_first().ok_or_else(|| short(1))?;
        match flags {
            NEW => Ok(Change { new: Some(self.0.deserialize(topic, rest)?), old: None }),
            OLD => Ok(Change { new: None, old: Some(self.0.deserialize(topic, rest)?) }),
            f if f == NEW | OLD => {
                let len = rest.get(..4).ok_or_else(|| short(5))?;
                let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
                let new = rest.get(4..4 + len).ok_or_else(|| short(5 + len))?;
                let old = &rest[4 + len..];
                Ok(Change {
                    new: Some(self.0.deserialize(topic, new)?),
                    old: Some(self.0.deserialize(topic, old)?),
                })
            }
            _ => Err(SerdeError::Length {
                type_name: "Change (bad flags byte)",
                expected: 1,
                actual: bytes.len(),
            }),
        }
    }
}

/// `Option<V>` through a shared `V` serde, `None` as null: how a table
/// source reads values, tombstones included.
pub(crate) struct OptionalSerde<V>(pub(crate) Arc<dyn Serde<V>>);

impl<V: 'static> Serde<Option<V>> for OptionalSerde<V> {
    fn serialize_into(&self, topic: &str, value: &Option<V>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        match value {
            Some(value) => self.0.serialize_into(topic, value, out),
            None => Ok(()),
        }
    }
    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Option<V>, SerdeError> {
        self.0.deserialize(topic, bytes).map(Some)
    }
    fn is_null(&self, value: &Option<V>) -> bool {
        value.is_none()
    }
    fn deserialize_null(&self, _topic: &str) -> Result<Option<V>, SerdeError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Serdes;

    #[test]
    fn change_serde_round_trips_every_shape() {
        let serde = ChangeSerde::<String>(Arc::new(Serdes::string()));
        for change in [
            Change::new(Some("new".to_string()), None),
            Change::new(None, Some("old".to_string())),
            Change::new(Some("n".to_string()), Some("old value".to_string())),
            Change::new(Some(String::new()), Some(String::new())),
        ] {
            let bytes = serde.serialize("t", &change).unwrap().unwrap();
            assert_eq!(serde.deserialize("t", &bytes).unwrap(), change);
        }
        let both = serde.serialize("t", &Change::new(Some("ab".to_string()), Some("c".to_string()))).unwrap();
        assert_eq!(both.unwrap(), [3, 0, 0, 0, 2, b'a', b'b', b'c']);
        assert!(serde.deserialize("t", &[3, 0, 0, 0, 9, b'a']).is_err());
        assert!(serde.deserialize("t", &[]).is_err());
    }
}
