//! Certificates for clusters built with TLS: a CA generated per cluster and one server
//! certificate (for `127.0.0.1` and `localhost`) used by every PostgreSQL and Patroni REST API;
//! for tests of certificate checks, PostgreSQL's can be replaced by an expired one or one for
//! another host ([`ServerCertificate`]).

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

use crate::error::{Error, Result};

pub(crate) const CA_FILE: &str = "ca.crt";
const CA_KEY_FILE: &str = "ca.key";
pub(crate) const SERVER_CERT_FILE: &str = "server.crt";
pub(crate) const SERVER_KEY_FILE: &str = "server.key";
pub(crate) const CLIENT_CERT_FILE: &str = "client.crt";
pub(crate) const CLIENT_KEY_FILE: &str = "client.key";

fn setup(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| Error::Setup(format!("generating the {what}: {e}"))
}

/// A server certificate for PostgreSQL, signed by the cluster's CA
/// ([`LocalCluster::present_server_certificate`](crate::LocalCluster::present_server_certificate)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerCertificate {
    /// For `127.0.0.1` and `localhost`, valid now (what the cluster starts with).
    Valid,
    /// For `127.0.0.1` and `localhost`, but valid only during 2020.
    Expired,
    /// Valid now, but for this DNS name only.
    ForHost(String),
}

/// The CA's parameters: with the CA's key, they sign as the CA whose certificate is `ca.crt`.
fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(setup("CA"))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "pgha-testkit CA");
    Ok(params)
}

fn server_params(which: &ServerCertificate) -> Result<CertificateParams> {
    let host = match which {
        ServerCertificate::ForHost(host) => host.clone(),
        ServerCertificate::Valid | ServerCertificate::Expired => "localhost".to_owned(),
    };
    let mut params = CertificateParams::new(vec![host.clone()]).map_err(setup("server certificate"))?;
    if !matches!(which, ServerCertificate::ForHost(_)) {
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    }
    if *which == ServerCertificate::Expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    params.distinguished_name.push(DnType::CommonName, host);
    Ok(params)
}

/// Writes `ca.crt` (and its key, `ca.key`), `server.crt` and `server.key`, and `client.crt` and
/// `client.key` for the role `client` (its name as the common name, as PostgreSQL's
/// `clientcert=verify-full` checks), into `dir` (mode 0600).
pub(crate) fn generate(dir: &Path, client: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Setup(format!("creating {}: {e}", dir.display())))?;

    let ca_key = KeyPair::generate().map_err(setup("CA key"))?;
    let ca = ca_params()?.self_signed(&ca_key).map_err(setup("CA"))?;

    let server_key = KeyPair::generate().map_err(setup("server key"))?;
    let server = server_params(&ServerCertificate::Valid)?
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
        (CA_KEY_FILE, ca_key.serialize_pem()),
        (SERVER_CERT_FILE, server.pem()),
        (SERVER_KEY_FILE, server_key.serialize_pem()),
        (CLIENT_CERT_FILE, client_cert.pem()),
        (CLIENT_KEY_FILE, client_key.serialize_pem()),
    ] {
        super::cluster::write_file(&dir.join(name), &text)?;
    }
    Ok(())
}

/// Replaces `server.crt` and `server.key` in `dir` by `which`, signed by the CA there.
pub(crate) fn reissue_server(dir: &Path, which: &ServerCertificate) -> Result<()> {
    let pem = std::fs::read_to_string(dir.join(CA_KEY_FILE))
        .map_err(|e| Error::Setup(format!("reading the CA key in {}: {e}", dir.display())))?;
    let ca_key = KeyPair::from_pem(&pem).map_err(setup("CA key"))?;
    let ca = ca_params()?.self_signed(&ca_key).map_err(setup("CA"))?;
    let key = KeyPair::generate().map_err(setup("server key"))?;
    let cert = server_params(which)?
        .signed_by(&key, &ca, &ca_key)
        .map_err(setup("server certificate"))?;
    super::cluster::write_file(&dir.join(SERVER_CERT_FILE), &cert.pem())?;
    super::cluster::write_file(&dir.join(SERVER_KEY_FILE), &key.serialize_pem())
}
