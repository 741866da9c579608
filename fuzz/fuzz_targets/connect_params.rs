//! cargo-fuzz target `connect_params`: see `openclaw_fuzz::connect_params`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| openclaw_fuzz::connect_params(data));
