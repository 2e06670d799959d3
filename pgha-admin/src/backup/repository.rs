//! What every pgBackRest repository configuration shares — its number, path, retention,
//! encryption and TLS verification — and the `pgbackrest.conf` text written from it, for the
//! object stores of [`S3Repository`](super::S3Repository), [`GcsRepository`](super::GcsRepository)
//! and [`AzureRepository`](super::AzureRepository).

use std::fmt::Write as _;

use pgha_client::Secret;

use crate::error::{Error, Result};

/// The options every repository has.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    pub(crate) repo: u8,
    pub(crate) path: String,
    pub(crate) verify_tls: bool,
    pub(crate) retention_full: Option<u32>,
    pub(crate) cipher_pass: Option<Secret>,
}

impl Default for Common {
    fn default() -> Self {
        Self {
            repo: 1,
            path: "/pgbackrest".into(),
            verify_tls: true,
            retention_full: None,
            cipher_pass: None,
        }
    }
}

/// Refuses what would break out of its line of the file: an empty value or a line break.
pub(crate) fn one_line(store: &str, name: &str, v: &str) -> Result<()> {
    if v.is_empty() || v.contains(['\n', '\r']) {
        Err(Error::usage(format!("{store} {name} must be one non-empty line")))
    } else {
        Ok(())
    }
}

/// The `pgbackrest.conf` text: a `[global]` section with `repoN-type=<kind>`, the path, the
/// store's own options (`(name without "repoN-", value)`), TLS verification, retention and
/// encryption, then a `[<stanza>]` section with one `pgN-path` per data directory.
pub(crate) fn to_ini(
    common: &Common,
    store: &str,
    kind: &str,
    options: &[(&str, &str)],
    stanza: &str,
    pg_paths: &[&str],
) -> Result<String> {
    if common.repo == 0 {
        return Err(Error::usage("repository numbers start at 1"));
    }
    one_line(store, "path", &common.path)?;
    if !common.path.starts_with('/') {
        return Err(Error::usage("the repository path must be absolute (start with /)"));
    }
    if let Some(pass) = &common.cipher_pass {
        one_line(store, "passphrase", pass.expose())?;
    }
    for (name, value) in options {
        one_line(store, name, value)?;
    }
    if stanza.is_empty() || stanza.contains(['\n', '\r', '[', ']']) {
        return Err(Error::usage(format!("invalid stanza name {stanza:?}")));
    }
    let r = format!("repo{}", common.repo);
    let mut s = String::from("[global]\n");
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(s, "{r}-{k}={v}");
    };
    line("type", kind);
    line("path", &common.path);
    for (name, value) in options {
        line(name, value);
    }
    if !common.verify_tls {
        line("storage-verify-tls", "n");
    }
    if let Some(n) = common.retention_full {
        line("retention-full", &n.to_string());
    }
    if let Some(pass) = &common.cipher_pass {
        line("cipher-type", "aes-256-cbc");
        line("cipher-pass", pass.expose());
    }
    let _ = writeln!(s, "\n[{stanza}]");
    for (i, p) in pg_paths.iter().enumerate() {
        if p.contains(['\n', '\r']) {
            return Err(Error::usage("a data directory path must be one line"));
        }
        let _ = writeln!(s, "pg{}-path={p}", i + 1);
    }
    Ok(s)
}

/// The builder methods every repository type has, over its `common` field.
macro_rules! common_options {
    ($t:ty) => {
        impl $t {
            /// Repository number (1–256; default 1).
            pub fn repo(mut self, n: u8) -> Self {
                self.common.repo = n;
                self
            }

            /// Path inside the bucket or container (default `/pgbackrest`).
            pub fn path(mut self, path: impl Into<String>) -> Self {
                self.common.path = path.into();
                self
            }

            /// Verify the endpoint's TLS certificate (default yes; turn off only for tests).
            pub fn verify_tls(mut self, verify: bool) -> Self {
                self.common.verify_tls = verify;
                self
            }

            /// Full backups to keep (pgBackRest warns when unset).
            pub fn retention_full(mut self, n: u32) -> Self {
                self.common.retention_full = Some(n);
                self
            }

            /// Encrypt the repository (aes-256-cbc) with this passphrase.
            pub fn encrypt(mut self, passphrase: impl Into<pgha_client::Secret>) -> Self {
                self.common.cipher_pass = Some(passphrase.into());
                self
            }
        }
    };
}
pub(crate) use common_options;
