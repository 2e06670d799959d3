//! See [`pgha_fuzz::cli_settings`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgha_fuzz::cli_settings(data));
