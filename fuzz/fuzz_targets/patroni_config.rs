//! See [`pgha_fuzz::patroni_config`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgha_fuzz::patroni_config(data));
