//! cargo-fuzz target `frame_postauth`: see `openclaw_fuzz::frame_postauth`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| openclaw_fuzz::frame_postauth(data));
