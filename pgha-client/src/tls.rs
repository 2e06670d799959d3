//! TLS for PostgreSQL connections (rustls) and the HTTP client for Patroni.

use std::sync::Arc;

use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{ChannelBinding, Settings, SslMode};
use crate::error::{Error, Result};

fn read_pem_certs(path: &std::path::Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::config(format!("certificate file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "certificate file {} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The TLS connector used for every PostgreSQL connection, verifying what libpq's `sslmode`
/// verifies: nothing for `prefer` and `require` (unless `sslrootcert` is set, which makes
/// `require` check the chain, as libpq does with a root certificate file), the chain for
/// `verify-ca` (which needs `sslrootcert`), the chain and the host name for `verify-full` —
/// rustls's own verifier, the others the lenient [`Verifier`] around it.
pub(crate) fn postgres_tls(settings: &Settings) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("TLS: {e}")))?;
    let chain_only = |roots| -> Result<Arc<Verifier>> {
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| Error::config(format!("TLS: {e}")))?;
        Ok(Arc::new(Verifier {
            webpki: Some(webpki),
            provider: provider.clone(),
        }))
    };
    let config = match (settings.ssl_mode, &settings.ssl_ca_file) {
        (SslMode::VerifyFull, _) => builder.with_root_certificates(root_store(settings)?),
        (SslMode::VerifyCa, None) => {
            // Checking the chain but not the name against public roots would accept any publicly
            // issued certificate for any host; libpq refuses verify-ca without a root file too.
            return Err(Error::config(
                "sslmode verify-ca needs sslrootcert (the CA to verify against)",
            ));
        }
        (SslMode::VerifyCa, Some(_)) | (SslMode::Require, Some(_)) => builder
            .dangerous()
            .with_custom_certificate_verifier(chain_only(root_store(settings)?)?),
        (SslMode::Disable | SslMode::Prefer | SslMode::Require, _) => {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(Verifier {
                webpki: None,
                provider: provider.clone(),
            }))
        }
    };
    let config = match &settings.ssl_client_cert {
        Some((cert, key)) => {
            use rustls::pki_types::pem::PemObject;
            let chain = read_pem_certs(cert)?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
                .map_err(|e| Error::config(format!("sslkey {}: {e}", key.display())))?;
            config
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::config(format!("sslcert {} and its key: {e}", cert.display())))?
        }
        None => config.with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The CA file's certificates, or the WebPKI roots without one.
fn root_store(settings: &Settings) -> Result<rustls::RootCertStore> {
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
    Ok(roots)
}

/// The server-certificate check of `prefer`, `require` and `verify-ca`: with `webpki`, the
/// chain is verified but not the host name; without, nothing. The handshake's own signatures are
/// always verified: only the trust decision about the certificate differs.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error as TlsError};
        let Some(webpki) = &self.webpki else {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// tokio-postgres configuration for one member. A host that starts with `/` is the directory of
/// a Unix-domain socket (tokio-postgres reads it so): reached without TLS, whatever `sslmode`
/// says, as libpq does — the server offers none on a socket.
pub(crate) fn postgres_config(settings: &Settings, host: &str, port: u16, purpose: &str) -> tokio_postgres::Config {
    let unix_socket = host.starts_with('/');
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
        .keepalives_idle(keepalive_pace(settings.tcp_user_timeout))
        .keepalives_interval(keepalive_pace(settings.tcp_user_timeout / 3))
        .keepalives_retries(3)
        .ssl_mode(match settings.ssl_mode {
            _ if unix_socket => tokio_postgres::config::SslMode::Disable,
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        })
        .channel_binding(match settings.channel_binding {
            ChannelBinding::Disable => tokio_postgres::config::ChannelBinding::Disable,
            ChannelBinding::Prefer => tokio_postgres::config::ChannelBinding::Prefer,
            ChannelBinding::Require => tokio_postgres::config::ChannelBinding::Require,
        });
    match &settings.password {
        Some(p) => {
            c.password(p.expose());
        }
        None => {
            if let Some(p) = crate::config::pgpass::lookup(pgpass_host(host), port, &settings.dbname, &settings.user) {
                c.password(p);
            }
        }
    }
    c
}

/// The host a password file line names for `host`: libpq matches a socket directory as it is,
/// except its default directory, which it matches as `localhost` (Debian's and upstream's
/// defaults are taken for it).
fn pgpass_host(host: &str) -> &str {
    match host.trim_end_matches('/') {
        "/var/run/postgresql" | "/run/postgresql" | "/tmp" => "localhost",
        _ => host,
    }
}

/// A keepalive time the kernel accepts: whole seconds from 1 to 32767 (`TCP_KEEPIDLE` and
/// `TCP_KEEPINTVL` refuse 0, which a sub-second `tcp_user_timeout` would otherwise round to).
fn keepalive_pace(d: std::time::Duration) -> std::time::Duration {
    d.clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(32_767),
    )
}

/// The HTTP client for Patroni: no redirects, timeouts, optional custom CA, the client
/// certificate when one is configured.
pub(crate) fn patroni_http(settings: &Settings) -> Result<reqwest::Client> {
    let mut builder = http_client(settings.patroni_ca_file.as_deref())?;
    if let Some((cert, key)) = &settings.patroni_client_cert {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| Error::config(format!("reading {}: {e}", path.display())))
        };
        let mut pem = read(cert)?;
        pem.push(b'\n');
        pem.extend(read(key)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            Error::config(format!(
                "Patroni client certificate {} with key {}: {e}",
                cert.display(),
                key.display()
            ))
        })?;
        builder = builder.identity(identity);
    }
    builder
        .timeout(settings.patroni_timeout)
        .connect_timeout(settings.patroni_timeout)
        .build()
        .map_err(|e| Error::config(format!("HTTP client: {e}")))
}

/// The HTTP client for etcd's JSON gateway: like Patroni's, but without a total timeout (a watch
/// lasts as long as it is healthy; every other request is bounded by the gateway) and with TCP
/// keepalives, so that a vanished etcd host ends the watch.
pub(crate) fn etcd_http(settings: &Settings) -> Result<reqwest::Client> {
    let ca = settings.etcd.as_ref().and_then(|e| e.ca_file.as_deref());
    http_client(ca)?
        .connect_timeout(settings.patroni_timeout)
        .tcp_keepalive(keepalive_pace(settings.tcp_user_timeout / 3))
        .build()
        .map_err(|e| Error::config(format!("HTTP client: {e}")))
}

/// What every HTTP client of pgha has: no redirects, its user agent, the CA file's roots.
fn http_client(ca_file: Option<&std::path::Path>) -> Result<reqwest::ClientBuilder> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pgha-client/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        for cert in read_pem_certs(path)? {
            let cert = reqwest::Certificate::from_der(&cert)
                .map_err(|e| Error::config(format!("CA file {}: {e}", path.display())))?;
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn keepalive_times_stay_within_what_the_kernel_accepts() {
        assert_eq!(
            super::keepalive_pace(Duration::from_millis(500)),
            Duration::from_secs(1)
        );
        assert_eq!(super::keepalive_pace(Duration::from_secs(10)), Duration::from_secs(10));
        assert_eq!(super::keepalive_pace(Duration::MAX), Duration::from_secs(32_767));
    }

    /// A socket directory is a Unix-domain host to tokio-postgres, reached without TLS even
    /// under `sslmode=verify-full`; a TCP host keeps the mode.
    #[test]
    fn a_socket_directory_is_a_unix_host_without_tls() {
        use tokio_postgres::config::{Host, SslMode};
        let settings = crate::ClientBuilder::default()
            .url("host=/run/pg,db1 user=u sslmode=verify-full")
            .settings()
            .expect("valid");
        let socket = super::postgres_config(&settings, "/run/pg", 5432, "");
        assert_eq!(socket.get_hosts(), [Host::Unix("/run/pg".into())]);
        assert_eq!(socket.get_ssl_mode(), SslMode::Disable);
        let tcp = super::postgres_config(&settings, "db1", 5432, "");
        assert_eq!(tcp.get_hosts(), [Host::Tcp("db1".into())]);
        assert_eq!(tcp.get_ssl_mode(), SslMode::Require);
        assert_eq!(super::pgpass_host("/var/run/postgresql/"), "localhost");
        assert_eq!(super::pgpass_host("/srv/pg"), "/srv/pg");
    }
}
