//! cargo-fuzz target `launchctl_print`: see `openclaw_fuzz::launchctl_print`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| openclaw_fuzz::launchctl_print(data));
