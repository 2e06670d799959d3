//! [`SslMode`]: TLS to PostgreSQL, with libpq's `sslmode` values.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// TLS to PostgreSQL, with libpq's `sslmode` meanings (pgha offers no `allow`: it is read as
/// `prefer`).
///
/// | mode | TLS | certificate checked |
/// |---|---|---|
/// | `disable` | never | – |
/// | `prefer` (default) | if the server offers it, else plain TCP | no |
/// | `require` | always | no; the chain, when `sslrootcert` is set (as libpq with a root certificate) |
/// | `verify-ca` | always | the chain, against `sslrootcert` (required) |
/// | `verify-full` | always | the chain (`sslrootcert`, else the WebPKI roots) and the host name |
///
/// Unlike libpq, a default `~/.postgresql/root.crt` is not read: name the CA with
/// `sslrootcert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS if the server offers it, without checking its certificate (default).
    #[default]
    Prefer,
    /// TLS required; the certificate is checked only against `sslrootcert`, when set.
    Require,
    /// TLS required, certificate chain verified (not the host name).
    VerifyCa,
    /// TLS required, certificate chain and host name verified.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => Self::Disable,
            "prefer" | "allow" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => return Err(Error::config(format!("unknown sslmode {other:?}"))),
        })
    }
}
