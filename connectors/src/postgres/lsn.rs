//! [`Lsn`]: a position in PostgreSQL's write-ahead log.

use std::fmt;
use std::str::FromStr;

/// A WAL position (`pg_lsn`): a 64-bit byte offset, written by PostgreSQL
/// as two hexadecimal halves, `16/B374D848`. Debezium stores LSNs as plain
/// integers in offsets and events; this type converts between the two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// `0/0`: no position (PostgreSQL's `InvalidXLogRecPtr`).
    pub const ZERO: Lsn = Lsn(0);

    /// The LSN as Debezium's `int64`.
    pub fn as_i64(self) -> i64 {
        self.0 as i64
    }

    /// From Debezium's `int64` (negative values are not LSNs).
    pub fn from_i64(value: i64) -> Option<Lsn> {
        u64::try_from(value).ok().map(Lsn)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// An LSN that is not `hex/hex`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an LSN (expected two hexadecimal halves like 16/B374D848): {0:?}")]
pub struct ParseLsnError(String);

impl FromStr for Lsn {
    type Err = ParseLsnError;

    fn from_str(s: &str) -> Result<Lsn, ParseLsnError> {
        let bad = || ParseLsnError(s.to_string());
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let half = |h: &str| {
            if h.is_empty() || h.len() > 8 {
                return Err(bad());
            }
            u32::from_str_radix(h, 16).map_err(|_| bad())
        };
        Ok(Lsn((u64::from(half(hi)?) << 32) | u64::from(half(lo)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_print_and_parse_as_postgres_writes_them() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn::ZERO);
        assert_eq!("0/0000A0".parse::<Lsn>().unwrap(), Lsn(0xA0));
        assert_eq!(Lsn(0x1_0000_0000).to_string(), "1/0");
        for bad in ["", "16", "16/", "/1", "G/1", "1/123456789", "1/2/3"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?}");
        }
    }
}
