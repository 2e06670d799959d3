//! Read-your-writes tokens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::patroni::Lsn;

/// A position in the primary's WAL right after a write committed, returned by
/// [`Op::run_with_token`](crate::Op::run_with_token). A read that carries it
/// ([`Op::after`](crate::Op::after)) runs on a standby that has replayed that position, or
/// waits briefly for one, or runs on the primary — so it always sees the write.
///
/// Tokens are plain values: print them (`pgha1:<timeline>:<lsn>`), put them in a cookie or a
/// message, and parse them in another process. Several tokens combine with [`WalToken::max`].
///
/// ```
/// use pgha_client::WalToken;
/// let t: WalToken = "pgha1:3:0/5000268".parse()?;
/// assert_eq!(t.to_string(), "pgha1:3:0/5000268");
/// assert_eq!(serde_json::to_string(&t)?, "\"pgha1:3:0/5000268\"");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WalToken {
    /// Timeline of the primary that acknowledged the write.
    pub timeline: u64,
    /// `pg_current_wal_insert_lsn()` on that primary after the commit. If that read fails (the
    /// connection was lost right after COMMIT), the primary's position read afterwards: after a
    /// failover in between, a position on the new primary's timeline — a read that carries it
    /// sees everything that survived the failover, and a write of asynchronous replication that
    /// did not survive is simply not there.
    pub lsn: Lsn,
}

impl WalToken {
    /// The token of a write that committed but whose position could not be read afterwards
    /// (the connection was lost right after COMMIT and no primary answered within the
    /// operation's deadline). No standby can satisfy it: reads that carry it run on the primary.
    pub const UNKNOWN: WalToken = WalToken {
        timeline: 0,
        lsn: Lsn(u64::MAX),
    };

    /// True for [`WalToken::UNKNOWN`] (and any combination with it).
    pub fn is_unknown(&self) -> bool {
        self.lsn == Lsn(u64::MAX)
    }

    /// The later of two tokens (a read after both writes must see both).
    pub fn max(self, other: Self) -> Self {
        if (other.lsn, other.timeline) > (self.lsn, self.timeline) {
            other
        } else {
            self
        }
    }
}

/// A string that is not a `pgha1:<timeline>:<lsn>` token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid read-your-writes token {0:?} (expected pgha1:<timeline>:<X/Y>)")]
pub struct TokenParseError(String);

impl FromStr for WalToken {
    type Err = TokenParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TokenParseError(s.chars().take(64).collect());
        let rest = s.strip_prefix("pgha1:").ok_or_else(err)?;
        let (tl, lsn) = rest.split_once(':').ok_or_else(err)?;
        Ok(Self {
            timeline: tl.parse().map_err(|_| err())?,
            lsn: lsn.parse().map_err(|_| err())?,
        })
    }
}

impl fmt::Display for WalToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pgha1:{}:{}", self.timeline, self.lsn)
    }
}

impl Serialize for WalToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WalToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let t: WalToken = "pgha1:2:16/B374D848".parse().expect("valid");
        assert_eq!(t.timeline, 2);
        assert_eq!(t.lsn, Lsn(0x16_B374_D848));
        assert_eq!(t.to_string().parse::<WalToken>(), Ok(t));
        for bad in [
            "",
            "pgha1:",
            "pgha1:x:0/1",
            "pgha1:1:01",
            "pgha2:1:0/1",
            "pgha1:1:0/1/2",
        ] {
            assert!(bad.parse::<WalToken>().is_err(), "{bad}");
        }
        let later = WalToken {
            timeline: 3,
            lsn: Lsn(1),
        };
        assert_eq!(t.max(later), t);
        assert_eq!(later.max(t), t);
    }
}
