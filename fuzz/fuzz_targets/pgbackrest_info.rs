//! `pgbackrest info --output=json` from arbitrary bytes: typed stanzas or a protocol error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(stanzas) = pgha_admin::backup::parse_info(text) {
        for s in &stanzas {
            let _ = s.status_error();
            let _ = s.latest();
            let _ = s.last_archived();
        }
    }
});
