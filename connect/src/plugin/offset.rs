//! [`SourceOffset`]: where a source partition resumes after a record.

use std::fmt;

use serde_json::Value as Json;

use super::SourceMap;

/// The most integers [`SourceOffset::integers`] holds.
pub const MAX_OFFSET_INTEGERS: usize = 6;

/// A source offset: the position in a source partition *after* a record,
/// Kafka's `Map<String, ?>` (`{"position": 4096}`, `{"lsn": 23991512}`).
///
/// Any JSON object works ([`SourceOffset::from`] a [`SourceMap`]). A source
/// whose offset is a few named integers — a byte position, a log sequence
/// number, an inode — builds each record's offset with
/// [`SourceOffset::integers`], which allocates nothing: a task returning
/// thousands of records per poll pays for no map per record. Both forms are
/// stored as the same JSON object, and a stored offset comes back as a
/// [`SourceMap`] through [`super::SourceTaskContext::offset`].
///
/// ```
/// use runnel_connect::plugin::{SourceMap, SourceOffset};
///
/// const FIELDS: &[&str] = &["position", "inode"];
/// let offset = SourceOffset::integers(FIELDS, [4096, 17]);
/// assert_eq!(offset.get("position"), Some(serde_json::json!(4096)));
///
/// let map: SourceMap = serde_json::from_str(r#"{"position":4096,"inode":17}"#).unwrap();
/// assert_eq!(offset, SourceOffset::from(map.clone()));
/// assert_eq!(offset.to_map(), map);
/// assert_eq!(offset.to_string(), r#"{"position":4096,"inode":17}"#);
/// ```
#[derive(Clone)]
pub struct SourceOffset(Repr);

#[derive(Clone)]
enum Repr {
    Map(SourceMap),
    /// `names[i]` = `values[i]` for `i < names.len()`.
    Integers {
        names: &'static [&'static str],
        values: [i64; MAX_OFFSET_INTEGERS],
    },
}

impl SourceOffset {
    /// An offset of named integers, in this order (at most
    /// [`MAX_OFFSET_INTEGERS`]; checked when compiled). The names should be
    /// distinct: a repeated name keeps its last value, as in a JSON object.
    pub fn integers<const N: usize>(names: &'static [&'static str], values: [i64; N]) -> SourceOffset {
        const { assert!(N <= MAX_OFFSET_INTEGERS, "a SourceOffset holds at most MAX_OFFSET_INTEGERS integers") };
        assert_eq!(names.len(), N, "SourceOffset::integers: one name per value");
        let mut all = [0; MAX_OFFSET_INTEGERS];
        all[..N].copy_from_slice(&values);
        SourceOffset(Repr::Integers { names, values: all })
    }

    /// The names and values of an offset built by [`SourceOffset::integers`].
    pub(crate) fn as_integers(&self) -> Option<(&'static [&'static str], &[i64])> {
        match &self.0 {
            Repr::Map(_) => None,
            Repr::Integers { names, values } => Some((names, &values[..names.len()])),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<Json> {
        match &self.0 {
            Repr::Map(m) => m.get(key).cloned(),
            Repr::Integers { names, values } => {
                names.iter().rposition(|n| *n == key).map(|i| Json::from(values[i]))
            }
        }
    }

    /// The offset as a JSON object.
    pub fn to_map(&self) -> SourceMap {
        match &self.0 {
            Repr::Map(m) => m.clone(),
            Repr::Integers { names, values } => {
                names.iter().zip(values).map(|(n, v)| (n.to_string(), Json::from(*v))).collect()
            }
        }
    }

    /// Appends the offset as a JSON object to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match &self.0 {
            // Writing into a Vec cannot fail.
            Repr::Map(m) => drop(serde_json::to_writer(&mut *out, m)),
            Repr::Integers { names, values } => {
                out.push(b'{');
                for (i, (name, value)) in names.iter().zip(values).enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    if name.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
                        out.push(b'"');
                        out.extend_from_slice(name.as_bytes());
                        out.push(b'"');
                    } else {
                        drop(serde_json::to_writer(&mut *out, name));
                    }
                    out.push(b':');
                    out.extend_from_slice(itoa::Buffer::new().format(*value).as_bytes());
                }
                out.push(b'}');
            }
        }
    }
}

impl From<SourceMap> for SourceOffset {
    fn from(map: SourceMap) -> SourceOffset {
        SourceOffset(Repr::Map(map))
    }
}

impl PartialEq for SourceOffset {
    fn eq(&self, other: &SourceOffset) -> bool {
        match (&self.0, &other.0) {
            (Repr::Integers { names: a, values: x }, Repr::Integers { names: b, values: y }) if a == b => {
                x == y
            }
            (Repr::Map(a), Repr::Map(b)) => a == b,
            _ => self.to_map() == other.to_map(),
        }
    }
}

impl PartialEq<SourceMap> for SourceOffset {
    fn eq(&self, other: &SourceMap) -> bool {
        match &self.0 {
            Repr::Map(m) => m == other,
            Repr::Integers { .. } => self.to_map() == *other,
        }
    }
}

impl fmt::Debug for SourceOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceOffset({self})")
    }
}

impl fmt::Display for SourceOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.write_json(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn both_forms_write_the_same_json_and_compare_equal() {
        const NAMES: &[&str] = &["position", "in\"ode"];
        let ints = SourceOffset::integers(NAMES, [-5, i64::MAX]);
        let map: SourceMap = json!({"position": -5, "in\"ode": i64::MAX}).as_object().unwrap().clone();
        let mut out = Vec::new();
        ints.write_json(&mut out);
        assert_eq!(serde_json::from_slice::<Json>(&out).unwrap(), Json::Object(map.clone()));
        assert_eq!(ints, SourceOffset::from(map.clone()));
        assert_eq!(ints, map);
        assert_eq!(ints.get("in\"ode"), Some(json!(i64::MAX)));
        assert_eq!(ints.get("other"), None);
        assert_ne!(ints, SourceOffset::integers(NAMES, [-4, i64::MAX]));
        assert_eq!(SourceOffset::integers(&[], []).to_string(), "{}");
    }
}
