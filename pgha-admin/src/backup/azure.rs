//! A pgBackRest Azure Blob Storage repository configuration from typed options.

use pgha_client::Secret;

use super::repository::{common_options, to_ini, Common};
use super::UriStyle;
use crate::error::Result;

/// How pgBackRest authorizes to Azure (`repoN-azure-key-type`, `repoN-azure-key`).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AzureKey {
    /// The storage account's shared key (`shared`).
    Shared(Secret),
    /// A shared access signature (`sas`).
    Sas(Secret),
}

impl std::fmt::Debug for AzureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, key) = match self {
            Self::Shared(k) => ("Shared", k),
            Self::Sas(k) => ("Sas", k),
        };
        f.debug_tuple(kind).field(key).finish()
    }
}

/// An Azure Blob Storage repository (`repoN-type=azure`).
///
/// ```
/// use pgha_admin::backup::{AzureKey, AzureRepository};
///
/// let repo = AzureRepository::new("myaccount", "backups", AzureKey::Shared("YXpLZXk=".into()));
/// let ini = repo.to_ini("pg-ha", &["/var/lib/postgresql/15/main"])?;
/// assert!(ini.contains("repo1-azure-account=myaccount\n"));
/// assert!(ini.contains("repo1-azure-container=backups\n"));
/// assert!(!format!("{repo:?}").contains("YXpLZXk")); // the key never shows in Debug
/// # Ok::<(), pgha_admin::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AzureRepository {
    common: Common,
    account: String,
    container: String,
    endpoint: Option<String>,
    uri_style: UriStyle,
    key: AzureKey,
}

common_options!(AzureRepository);

impl AzureRepository {
    /// Repository 1 in `container` of storage `account`, authorized by `key`.
    pub fn new(account: impl Into<String>, container: impl Into<String>, key: AzureKey) -> Self {
        Self {
            common: Common::default(),
            account: account.into(),
            container: container.into(),
            endpoint: None,
            uri_style: UriStyle::Host,
            key,
        }
    }

    /// Another endpoint than `blob.core.windows.net` (host, optionally `:port`; a sovereign
    /// cloud, or Azurite with [`UriStyle::Path`]).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// URI style: `account.endpoint` ([`UriStyle::Host`], the default) or the account in the
    /// path ([`UriStyle::Path`]: an IP address or Azurite as the endpoint).
    pub fn uri_style(mut self, style: UriStyle) -> Self {
        self.uri_style = style;
        self
    }

    /// The `pgbackrest.conf` text (see [`S3Repository::to_ini`](super::S3Repository::to_ini)).
    pub fn to_ini(&self, stanza: &str, pg_paths: &[&str]) -> Result<String> {
        let (kind, key) = match &self.key {
            AzureKey::Shared(k) => ("shared", k),
            AzureKey::Sas(k) => ("sas", k),
        };
        let mut options = vec![
            ("azure-account", self.account.as_str()),
            ("azure-container", self.container.as_str()),
        ];
        if let Some(e) = &self.endpoint {
            options.push(("azure-endpoint", e.as_str()));
        }
        if self.uri_style == UriStyle::Path {
            options.push(("azure-uri-style", "path"));
        }
        options.extend([("azure-key-type", kind), ("azure-key", key.expose())]);
        to_ini(&self.common, "Azure", "azure", &options, stanza, pg_paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_key_or_signature_and_no_injection() {
        let ini = AzureRepository::new("acct", "c", AzureKey::Sas("sv=2024&sig=abc".into()))
            .endpoint("azurite.local:10000")
            .uri_style(UriStyle::Path)
            .verify_tls(false)
            .retention_full(4)
            .to_ini("main", &["/data/a", "/data/b"])
            .expect("valid");
        for expected in [
            "repo1-type=azure\n",
            "repo1-azure-account=acct\n",
            "repo1-azure-endpoint=azurite.local:10000\n",
            "repo1-azure-uri-style=path\n",
            "repo1-azure-key-type=sas\n",
            "repo1-azure-key=sv=2024&sig=abc\n",
            "repo1-storage-verify-tls=n\n",
            "repo1-retention-full=4\n",
            "[main]\npg1-path=/data/a\npg2-path=/data/b\n",
        ] {
            assert!(ini.contains(expected), "{expected} missing in:\n{ini}");
        }
        let bad = AzureRepository::new("acct", "c", AzureKey::Shared("k\nrepo1-path=/".into()));
        assert!(bad.to_ini("main", &[]).is_err());
        assert!(!format!("{bad:?}").contains("repo1-path"), "{bad:?}");
        assert!(AzureRepository::new("acct", "c", AzureKey::Shared("k".into()))
            .path("rel")
            .to_ini("main", &[])
            .is_err());
    }
}
