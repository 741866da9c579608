//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::Path;

/// Writes `text` to `path` with `mode` (0600 for secrets), replacing any existing file.
pub(crate) fn write_mode(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// True when running as root (some permission tests need it to create foreign-owned files).
pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Skips (returns true) with a visible message, except under `CI=true` where it panics.
pub(crate) fn skip(why: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("test prerequisite missing under CI=true: {why}");
    }
    eprintln!("SKIP: {why}");
    true
}
