//! cargo-fuzz target `config_load`: see `openclaw_fuzz::config_load`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| openclaw_fuzz::config_load(data));
