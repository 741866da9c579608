//! cargo-fuzz target `plist_definition`: see `openclaw_fuzz::plist_definition`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| openclaw_fuzz::plist_definition(data));
