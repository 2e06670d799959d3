//! See [`pgha_fuzz::pgbackrest_info`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgha_fuzz::pgbackrest_info(data));
