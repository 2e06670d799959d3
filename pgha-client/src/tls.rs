//! TLS for PostgreSQL connections (rustls) and the HTTP client for Patroni.

use std::sync::Arc;

use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{Settings, SslMode};
use crate::error::{Error, Result};

fn read_pem_certs(path: &std::path::Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::config(format!("CA file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "CA file {} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The TLS connector used for every PostgreSQL connection.
pub(crate) fn postgres_tls(settings: &Settings) -> Result<MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    match &settings.ssl_ca_file {
        Some(path) => {
            for cert in read_pem_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| Error::config(format!("CA file {}: {e}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// tokio-postgres configuration for one member.
pub(crate) fn postgres_config(settings: &Settings, host: &str, port: u16, purpose: &str) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(host)
        .port(port)
        .user(&settings.user)
        .dbname(&settings.dbname)
        .application_name(if purpose.is_empty() {
            settings.application_name.clone()
        } else {
            format!("{} ({purpose})", settings.application_name)
        })
        .connect_timeout(settings.connect_timeout)
        .tcp_user_timeout(settings.tcp_user_timeout)
        .keepalives(true)
        .keepalives_idle(settings.tcp_user_timeout)
        .keepalives_interval((settings.tcp_user_timeout / 3).max(std::time::Duration::from_secs(1)))
        .keepalives_retries(3)
        .ssl_mode(match settings.ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
    if let Some(p) = &settings.password {
        c.password(p.expose());
    }
    c
}

/// The HTTP client for Patroni: no redirects, timeouts, optional custom CA.
pub(crate) fn patroni_http(settings: &Settings) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.patroni_timeout)
        .connect_timeout(settings.patroni_timeout)
        .user_agent(concat!("pgha-client/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &settings.patroni_ca_file {
        for cert in read_pem_certs(path)? {
            let cert = reqwest::Certificate::from_der(&cert)
                .map_err(|e| Error::config(format!("CA file {}: {e}", path.display())))?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| Error::config(format!("HTTP client: {e}")))
}
