//! [`Secret`]: a password that `Debug` never prints.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// A password or other secret: never printed by `Debug` or `Display`, and serialized as
/// `"<redacted>"` (a configuration written out — to a log, a status page — never carries it).
///
/// ```
/// let config: pgha_client::ClientConfig = serde_json::from_str(r#"{
///     "url": "postgresql://app:opensesame@db1/app", "password": "hunter2", "etcd_password": "sesame"
/// }"#)?;
/// let written = serde_json::to_string(&config)?;
/// assert!(!written.contains("hunter2") && !written.contains("sesame"));
/// assert!(written.contains("<redacted>"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub(super) String);

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself (only for handing it to a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}
