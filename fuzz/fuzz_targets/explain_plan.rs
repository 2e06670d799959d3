//! See [`pgha_fuzz::explain_plan`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgha_fuzz::explain_plan(data));
