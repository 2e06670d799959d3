//! How a member's pool checks a connection before handing it out again.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a pooled connection is checked before it is handed out again: deadpool-postgres's
/// [`RecyclingMethod`](deadpool_postgres::RecyclingMethod), without `Custom` (pgha keeps track
/// of each session's read-only mode, so it must know what a recycle does to the session).
///
/// ```
/// use pgha_client::Recycling;
/// assert_eq!("verified".parse::<Recycling>()?, Recycling::Verified);
/// assert_eq!(Recycling::default(), Recycling::Fast);
/// # Ok::<(), pgha_client::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Recycling {
    /// Only checks that the connection is not closed (default): no round trip.
    #[default]
    Fast,
    /// Also sends an empty query, so that a connection the network dropped without a word is
    /// found before it is used: one round trip per checkout.
    Verified,
    /// Also resets the session (deadpool's `Clean`: `DISCARD ALL` but for prepared statements),
    /// so that a setting one operation left behind never reaches the next: one round trip per
    /// checkout, and one more `SET` for each read that runs on the primary (reads run there
    /// read-only, and the reset undoes that).
    Clean,
}

impl Recycling {
    /// deadpool-postgres's method.
    pub(crate) fn method(self) -> deadpool_postgres::RecyclingMethod {
        match self {
            Self::Fast => deadpool_postgres::RecyclingMethod::Fast,
            Self::Verified => deadpool_postgres::RecyclingMethod::Verified,
            Self::Clean => deadpool_postgres::RecyclingMethod::Clean,
        }
    }

    /// Whether a recycled connection's session is back at its defaults (read-write).
    pub(crate) fn resets_sessions(self) -> bool {
        self == Self::Clean
    }
}

impl FromStr for Recycling {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "fast" => Self::Fast,
            "verified" => Self::Verified,
            "clean" => Self::Clean,
            other => {
                return Err(Error::config(format!(
                    "unknown pool_recycling {other:?} (fast, verified or clean)"
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_parses_as_it_serializes_and_others_are_refused() {
        for r in [Recycling::Fast, Recycling::Verified, Recycling::Clean] {
            let text = serde_json::to_value(r).expect("serializes");
            assert_eq!(text.as_str().and_then(|t| t.parse().ok()), Some(r), "{text}");
        }
        let e = "custom".parse::<Recycling>().expect_err("not offered");
        assert!(e.to_string().contains("fast, verified or clean"), "{e}");
        assert!(Recycling::Clean.resets_sessions() && !Recycling::Verified.resets_sessions());
    }
}
