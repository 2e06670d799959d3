//! `--patroni-config /etc/patroni.yml`: the connection settings `pgha` can take from a Patroni
//! configuration file, as `patronictl -c` does — on a database host the operator then needs no
//! other setting.
//!
//! Read from the file (every key optional):
//!
//! | Patroni key | pgha setting |
//! |---|---|
//! | `restapi.connect_address` (else `restapi.listen`, a wildcard host read as 127.0.0.1); `https` when `restapi.certfile` is set | `patroni` (this member's REST API; the others come from `/cluster`) |
//! | `ctl.authentication`, else `restapi.authentication` (`username` / `password`) | `patroni_user` / `patroni_password` |
//! | `ctl.cacert`, else `ctl.cafile`, else `restapi.cafile` | `patroni_ca_file` |
//! | `ctl.certfile` / `ctl.keyfile`, else `restapi.certfile` / `restapi.keyfile` (what patronictl presents when `verify_client` is set) | `patroni_cert` / `patroni_key` |
//! | `scope` | `patroni_scope` |
//! | `etcd3.url`, else `etcd3.hosts` (with `etcd3.protocol`, `etcd3.port`), else `etcd3.host`; `namespace` | `etcd`, `etcd_namespace` |
//! | `etcd3.username` / `password`, `etcd3.cacert` | `etcd_user` / `etcd_password`, `etcd_ca_file` |
//! | `postgresql.authentication.superuser.username` / `password` | `user` / `password` |
//!
//! As Patroni's own REST client does (`PatroniRequest._get_cfg_value`), each `ctl` key wins over
//! the `restapi` key of the same name. A duplicated key is refused (Patroni's YAML reader takes
//! the last one).

use pgha_admin::pgha_client::{ClientConfig, Secret};
use pgha_admin::Result;
use yaml_rust2::{Yaml, YamlLoader};

use crate::settings_file::usage;

/// A string at `path` (`["restapi", "listen"]`); numbers are read as text (a port may be one).
fn text(doc: &Yaml, path: &[&str]) -> Option<String> {
    let mut node = doc;
    for key in path {
        node = match node {
            Yaml::Hash(map) => map.get(&Yaml::String((*key).to_owned()))?,
            _ => return None,
        };
    }
    match node {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        _ => None,
    }
    .filter(|s| !s.trim().is_empty())
}

/// `host:port` as a URL authority; a wildcard listen address becomes the loopback address.
fn reachable(address: &str) -> String {
    let address = address.trim();
    let (host, port) = match address.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => (h, Some(p)),
        _ => (address, None),
    };
    let host = match host {
        "" | "0.0.0.0" | "*" => "127.0.0.1",
        "::" | "[::]" => "[::1]",
        h => h,
    };
    match port {
        Some(p) => format!("{host}:{p}"),
        None => format!("{host}:8008"),
    }
}

/// The etcd endpoints and credentials of the `etcd3` section, read as Patroni's
/// `get_etcd_client` reads them: `proxy`, else `url` (its user and password taken out, port 2379
/// when it has none), else `hosts` (a list, or comma-separated text; `port` and `protocol` the
/// defaults), else `host` (an explicit `port` wins over the one in it); and the top-level
/// `namespace`. Client certificates (`cert`, `key`) are not read: pgha's etcd client has none.
fn etcd3(doc: &Yaml, c: &mut ClientConfig) {
    let protocol = text(doc, &["etcd3", "protocol"]).unwrap_or_else(|| "http".into());
    let port_key = text(doc, &["etcd3", "port"]);
    let port = port_key.clone().unwrap_or_else(|| "2379".into());
    let split = |host: &str| -> (String, Option<String>) {
        let host = host.trim();
        match host.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && !p.is_empty() && p.chars().all(|ch| ch.is_ascii_digit()) => {
                (h.to_owned(), Some(p.to_owned()))
            }
            _ => (host.to_owned(), None),
        }
    };
    let hosts: Vec<String> = match &doc["etcd3"]["hosts"] {
        Yaml::Array(list) => list.iter().filter_map(Yaml::as_str).map(str::to_owned).collect(),
        _ => text(doc, &["etcd3", "hosts"])
            .map(|h| h.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    c.etcd_user = text(doc, &["etcd3", "username"]);
    c.etcd_password = text(doc, &["etcd3", "password"]).map(Secret::new);
    c.etcd = if let Some(url) = text(doc, &["etcd3", "proxy"]).or_else(|| text(doc, &["etcd3", "url"])) {
        match pgha_admin::pgha_client::reqwest::Url::parse(url.trim()) {
            Ok(mut u) => {
                if !u.username().is_empty() {
                    c.etcd_user = Some(u.username().to_owned());
                    c.etcd_password = u.password().map(Secret::new);
                }
                let _ = u.set_username("");
                let _ = u.set_password(None);
                if u.port().is_none() {
                    let _ = u.set_port(Some(2379));
                }
                vec![u.as_str().trim_end_matches('/').to_owned()]
            }
            // pgha-client's own validation says what is wrong with it.
            Err(_) => vec![url],
        }
    } else if !hosts.is_empty() {
        hosts
            .iter()
            .filter(|h| !h.trim().is_empty())
            .map(|h| match split(h) {
                (h, Some(p)) => format!("{protocol}://{h}:{p}"),
                (h, None) => format!("{protocol}://{h}:{port}"),
            })
            .collect()
    } else {
        text(doc, &["etcd3", "host"])
            .map(|h| {
                let (h, in_host) = split(&h);
                let p = port_key.clone().or(in_host).unwrap_or_else(|| "2379".into());
                vec![format!("{protocol}://{h}:{p}")]
            })
            .unwrap_or_default()
    };
    c.etcd_ca_file = text(doc, &["etcd3", "cacert"]).map(Into::into);
    if !c.etcd.is_empty() {
        c.etcd_namespace = text(doc, &["namespace"]);
    }
}

/// Whether `message` is one of the two errors [`parse`] gives for a file named `origin`: its
/// position (`origin:LINE:COLUMN: not YAML`) or no mapping at the top — text of the file in
/// neither (for the fuzz target and the tests).
pub fn is_one_of_our_messages(message: &str, origin: &str) -> bool {
    let Some(rest) = message.split_once(origin).map(|(_, rest)| rest) else {
        return false;
    };
    if rest == ": not a Patroni configuration (no mapping at the top)" {
        return true;
    }
    let Some(position) = rest.strip_prefix(':').and_then(|r| r.strip_suffix(": not YAML")) else {
        return false;
    };
    position
        .split_once(':')
        .is_some_and(|(line, col)| line.parse::<u64>().is_ok() && col.parse::<u64>().is_ok())
}

/// Parses a Patroni configuration file's `text`; `origin` (its path) prefixes every error. A
/// file that is not YAML, or not a mapping at the top, is a usage error; keys pgha does not use
/// are ignored (a Patroni file has many).
///
/// ```
/// let yaml = "scope: pg-ha\nrestapi:\n  listen: 0.0.0.0:8008\n  connect_address: 10.0.0.1:8008\n";
/// let config = pgha_cli::patroni_config::parse(yaml, "patroni.yml").unwrap();
/// assert_eq!(config.patroni, ["http://10.0.0.1:8008"]);
/// assert_eq!(config.patroni_scope.as_deref(), Some("pg-ha"));
/// ```
pub fn parse(text_in: &str, origin: &str) -> Result<ClientConfig> {
    // By position only: the scanner's own messages can quote the text (a duplicated key, an
    // unexpected character), which may be a password.
    let docs = YamlLoader::load_from_str(text_in).map_err(|e| {
        let at = e.marker();
        usage(format!("{origin}:{}:{}: not YAML", at.line(), at.col() + 1))
    })?;
    let doc = match docs.first() {
        Some(doc @ Yaml::Hash(_)) => doc,
        _ => {
            return Err(usage(format!(
                "{origin}: not a Patroni configuration (no mapping at the top)"
            )))
        }
    };
    let mut c = ClientConfig::default();
    let address = text(doc, &["restapi", "connect_address"]).or_else(|| text(doc, &["restapi", "listen"]));
    if let Some(address) = address {
        let scheme = if text(doc, &["restapi", "certfile"]).is_some() {
            "https"
        } else {
            "http"
        };
        c.patroni = vec![format!("{scheme}://{}", reachable(&address))];
    }
    // `ctl` first, then `restapi`, key by key.
    let client = |path: &[&str]| {
        let mut ctl = vec!["ctl"];
        ctl.extend_from_slice(path);
        let mut restapi = vec!["restapi"];
        restapi.extend_from_slice(path);
        text(doc, &ctl).or_else(|| text(doc, &restapi))
    };
    let auth = if text(doc, &["ctl", "authentication", "username"]).is_some() {
        "ctl"
    } else {
        "restapi"
    };
    c.patroni_user = text(doc, &[auth, "authentication", "username"]);
    c.patroni_password = text(doc, &[auth, "authentication", "password"]).map(Secret::new);
    c.patroni_ca_file = text(doc, &["ctl", "cacert"])
        .or_else(|| client(&["cafile"]))
        .map(Into::into);
    c.patroni_cert = client(&["certfile"]).map(Into::into);
    c.patroni_key = client(&["keyfile"]).map(Into::into);
    c.patroni_scope = text(doc, &["scope"]);
    etcd3(doc, &mut c);
    c.user = text(doc, &["postgresql", "authentication", "superuser", "username"]);
    c.password = text(doc, &["postgresql", "authentication", "superuser", "password"]).map(Secret::new);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATRONI_YML: &str = r#"
scope: pg-ha
namespace: /service/
name: node1
restapi:
  listen: 0.0.0.0:8008
  connect_address: 10.0.0.1:8008
  certfile: /etc/patroni/rest.crt
  keyfile: /etc/patroni/rest.key
  cafile: /etc/patroni/ca.crt
  verify_client: required
  authentication:
    username: patroni
    password: 'rest secret'
ctl:
  certfile: /etc/patroni/ctl.crt
  keyfile: /etc/patroni/ctl.key
etcd3:
  hosts: 10.0.0.1:2379,10.0.0.2:2379
postgresql:
  listen: 0.0.0.0:5432
  authentication:
    superuser:
      username: postgres
      password: "pg secret"
    replication:
      username: replicator
      password: other
"#;

    #[test]
    fn a_patroni_file_gives_the_rest_endpoint_credentials_and_certificates() {
        let c = parse(PATRONI_YML, "patroni.yml").expect("parses");
        assert_eq!(c.patroni, ["https://10.0.0.1:8008"]);
        assert_eq!(c.patroni_user.as_deref(), Some("patroni"));
        assert_eq!(c.patroni_password.as_ref().map(Secret::expose), Some("rest secret"));
        assert_eq!(c.patroni_ca_file.as_deref(), Some("/etc/patroni/ca.crt".as_ref()));
        assert_eq!(c.patroni_cert.as_deref(), Some("/etc/patroni/ctl.crt".as_ref()));
        assert_eq!(c.patroni_key.as_deref(), Some("/etc/patroni/ctl.key".as_ref()));
        assert_eq!(c.patroni_scope.as_deref(), Some("pg-ha"));
        assert_eq!(c.user.as_deref(), Some("postgres"));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("pg secret"));
        assert_eq!(c.etcd, ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]);
        assert_eq!(c.etcd_namespace.as_deref(), Some("/service/"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn etcd3_endpoints_are_read_as_patroni_reads_them() {
        let endpoints = |yml: &str| parse(yml, "p.yml").expect("parses");
        let c = endpoints("etcd3:\n  hosts: [a, 'b:2400']\n  protocol: https\n  port: 2390\n  cacert: /ca\n  username: u\n  password: pw\n");
        assert_eq!(c.etcd, ["https://a:2390", "https://b:2400"]);
        assert_eq!(c.etcd_ca_file.as_deref(), Some("/ca".as_ref()));
        assert_eq!(c.etcd_user.as_deref(), Some("u"));
        assert_eq!(c.etcd_password.as_ref().map(Secret::expose), Some("pw"));
        assert!(!format!("{c:?}").contains("pw"));
        assert_eq!(endpoints("etcd3:\n  host: 10.0.0.9\n").etcd, ["http://10.0.0.9:2379"]);
        assert_eq!(
            endpoints("etcd3:\n  url: https://e:2379\n  hosts: x\n").etcd,
            ["https://e:2379"]
        );
        let c = endpoints("etcd3:\n  url: http://u:s3cret@e\n  proxy: http://p:2380\n");
        assert_eq!(c.etcd, ["http://p:2380"], "the proxy wins");
        let c = endpoints("etcd3:\n  url: http://u:s3cret@e\n");
        assert_eq!(c.etcd, ["http://e:2379"], "credentials out of the URL, Patroni's port");
        assert_eq!(c.etcd_user.as_deref(), Some("u"));
        assert_eq!(c.etcd_password.as_ref().map(Secret::expose), Some("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(
            endpoints("etcd3:\n  host: h:1\n  port: 2\n").etcd,
            ["http://h:2"],
            "port wins"
        );
        assert_eq!(
            endpoints("etcd3:\n  hosts: 'a:1, b:2'\n").etcd,
            ["http://a:1", "http://b:2"]
        );
        assert!(
            endpoints("etcd:\n  host: a\nnamespace: /x\n").etcd.is_empty(),
            "etcd v2 is not read"
        );
        assert!(endpoints("etcd3:\n  hosts: []\n").etcd_namespace.is_none());
    }

    #[test]
    fn without_a_ctl_section_the_rest_api_s_own_keys_are_used_as_patronictl_does() {
        let yml = "restapi:\n  connect_address: h:8008\n  certfile: /s.crt\n  keyfile: /s.key\n  cafile: /ca\n  \
                   authentication: {username: r, password: rp}\n";
        let c = parse(yml, "p.yml").expect("parses");
        assert_eq!(c.patroni, ["https://h:8008"]);
        assert_eq!(c.patroni_cert.as_deref(), Some("/s.crt".as_ref()));
        assert_eq!(c.patroni_key.as_deref(), Some("/s.key".as_ref()));
        assert_eq!(c.patroni_ca_file.as_deref(), Some("/ca".as_ref()));
        assert_eq!(c.patroni_user.as_deref(), Some("r"));
        // ctl.authentication wins, as a whole.
        let both = format!("{yml}ctl:\n  authentication: {{username: c, password: cp}}\n");
        let c = parse(&both, "p.yml").expect("parses");
        assert_eq!(c.patroni_user.as_deref(), Some("c"));
        assert_eq!(c.patroni_password.as_ref().map(Secret::expose), Some("cp"));
    }

    #[test]
    fn the_listen_address_stands_in_for_a_missing_connect_address() {
        for (listen, url) in [
            ("0.0.0.0:8008", "http://127.0.0.1:8008"),
            ("127.0.0.1:8009", "http://127.0.0.1:8009"),
            ("'[::]:8008'", "http://[::1]:8008"),
            ("db1.example.com:8008", "http://db1.example.com:8008"),
            ("':8010'", "http://127.0.0.1:8010"),
        ] {
            let c = parse(&format!("restapi:\n  listen: {listen}\n"), "p.yml").expect(listen);
            assert_eq!(c.patroni, [url], "{listen}");
        }
        let bare = parse("scope: x\n", "p.yml").expect("no restapi");
        assert!(bare.patroni.is_empty());
    }

    #[test]
    fn what_is_not_a_patroni_file_is_a_usage_error_that_quotes_nothing() {
        for text in [
            "- a\n- b\n",
            "just text",
            "",
            "restapi: [unclosed\n  password: hunter2",
            "hunter2: 1\nhunter2: 2\n",
            "a: `hunter2",
        ] {
            let e = parse(text, "/etc/patroni.yml").expect_err(text);
            assert_eq!(e.kind(), pgha_admin::ErrorKind::Usage, "{text}: {e}");
            assert!(
                is_one_of_our_messages(&e.to_string(), "/etc/patroni.yml"),
                "{text}: {e}"
            );
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }
}
