//! A pgBackRest S3 repository configuration from typed options.

use std::fmt;
use std::fmt::Write as _;

use pgha_client::Secret;

use crate::error::{Error, Result};

/// URI style of the S3 endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UriStyle {
    /// `bucket.endpoint` (AWS default).
    #[default]
    Host,
    /// `endpoint/bucket` (MinIO and most S3-compatible stores).
    Path,
}

/// An S3 repository (`repoN-type=s3`) for pgBackRest 2.45+.
///
/// ```
/// use pgha_admin::backup::S3Repository;
///
/// let repo = S3Repository::new("my-backups", "us-east-1", "s3.us-east-1.amazonaws.com")
///     .path("/pgbackrest")
///     .credentials("AKIAEXAMPLE", "wJalrXUtnFEMI/K7MDENG")
///     .retention_full(2);
/// let ini = repo.to_ini("pg-ha", &["/var/lib/postgresql/15/main"])?;
/// assert!(ini.contains("repo1-s3-bucket=my-backups"));
/// assert!(!format!("{repo:?}").contains("wJalr")); // the secret never shows in Debug
/// # Ok::<(), pgha_admin::Error>(())
/// ```
#[derive(Clone)]
pub struct S3Repository {
    repo: u8,
    bucket: String,
    region: String,
    endpoint: String,
    path: String,
    key: Option<String>,
    key_secret: Option<Secret>,
    uri_style: UriStyle,
    verify_tls: bool,
    retention_full: Option<u32>,
    cipher_pass: Option<Secret>,
}

impl fmt::Debug for S3Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Repository")
            .field("repo", &self.repo)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("path", &self.path)
            .field("key", &self.key)
            .field("key_secret", &self.key_secret)
            .field("uri_style", &self.uri_style)
            .field("verify_tls", &self.verify_tls)
            .field("retention_full", &self.retention_full)
            .field("cipher_pass", &self.cipher_pass)
            .finish()
    }
}

impl S3Repository {
    /// Repository 1 in `bucket` at `endpoint` (host name, optionally `:port`; HTTPS).
    pub fn new(bucket: impl Into<String>, region: impl Into<String>, endpoint: impl Into<String>) -> Self {
        Self {
            repo: 1,
            bucket: bucket.into(),
            region: region.into(),
            endpoint: endpoint.into(),
            path: "/pgbackrest".into(),
            key: None,
            key_secret: None,
            uri_style: UriStyle::Host,
            verify_tls: true,
            retention_full: None,
            cipher_pass: None,
        }
    }

    /// Repository number (1–256; default 1).
    pub fn repo(mut self, n: u8) -> Self {
        self.repo = n;
        self
    }

    /// Path inside the bucket (default `/pgbackrest`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Shared access key (`repoN-s3-key-type=shared`). Without it, credentials come from the
    /// instance role (`repoN-s3-key-type=auto`).
    pub fn credentials(mut self, key: impl Into<String>, secret: impl Into<Secret>) -> Self {
        self.key = Some(key.into());
        self.key_secret = Some(secret.into());
        self
    }

    /// URI style (MinIO wants [`UriStyle::Path`]).
    pub fn uri_style(mut self, style: UriStyle) -> Self {
        self.uri_style = style;
        self
    }

    /// Verify the endpoint's TLS certificate (default yes; turn off only for tests).
    pub fn verify_tls(mut self, verify: bool) -> Self {
        self.verify_tls = verify;
        self
    }

    /// Full backups to keep (pgBackRest warns when unset).
    pub fn retention_full(mut self, n: u32) -> Self {
        self.retention_full = Some(n);
        self
    }

    /// Encrypt the repository (aes-256-cbc) with this passphrase.
    pub fn encrypt(mut self, passphrase: impl Into<Secret>) -> Self {
        self.cipher_pass = Some(passphrase.into());
        self
    }

    fn validate(&self) -> Result<()> {
        let line_safe = |name: &str, v: &str| {
            if v.is_empty() || v.contains(['\n', '\r']) {
                Err(Error::usage(format!("S3 {name} must be one non-empty line")))
            } else {
                Ok(())
            }
        };
        line_safe("bucket", &self.bucket)?;
        line_safe("region", &self.region)?;
        line_safe("endpoint", &self.endpoint)?;
        line_safe("path", &self.path)?;
        if self.repo == 0 {
            return Err(Error::usage("repository numbers start at 1"));
        }
        if self.endpoint.starts_with("http://") {
            return Err(Error::usage(
                "pgBackRest before 2.58 talks to S3 over HTTPS only; give the endpoint without http://",
            ));
        }
        if !self.path.starts_with('/') {
            return Err(Error::usage("the repository path must be absolute (start with /)"));
        }
        if let Some(k) = &self.key {
            line_safe("key", k)?;
        }
        for s in [&self.key_secret, &self.cipher_pass].into_iter().flatten() {
            line_safe("secret", s.expose())?;
        }
        Ok(())
    }

    /// The `pgbackrest.conf` text: a `[global]` section with the repository and a
    /// `[<stanza>]` section with one `pgN-path` per data directory. The file holds secrets:
    /// write it with mode 0640, owned by the PostgreSQL user.
    pub fn to_ini(&self, stanza: &str, pg_paths: &[&str]) -> Result<String> {
        self.validate()?;
        if stanza.is_empty() || stanza.contains(['\n', '[', ']']) {
            return Err(Error::usage(format!("invalid stanza name {stanza:?}")));
        }
        let r = format!("repo{}", self.repo);
        let mut s = String::from("[global]\n");
        let mut line = |k: &str, v: &str| {
            let _ = writeln!(s, "{r}-{k}={v}");
        };
        line("type", "s3");
        line("path", &self.path);
        line("s3-bucket", &self.bucket);
        line("s3-region", &self.region);
        line("s3-endpoint", self.endpoint.trim_start_matches("https://"));
        line(
            "s3-uri-style",
            match self.uri_style {
                UriStyle::Host => "host",
                UriStyle::Path => "path",
            },
        );
        match (&self.key, &self.key_secret) {
            (Some(k), Some(secret)) => {
                line("s3-key-type", "shared");
                line("s3-key", k);
                line("s3-key-secret", secret.expose());
            }
            _ => line("s3-key-type", "auto"),
        }
        if !self.verify_tls {
            line("storage-verify-tls", "n");
        }
        if let Some(n) = self.retention_full {
            line("retention-full", &n.to_string());
        }
        if let Some(pass) = &self.cipher_pass {
            line("cipher-type", "aes-256-cbc");
            line("cipher-pass", pass.expose());
        }
        let _ = writeln!(s, "\n[{stanza}]");
        for (i, p) in pg_paths.iter().enumerate() {
            if p.contains('\n') {
                return Err(Error::usage("a data directory path must be one line"));
            }
            let _ = writeln!(s, "pg{}-path={p}", i + 1);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minio_style_repository() {
        let ini = S3Repository::new("backups", "us-east-1", "https://minio.local:9000")
            .repo(2)
            .uri_style(UriStyle::Path)
            .verify_tls(false)
            .encrypt("passphrase")
            .to_ini("main", &["/data/a", "/data/b"])
            .expect("valid");
        for expected in [
            "repo2-type=s3",
            "repo2-s3-endpoint=minio.local:9000",
            "repo2-s3-uri-style=path",
            "repo2-s3-key-type=auto",
            "repo2-storage-verify-tls=n",
            "repo2-cipher-type=aes-256-cbc",
            "[main]\npg1-path=/data/a\npg2-path=/data/b\n",
        ] {
            assert!(ini.contains(expected), "{expected} missing in:\n{ini}");
        }
    }

    #[test]
    fn injection_through_a_value_is_refused() {
        let e = S3Repository::new("b\n[global]\nrepo1-path=/", "r", "e")
            .to_ini("main", &[])
            .expect_err("must be refused");
        assert_eq!(e.kind(), crate::ErrorKind::Usage);
        assert!(S3Repository::new("b", "r", "http://insecure")
            .to_ini("main", &[])
            .is_err());
        assert!(S3Repository::new("b", "r", "e").to_ini("ma]in", &[]).is_err());
    }
}
