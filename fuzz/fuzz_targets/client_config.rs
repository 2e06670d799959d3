//! See [`pgha_fuzz::client_config`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgha_fuzz::client_config(data));
