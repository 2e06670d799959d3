//! A pgBackRest S3 repository configuration from typed options.

use std::fmt;

use pgha_client::Secret;

use super::repository::{common_options, to_ini, Common};
use crate::error::{Error, Result};

/// URI style of an S3 or Azure endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UriStyle {
    /// `bucket.endpoint` / `account.endpoint` (the AWS and Azure default).
    #[default]
    Host,
    /// `endpoint/bucket` / the account in the path (MinIO, most S3-compatible stores, Azurite).
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
    common: Common,
    bucket: String,
    region: String,
    endpoint: String,
    key: Option<String>,
    key_secret: Option<Secret>,
    uri_style: UriStyle,
}

impl fmt::Debug for S3Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Repository")
            .field("common", &self.common)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("key", &self.key)
            .field("key_secret", &self.key_secret)
            .field("uri_style", &self.uri_style)
            .finish()
    }
}

common_options!(S3Repository);

impl S3Repository {
    /// Repository 1 in `bucket` at `endpoint` (host name, optionally `:port`; HTTPS).
    pub fn new(bucket: impl Into<String>, region: impl Into<String>, endpoint: impl Into<String>) -> Self {
        Self {
            common: Common::default(),
            bucket: bucket.into(),
            region: region.into(),
            endpoint: endpoint.into(),
            key: None,
            key_secret: None,
            uri_style: UriStyle::Host,
        }
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

    /// The `pgbackrest.conf` text: a `[global]` section with the repository and a
    /// `[<stanza>]` section with one `pgN-path` per data directory. The file holds secrets:
    /// write it with mode 0640, owned by the PostgreSQL user.
    pub fn to_ini(&self, stanza: &str, pg_paths: &[&str]) -> Result<String> {
        if self.endpoint.starts_with("http://") {
            return Err(Error::usage(
                "pgBackRest before 2.58 talks to S3 over HTTPS only; give the endpoint without http://",
            ));
        }
        let mut options = vec![
            ("s3-bucket", self.bucket.as_str()),
            ("s3-region", self.region.as_str()),
            ("s3-endpoint", self.endpoint.trim_start_matches("https://")),
            (
                "s3-uri-style",
                match self.uri_style {
                    UriStyle::Host => "host",
                    UriStyle::Path => "path",
                },
            ),
        ];
        match (&self.key, &self.key_secret) {
            (Some(k), Some(secret)) => {
                options.extend([
                    ("s3-key-type", "shared"),
                    ("s3-key", k.as_str()),
                    ("s3-key-secret", secret.expose()),
                ]);
            }
            _ => options.push(("s3-key-type", "auto")),
        }
        to_ini(&self.common, "S3", "s3", &options, stanza, pg_paths)
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
