//! Shared helpers for integration tests.
#![allow(dead_code)]
pub mod sandbox;

use std::path::PathBuf;

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_openclaw"))
}

/// Whether we run under CI (`CI=true`): environment-dependent tests must not skip there.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Skips (visibly) outside CI, fails under CI.
pub fn skip_or_fail(test: &str, why: &str) {
    if in_ci() {
        panic!("{test}: cannot run under CI=true: {why}");
    }
    eprintln!("SKIP: {test}: {why}");
}
