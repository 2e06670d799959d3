//! Connection strings and serde configurations from arbitrary input: validation ends in a
//! value or a typed configuration error, never a panic, and the password never shows in Debug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgha_client::{Client, ClientConfig, WalToken};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // A libpq-style URL with a marker password appended where it parses as one.
    let url = format!("postgresql://u:SeCrEt@{text}");
    match Client::builder().url(&url).connector() {
        Ok(c) => assert!(!format!("{c:?}").contains("SeCrEt")),
        Err(e) => assert!(e.is_config(), "{e}"),
    }
    let _ = Client::builder().url(text).connector();
    if let Ok(config) = serde_json::from_str::<ClientConfig>(text) {
        let _ = config.into_builder().connector();
    }
    let _ = text.parse::<WalToken>();
    let _ = text.parse::<pgha_client::patroni::Lsn>();
    let _ = pgha_client::Ident::parse(text).map(|i| i.to_string());
});
