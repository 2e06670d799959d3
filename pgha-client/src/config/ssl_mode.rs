//! [`SslMode`]: TLS to PostgreSQL, with libpq's `sslmode` values; [`ChannelBinding`], with
//! its `channel_binding` values.

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

/// SCRAM channel binding, with libpq's `channel_binding` values: whether the password
/// exchange is tied to the TLS connection (`SCRAM-SHA-256-PLUS`, `tls-server-end-point`), so that
/// a server in the middle that terminated TLS cannot relay the authentication.
///
/// | mode | channel binding |
/// |---|---|
/// | `disable` | never |
/// | `prefer` (default) | when the connection is TLS and the server offers it |
/// | `require` | always: a connection without it fails (so does a plain-TCP `sslmode`) |
///
/// ```
/// use pgha_client::{ChannelBinding, Client, SslMode};
/// let builder = Client::builder()
///     .patroni(["https://db1:8008"])
///     .ssl_mode(SslMode::VerifyFull)
///     .channel_binding(ChannelBinding::Require);
/// assert_eq!("require".parse::<ChannelBinding>()?, ChannelBinding::Require);
/// # Ok::<(), pgha_client::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ChannelBinding {
    /// Never bind.
    Disable,
    /// Bind when possible (default).
    #[default]
    Prefer,
    /// Bind, or fail.
    Require,
}

impl FromStr for ChannelBinding {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            other => return Err(Error::config(format!("unknown channel_binding {other:?}"))),
        })
    }
}
