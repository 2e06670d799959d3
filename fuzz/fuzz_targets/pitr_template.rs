//! See [`pgha_fuzz::pitr_template`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgha_fuzz::pitr_template(data));
