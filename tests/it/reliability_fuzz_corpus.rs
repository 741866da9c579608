//! The fuzz corpora as regular tests: every committed seed (`fuzz/corpus/<target>/`) and every
//! crash reproducer (`fuzz/regressions/<target>/`) goes through the same harness function the
//! `cargo fuzz` target runs (fuzz/src/lib.rs), without libFuzzer or a nightly toolchain. A
//! panic here is a fuzz finding that came back.
#[path = "../../fuzz/src/lib.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Files of `dir`, sorted (none when it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn replay(target: &str) -> usize {
    let (_, f) = harness::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .unwrap_or_else(|| panic!("no harness function for {target}"));
    let mut n = 0;
    for sub in ["corpus", "regressions"] {
        for p in files(&root().join(sub).join(target)) {
            let data = std::fs::read(&p).unwrap();
            let r = std::panic::catch_unwind(|| f(&data));
            assert!(r.is_ok(), "{target}: {} panics (fuzz finding)", p.display());
            n += 1;
        }
    }
    n
}

#[test]
fn every_target_has_a_harness_and_seeds() {
    let dirs: Vec<String> = files_or_dirs(&root().join("corpus"));
    for (name, _) in harness::TARGETS {
        assert!(
            dirs.iter().any(|d| d == name),
            "fuzz/corpus/{name} is missing"
        );
        let target = root().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(target.exists(), "{} is missing", target.display());
    }
    for d in &dirs {
        assert!(
            harness::TARGETS.iter().any(|(n, _)| n == d),
            "fuzz/corpus/{d} has no harness function"
        );
    }
}

fn files_or_dirs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

macro_rules! corpus_test {
    ($name:ident, $min:expr) => {
        #[test]
        fn $name() {
            let n = replay(stringify!($name));
            assert!(n >= $min, "only {n} inputs for {}", stringify!($name));
        }
    };
}

corpus_test!(frame_preauth, 50);
corpus_test!(frame_postauth, 50);
corpus_test!(connect_params, 10);
corpus_test!(config_load, 15);
corpus_test!(http_tools_invoke, 5);
corpus_test!(launchctl_print, 9);
corpus_test!(plist_definition, 3);

#[test]
fn transcript_reader_takes_client_frames_only() {
    let jsonl = "{\"dir\":\"s2c\",\"frame\":{\"type\":\"event\"}}\n{\"dir\":\"c2s\",\"frame\":{\"type\":\"req\",\"id\":\"1\",\"method\":\"health\"}}\n";
    let v = harness::transcript_client_frames(jsonl);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["method"], "health");
}

#[test]
fn the_res_guard_rejects_malformed_frames() {
    let bad = serde_json::json!({"type":"res","id":"","ok":true});
    assert!(std::panic::catch_unwind(|| harness::assert_valid_res(&bad)).is_err());
    let good = serde_json::json!({"type":"res","id":"1","ok":false,"error":{"code":"X","message":"m","retryAfterMs":5}});
    harness::assert_valid_res(&good);
}
