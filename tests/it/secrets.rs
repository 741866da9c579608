//! SecretRef providers against real files, real permissions, a real exec helper and the real
//! process environment.
use std::path::{Path, PathBuf};

use openclaw::config::paths::ProcessEnv;
use openclaw::config::secrets::{Activation, EntryState, SecretsSnapshot, activate};
use serde_json::{Value, json};

/// Writes `text` to `path` with `mode` (0600 for secrets), replacing any existing file.
pub(crate) fn write_mode(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// True when running as root (some permission tests need it to create foreign-owned files).
fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Skips (returns true) with a visible message, except under `CI=true` where it panics.
fn skip(why: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("test prerequisite missing under CI=true: {why}");
    }
    eprintln!("SKIP: {why}");
    true
}

async fn run(doc: &Value) -> Activation {
    activate(doc, &ProcessEnv, None).await
}

async fn run_after(doc: &Value, prev: &SecretsSnapshot) -> Activation {
    activate(doc, &ProcessEnv, Some(prev)).await
}

fn token_from_file(path: &Path, mode: &str, id: &str) -> Value {
    json!({
        "gateway": {"auth": {"token": {"source": "file", "provider": "vault", "id": id}}},
        "secrets": {"providers": {"vault": {"source": "file", "path": path, "mode": mode}}}
    })
}

fn only_failure(a: &Activation) -> &str {
    assert_eq!(a.failures.len(), 1, "{:?}", a.failures);
    &a.failures[0].error
}

#[tokio::test]
async fn env_ref_reads_the_real_process_environment() {
    // PATH is always set for the test process; an unset name must fail.
    let doc = json!({
        "gateway": {"auth": {"token": "${PATH}"}},
        "models": {"providers": {"x": {"apiKey": "${OPENCLAW_IT_SURELY_UNSET_VAR}"}}}
    });
    let a = run(&doc).await;
    assert_eq!(
        a.snapshot.get("gateway.auth.token").unwrap().expose(),
        std::env::var("PATH").unwrap()
    );
    assert!(
        only_failure(&a).contains("OPENCLAW_IT_SURELY_UNSET_VAR is not set"),
        "{:?}",
        a.failures
    );
}

#[tokio::test]
async fn file_provider_json_and_single_value() {
    let dir = tempfile::tempdir().unwrap();
    let json_file = dir.path().join("secrets.json");
    write_mode(
        &json_file,
        r#"{"gateway": {"token": "tok-json"}, "n": 5}"#,
        0o600,
    );
    let a = run(&token_from_file(&json_file, "json", "/gateway/token")).await;
    assert!(a.failures.is_empty(), "{:?}", a.failures);
    assert_eq!(
        a.snapshot.get("gateway.auth.token").unwrap().expose(),
        "tok-json"
    );

    for (id, want) in [
        ("/missing", "/missing not found"),
        ("/n", "/n in"),
        ("gateway/token", "must be a JSON pointer"),
    ] {
        let a = run(&token_from_file(&json_file, "json", id)).await;
        assert!(only_failure(&a).contains(want), "{id}: {:?}", a.failures);
        assert_eq!(a.failures[0].state, EntryState::Cold);
        assert_eq!(
            a.auth_blocking("token").len(),
            1,
            "gateway auth fails closed"
        );
    }

    let single = dir.path().join("token.txt");
    write_mode(&single, "tok-single\n", 0o600);
    let a = run(&token_from_file(&single, "singleValue", "value")).await;
    assert!(a.failures.is_empty(), "{:?}", a.failures);
    assert_eq!(
        a.snapshot.get("gateway.auth.token").unwrap().expose(),
        "tok-single"
    );
    let a = run(&token_from_file(&single, "singleValue", "other")).await;
    assert!(
        only_failure(&a).contains("must be \"value\""),
        "{:?}",
        a.failures
    );

    // Not JSON in json mode: the error names the file, never the content.
    let a = run(&token_from_file(&single, "json", "/x")).await;
    let e = only_failure(&a);
    assert!(
        e.contains("is not valid JSON") && !e.contains("tok-single"),
        "{e}"
    );
}

#[tokio::test]
async fn file_provider_refuses_unsafe_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    write_mode(&good, r#"{"t": "v"}"#, 0o600);

    // Group/world-readable.
    let open = dir.path().join("open.json");
    write_mode(&open, r#"{"t": "v"}"#, 0o644);
    let a = run(&token_from_file(&open, "json", "/t")).await;
    let e = only_failure(&a);
    assert!(e.contains("mode 0644") && e.contains("chmod 600"), "{e}");
    assert!(e.contains(&open.display().to_string()), "{e}");

    // A symlink to a good file.
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    let a = run(&token_from_file(&link, "json", "/t")).await;
    assert!(
        only_failure(&a).contains("is a symlink"),
        "{:?}",
        a.failures
    );

    // A second hard link.
    let hard = dir.path().join("hard.json");
    std::fs::hard_link(&good, &hard).unwrap();
    let a = run(&token_from_file(&hard, "json", "/t")).await;
    assert!(
        only_failure(&a).contains("2 hard links"),
        "{:?}",
        a.failures
    );
    std::fs::remove_file(&hard).unwrap();

    // Over the size cap.
    let big = dir.path().join("big.json");
    write_mode(&big, &format!(r#"{{"t": "{}"}}"#, "x".repeat(200)), 0o600);
    let mut doc = token_from_file(&big, "json", "/t");
    doc["secrets"]["providers"]["vault"]["maxBytes"] = json!(64);
    let a = run(&doc).await;
    assert!(
        only_failure(&a).contains("over the 64-byte cap"),
        "{:?}",
        a.failures
    );

    // A directory, a missing file, a relative path.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).unwrap();
    let a = run(&token_from_file(&sub, "json", "/t")).await;
    assert!(
        only_failure(&a).contains("not a regular file"),
        "{:?}",
        a.failures
    );
    let a = run(&token_from_file(
        &dir.path().join("nope.json"),
        "json",
        "/t",
    ))
    .await;
    assert!(only_failure(&a).contains("cannot open"), "{:?}", a.failures);
    let a = run(&token_from_file(Path::new("rel.json"), "json", "/t")).await;
    assert!(
        only_failure(&a).contains("must be absolute"),
        "{:?}",
        a.failures
    );

    // The good file still resolves.
    let a = run(&token_from_file(&good, "json", "/t")).await;
    assert!(a.failures.is_empty(), "{:?}", a.failures);
}

#[tokio::test]
async fn file_owned_by_another_user_is_refused() {
    if !is_root() && skip("needs root to create a file owned by another user") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("foreign.json");
    write_mode(&f, r#"{"t": "v"}"#, 0o600);
    nix::unistd::chown(&f, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let a = run(&token_from_file(&f, "json", "/t")).await;
    assert!(
        only_failure(&a).contains("owned by uid 65534"),
        "{:?}",
        a.failures
    );
}

#[tokio::test]
async fn failed_re_resolution_keeps_the_last_good_value_as_stale() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.json");
    write_mode(&f, r#"{"t": "v1"}"#, 0o600);
    let doc = token_from_file(&f, "json", "/t");
    let first = run(&doc).await;
    assert!(first.failures.is_empty());
    // Someone loosens the permissions: the next activation fails for that ref ...
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    let second = run_after(&doc, &first.snapshot).await;
    assert_eq!(second.failures[0].state, EntryState::Stale);
    // ... the gateway keeps authenticating with the last good value and reports it.
    assert_eq!(
        second.snapshot.get("gateway.auth.token").unwrap().expose(),
        "v1"
    );
    assert!(second.auth_blocking("token").is_empty());
    let report = second.report();
    assert_eq!(report["ok"], json!(false));
    assert_eq!(report["failures"][0]["path"], json!("gateway.auth.token"));
    assert_eq!(report["failures"][0]["ref"], json!("file:vault:/t"));
    assert!(!report.to_string().contains("v1"), "{report}");
    // Fixed again: fresh value, no failures.
    write_mode(&f, r#"{"t": "v2"}"#, 0o600);
    let third = run_after(&doc, &second.snapshot).await;
    assert!(third.failures.is_empty());
    assert_eq!(
        third.snapshot.get("gateway.auth.token").unwrap().expose(),
        "v2"
    );
}

/// Writes an exec helper script (0700) into `dir`.
fn helper(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    write_mode(&p, &format!("#!/bin/sh\n{body}\n"), 0o700);
    p
}

fn exec_doc(command: &Path, extra: Value) -> Value {
    let mut provider = json!({"source": "exec", "command": command});
    for (k, v) in extra.as_object().unwrap() {
        provider[k] = v.clone();
    }
    json!({
        "gateway": {"auth": {"token": {"source": "exec", "provider": "helper", "id": "gw"}}},
        "models": {"providers": {
            "openai": {"apiKey": {"source": "exec", "provider": "helper", "id": "openai"}},
            "other": {"apiKey": {"source": "exec", "provider": "helper", "id": "missing"}}
        }},
        "secrets": {"providers": {"helper": provider}}
    })
}

#[tokio::test]
async fn exec_provider_speaks_the_json_protocol_once_per_provider() {
    let dir = tempfile::tempdir().unwrap();
    let req = dir.path().join("request.json");
    let calls = dir.path().join("calls");
    let script = helper(
        dir.path(),
        "helper.sh",
        r#"IFS= read -r req
printf '%s' "$req" > "$OUT"
printf x >> "$CALLS"
printf '{"protocolVersion":1,"values":{"gw":"tok-exec","openai":"%s|%s"},"errors":{"missing":{"message":"no such item"}}}' "$PATH" "${HOME:-unset}""#,
    );
    let doc = exec_doc(
        &script,
        json!({"passEnv": ["PATH"], "env": {"OUT": req, "CALLS": calls}}),
    );
    let a = run(&doc).await;
    assert_eq!(
        a.snapshot.get("gateway.auth.token").unwrap().expose(),
        "tok-exec"
    );
    // passEnv passes PATH; everything else (HOME) is cleared.
    let want = format!("{}|unset", std::env::var("PATH").unwrap());
    assert_eq!(
        a.snapshot
            .get("models.providers.openai.apiKey")
            .unwrap()
            .expose(),
        want
    );
    let e = only_failure(&a);
    assert!(
        e.contains("returned no value for \"missing\": no such item"),
        "{e}"
    );
    // One run for all three ids, with the documented request.
    assert_eq!(std::fs::read_to_string(&calls).unwrap(), "x");
    let sent: Value = serde_json::from_str(&std::fs::read_to_string(&req).unwrap()).unwrap();
    let mut ids: Vec<&str> = sent["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(sent["protocolVersion"], json!(1));
    assert_eq!(sent["provider"], json!("helper"));
    assert_eq!(ids, ["gw", "missing", "openai"]);
}

#[tokio::test]
async fn exec_provider_refuses_unsafe_commands() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ok_body =
        r#"printf '{"protocolVersion":1,"values":{"gw":"t","openai":"k","missing":"m"}}'"#;
    let good = helper(dir.path(), "good.sh", ok_body);

    let writable = helper(dir.path(), "writable.sh", ok_body);
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o775)).unwrap();
    let link = dir.path().join("link.sh");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    let noexec = helper(dir.path(), "noexec.sh", ok_body);
    std::fs::set_permissions(&noexec, std::fs::Permissions::from_mode(0o600)).unwrap();
    let other_dir = tempfile::tempdir().unwrap();

    let cases: Vec<(Value, &str)> = vec![
        (
            exec_doc(&writable, json!({})),
            "group/world-writable (mode 0775)",
        ),
        (exec_doc(&link, json!({})), "is a symlink"),
        (exec_doc(&noexec, json!({})), "is not executable"),
        (
            exec_doc(Path::new("good.sh"), json!({})),
            "must be an absolute path",
        ),
        (
            exec_doc(&dir.path().join("absent.sh"), json!({})),
            "absent.sh",
        ),
        (
            exec_doc(&good, json!({"trustedDirs": [other_dir.path()]})),
            "not inside trustedDirs",
        ),
    ];
    for (doc, want) in cases {
        let a = run(&doc).await;
        assert_eq!(
            a.failures.len(),
            3,
            "every ref of the provider fails: {:?}",
            a.failures
        );
        assert!(
            a.failures.iter().all(|f| f.error.contains(want)),
            "{want}: {:?}",
            a.failures
        );
        assert_eq!(a.auth_blocking("token").len(), 1);
    }
    // Inside trustedDirs it runs.
    let a = run(&exec_doc(&good, json!({"trustedDirs": [dir.path()]}))).await;
    assert!(a.failures.is_empty(), "{:?}", a.failures);
}

#[tokio::test]
async fn exec_provider_failures_are_reported_without_values() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "exec /bin/sleep 30",
            json!({"timeoutMs": 200}),
            "timed out after 200 ms",
        ),
        (
            "echo 'vault sealed' >&2; exit 3",
            json!({}),
            "failed (exit status: 3): vault sealed",
        ),
        (
            "printf 'not json'",
            json!({}),
            "did not answer with the JSON protocol",
        ),
        (
            r#"printf '{"protocolVersion":2,"values":{}}'"#,
            json!({}),
            "without \"protocolVersion\": 1",
        ),
        (
            r#"printf '{"protocolVersion":1,"values":{"gw":7,"openai":"","missing":"m"}}'"#,
            json!({}),
            "non-string value for \"gw\"",
        ),
        (
            r#"i=0; while [ $i -lt 200 ]; do printf 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'; i=$((i+1)); done"#,
            json!({"maxOutputBytes": 1000}),
            "more than 1000 bytes",
        ),
    ];
    for (i, (body, extra, want)) in cases.into_iter().enumerate() {
        let script = helper(dir.path(), &format!("h{i}.sh"), body);
        let a = run(&exec_doc(&script, extra)).await;
        assert!(
            a.failures.iter().any(|f| f.error.contains(want)),
            "{body}: want {want:?} in {:?}",
            a.failures
        );
    }
}

#[tokio::test]
async fn exec_provider_plain_output_when_json_only_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let script = helper(dir.path(), "plain.sh", "printf 'plain-secret\\n'");
    let doc = json!({
        "gateway": {"auth": {"token": {"source": "exec", "provider": "p", "id": "gw"}}},
        "secrets": {"providers": {"p": {"source": "exec", "command": script, "jsonOnly": false}}}
    });
    let a = run(&doc).await;
    assert!(a.failures.is_empty(), "{:?}", a.failures);
    assert_eq!(
        a.snapshot.get("gateway.auth.token").unwrap().expose(),
        "plain-secret"
    );
    // With jsonOnly (the default) the same output is refused.
    let mut strict = doc.clone();
    strict["secrets"]["providers"]["p"]
        .as_object_mut()
        .unwrap()
        .remove("jsonOnly");
    let a = run(&strict).await;
    assert!(
        only_failure(&a).contains("JSON protocol"),
        "{:?}",
        a.failures
    );
}
