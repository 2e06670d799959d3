//! A pgBackRest Google Cloud Storage repository configuration from typed options.

use pgha_client::Secret;

use super::repository::{common_options, to_ini, Common};
use crate::error::Result;

/// How pgBackRest authorizes to GCS (`repoN-gcs-key-type`).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GcsKey {
    /// The instance's service account (`auto`).
    Auto,
    /// A service account key file on the host that runs pgBackRest (`service`).
    Service(String),
    /// A bearer token (`token`; for local tests against a fake GCS).
    Token(Secret),
}

impl std::fmt::Debug for GcsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("Auto"),
            Self::Service(path) => f.debug_tuple("Service").field(path).finish(),
            Self::Token(token) => f.debug_tuple("Token").field(token).finish(),
        }
    }
}

/// A GCS repository (`repoN-type=gcs`).
///
/// ```
/// use pgha_admin::backup::{GcsKey, GcsRepository};
///
/// let repo = GcsRepository::new("my-backups", GcsKey::Service("/etc/pgbackrest/gcs.json".into()))
///     .retention_full(2);
/// let ini = repo.to_ini("pg-ha", &["/var/lib/postgresql/15/main"])?;
/// assert!(ini.contains("repo1-gcs-bucket=my-backups\n"));
/// assert!(ini.contains("repo1-gcs-key=/etc/pgbackrest/gcs.json\n"));
/// # Ok::<(), pgha_admin::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GcsRepository {
    common: Common,
    bucket: String,
    endpoint: Option<String>,
    key: GcsKey,
}

common_options!(GcsRepository);

impl GcsRepository {
    /// Repository 1 in `bucket`, authorized by `key`.
    pub fn new(bucket: impl Into<String>, key: GcsKey) -> Self {
        Self {
            common: Common::default(),
            bucket: bucket.into(),
            endpoint: None,
            key,
        }
    }

    /// Another endpoint than `storage.googleapis.com` (host, optionally `:port`).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The `pgbackrest.conf` text (see [`S3Repository::to_ini`](super::S3Repository::to_ini)).
    pub fn to_ini(&self, stanza: &str, pg_paths: &[&str]) -> Result<String> {
        let mut options = vec![("gcs-bucket", self.bucket.as_str())];
        if let Some(e) = &self.endpoint {
            options.push(("gcs-endpoint", e.as_str()));
        }
        match &self.key {
            GcsKey::Auto => options.push(("gcs-key-type", "auto")),
            GcsKey::Service(path) => options.extend([("gcs-key-type", "service"), ("gcs-key", path.as_str())]),
            GcsKey::Token(token) => options.extend([("gcs-key-type", "token"), ("gcs-key", token.expose())]),
        }
        to_ini(&self.common, "GCS", "gcs", &options, stanza, pg_paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_type_and_no_secret_in_debug() {
        let ini = GcsRepository::new("b", GcsKey::Auto)
            .repo(3)
            .endpoint("gcs.local:4443")
            .encrypt("pass")
            .to_ini("main", &["/data"])
            .expect("valid");
        for expected in [
            "repo3-type=gcs\n",
            "repo3-gcs-bucket=b\n",
            "repo3-gcs-endpoint=gcs.local:4443\n",
            "repo3-gcs-key-type=auto\n",
            "repo3-cipher-type=aes-256-cbc\n",
            "[main]\npg1-path=/data\n",
        ] {
            assert!(ini.contains(expected), "{expected} missing in:\n{ini}");
        }
        assert!(!ini.contains("repo3-gcs-key="), "{ini}");
        let token = GcsRepository::new("b", GcsKey::Token("s3cr3t-token".into()));
        assert!(token
            .to_ini("main", &[])
            .expect("valid")
            .contains("repo1-gcs-key=s3cr3t-token\n"));
        assert!(!format!("{token:?}").contains("s3cr3t"), "{token:?}");
        assert!(GcsRepository::new("b\n[global]", GcsKey::Auto)
            .to_ini("main", &[])
            .is_err());
        assert!(GcsRepository::new("b", GcsKey::Service(String::new()))
            .to_ini("main", &[])
            .is_err());
    }
}
