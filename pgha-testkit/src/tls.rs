//! Certificates for clusters built with TLS: a CA generated per cluster and one server
//! certificate (for `127.0.0.1` and `localhost`) used by every PostgreSQL and Patroni REST API.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

use crate::error::{Error, Result};

pub(crate) const CA_FILE: &str = "ca.crt";
pub(crate) const SERVER_CERT_FILE: &str = "server.crt";
pub(crate) const SERVER_KEY_FILE: &str = "server.key";
pub(crate) const CLIENT_CERT_FILE: &str = "client.crt";
pub(crate) const CLIENT_KEY_FILE: &str = "client.key";

fn setup(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| Error::Setup(format!("generating the {what}: {e}"))
}

/// Writes `ca.crt`, `server.crt` and `server.key`, and `client.crt` and `client.key` for the
/// role `client` (its name as the common name, as PostgreSQL's `clientcert=verify-full` checks),
/// into `dir` (mode 0600).
pub(crate) fn generate(dir: &Path, client: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Setup(format!("creating {}: {e}", dir.display())))?;

    let ca_key = KeyPair::generate().map_err(setup("CA key"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(setup("CA"))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "pgha-testkit CA");
    let ca = ca_params.self_signed(&ca_key).map_err(setup("CA"))?;

    let server_key = KeyPair::generate().map_err(setup("server key"))?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).map_err(setup("server certificate"))?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    params.distinguished_name.push(DnType::CommonName, "localhost");
    let server = params
        .signed_by(&server_key, &ca, &ca_key)
        .map_err(setup("server certificate"))?;

    let client_key = KeyPair::generate().map_err(setup("client key"))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(setup("client certificate"))?;
    params.distinguished_name.push(DnType::CommonName, client);
    let client_cert = params
        .signed_by(&client_key, &ca, &ca_key)
        .map_err(setup("client certificate"))?;

    for (name, text) in [
        (CA_FILE, ca.pem()),
        (SERVER_CERT_FILE, server.pem()),
        (SERVER_KEY_FILE, server_key.serialize_pem()),
        (CLIENT_CERT_FILE, client_cert.pem()),
        (CLIENT_KEY_FILE, client_key.serialize_pem()),
    ] {
        super::cluster::write_file(&dir.join(name), &text)?;
    }
    Ok(())
}
