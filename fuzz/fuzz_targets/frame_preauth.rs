//! cargo-fuzz target `frame_preauth`: see `openclaw_fuzz::frame_preauth`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| openclaw_fuzz::frame_preauth(data));
