//! See [`pgha_fuzz::redaction`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgha_fuzz::redaction(data));
