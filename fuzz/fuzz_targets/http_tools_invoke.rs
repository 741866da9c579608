//! cargo-fuzz target `http_tools_invoke`: see `openclaw_fuzz::http_tools_invoke`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| openclaw_fuzz::http_tools_invoke(data));
