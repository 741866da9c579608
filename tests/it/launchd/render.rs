//! Plist rendering: golden file, structure after parsing back, escaping, plistutil validation.
use std::path::{Path, PathBuf};
use std::process::Command;

use openclaw::service::launchd::LaunchdJob;
use openclaw::service::launchd::plist::{parse_definition, render, to_value};
use plist::Value;

use super::{in_ci, spec};

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plists/ai.openclaw.gateway.plist")
}

fn default_job() -> LaunchdJob {
    LaunchdJob::from_spec(&spec(Path::new("/Users/alice")), Path::new("/Users/alice")).unwrap()
}

/// `plists/ai.openclaw.gateway.plist` is the renderer's output for the default install
/// (user alice, Homebrew binary). Regenerate with `OPENCLAW_BLESS=1 cargo test launchd`.
#[test]
fn golden_default_plist() {
    let rendered = render(&default_job());
    let path = golden_path();
    if std::env::var("OPENCLAW_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &rendered).unwrap();
        eprintln!("blessed {}", path.display());
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e}; run OPENCLAW_BLESS=1 cargo test golden_default_plist",
            path.display()
        )
    });
    assert_eq!(
        rendered,
        golden,
        "renderer output drifted from {}; if intended, re-bless with OPENCLAW_BLESS=1",
        path.display()
    );
}

#[test]
fn rendering_is_deterministic_with_documented_key_order() {
    let a = render(&default_job());
    let b = render(&default_job());
    assert_eq!(a, b);
    let v = Value::from_reader_xml(a.as_bytes()).unwrap();
    let keys: Vec<&str> = v
        .as_dictionary()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "Label",
            "Comment",
            "ProgramArguments",
            "EnvironmentVariables",
            "WorkingDirectory",
            "RunAtLoad",
            "KeepAlive",
            "ThrottleInterval",
            "ExitTimeOut",
            "ProcessType",
            "Umask",
            "SoftResourceLimits",
            "HardResourceLimits",
            "StandardInPath",
            "StandardOutPath",
            "StandardErrorPath",
            "Sockets",
        ]
    );
}

fn dict<'a>(v: &'a Value, key: &str) -> &'a plist::Dictionary {
    v.as_dictionary()
        .unwrap()
        .get(key)
        .and_then(Value::as_dictionary)
        .unwrap_or_else(|| panic!("{key} is not a dictionary"))
}

fn get<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.as_dictionary()
        .unwrap()
        .get(key)
        .unwrap_or_else(|| panic!("missing {key}"))
}

#[test]
fn parsed_back_structure_matches_launchd_plist_5() {
    let xml = render(&default_job());
    let v = Value::from_reader_xml(xml.as_bytes()).unwrap();
    assert_eq!(get(&v, "Label").as_string(), Some("ai.openclaw.gateway"));
    let argv: Vec<&str> = get(&v, "ProgramArguments")
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_string().unwrap())
        .collect();
    assert_eq!(
        argv,
        [
            "/opt/homebrew/bin/openclaw",
            "gateway",
            "run",
            "--port",
            "18789"
        ]
    );
    assert_eq!(get(&v, "RunAtLoad").as_boolean(), Some(true));
    let keep = dict(&v, "KeepAlive");
    assert_eq!(
        keep.get("SuccessfulExit").and_then(Value::as_boolean),
        Some(false)
    );
    assert_eq!(keep.get("Crashed").and_then(Value::as_boolean), Some(true));
    assert!(get(&v, "ThrottleInterval").as_unsigned_integer().unwrap() >= 10);
    assert_eq!(
        get(&v, "ExitTimeOut").as_unsigned_integer(),
        Some(20),
        "drain 15 s + 5 s grace"
    );
    assert_eq!(get(&v, "ProcessType").as_string(), Some("Interactive"));
    assert_eq!(get(&v, "Umask").as_unsigned_integer(), Some(0o077));
    assert_eq!(get(&v, "StandardInPath").as_string(), Some("/dev/null"));
    for k in ["StandardOutPath", "StandardErrorPath"] {
        assert_eq!(
            get(&v, k).as_string(),
            Some("/Users/alice/Library/Logs/openclaw/gateway.log")
        );
    }
    assert_eq!(
        get(&v, "WorkingDirectory").as_string(),
        Some("/Users/alice/.openclaw")
    );
    for k in ["SoftResourceLimits", "HardResourceLimits"] {
        let n = dict(&v, k)
            .get("NumberOfFiles")
            .and_then(Value::as_unsigned_integer);
        assert!(n.unwrap() > 256, "{k} must lift launchd's 256-file default");
    }
    let env = dict(&v, "EnvironmentVariables");
    assert_eq!(
        env.get("OPENCLAW_SERVICE_MARKER")
            .and_then(Value::as_string),
        Some("openclaw")
    );
    assert_eq!(
        env.get("OPENCLAW_SERVICE_KIND").and_then(Value::as_string),
        Some("gateway")
    );
    assert_eq!(
        env.get("OPENCLAW_STATE_DIR").and_then(Value::as_string),
        Some("/Users/alice/.openclaw")
    );
    assert_eq!(
        env.get("OPENCLAW_CONFIG_PATH").and_then(Value::as_string),
        Some("/Users/alice/.openclaw/openclaw.json")
    );
    assert!(
        env.get("OPENCLAW_PROFILE").is_none(),
        "default profile has no profile env"
    );
    assert!(
        env.values().all(|v| v.as_string().is_some()),
        "launchd env values are strings"
    );

    let sockets = dict(&v, "Sockets");
    let listeners = sockets.get("Listeners").and_then(Value::as_array).unwrap();
    assert_eq!(listeners.len(), 2);
    let expect = [("127.0.0.1", "IPv4"), ("::1", "IPv6")];
    for (l, (node, fam)) in listeners.iter().zip(expect) {
        let d = l.as_dictionary().unwrap();
        let s = |k: &str| d.get(k).and_then(Value::as_string);
        assert_eq!(s("SockNodeName"), Some(node));
        assert_eq!(s("SockServiceName"), Some("18789"));
        assert_eq!(s("SockFamily"), Some(fam));
        assert_eq!(s("SockType"), Some("stream"));
        assert_eq!(d.get("SockPassive").and_then(Value::as_boolean), Some(true));
    }
    // What the drift check reads back.
    let def = parse_definition(xml.as_bytes()).unwrap();
    assert!(def.has_sockets);
    assert_eq!(def.program_arguments[4], "18789");
}

#[test]
fn profile_variant_and_no_socket_variant() {
    let home = Path::new("/Users/bob");
    let mut s = spec(home);
    s.profile = Some("work".into());
    s.name = "ai.openclaw.work".into();
    s.port = 41984;
    let job = LaunchdJob::from_spec(&s, home).unwrap();
    let xml = render(&job);
    let v = Value::from_reader_xml(xml.as_bytes()).unwrap();
    assert_eq!(get(&v, "Label").as_string(), Some("ai.openclaw.work"));
    assert_eq!(
        dict(&v, "EnvironmentVariables")
            .get("OPENCLAW_PROFILE")
            .and_then(Value::as_string),
        Some("work")
    );
    assert_eq!(
        get(&v, "StandardOutPath").as_string(),
        Some("/Users/bob/Library/Logs/openclaw/gateway-work.log")
    );
    assert!(
        !xml.contains("--profile"),
        "the profile travels in env, not argv"
    );
    let plain = to_value(&job.without_socket_activation());
    assert!(plain.as_dictionary().unwrap().get("Sockets").is_none());
}

#[test]
fn xml_special_characters_are_escaped_and_survive_a_round_trip() {
    let home = Path::new("/Users/a&b <c>");
    let mut s = spec(home);
    s.description = "OpenClaw \"Gateway\" <&> 'x'".into();
    s.env = vec![("NOTE".into(), "a]]>b&<".into())];
    let job = LaunchdJob::from_spec(&s, home).unwrap();
    let xml = render(&job);
    assert!(!xml.contains("<c>"), "raw angle brackets must be escaped");
    let v = Value::from_reader_xml(xml.as_bytes()).unwrap();
    assert_eq!(
        get(&v, "Comment").as_string(),
        Some("OpenClaw \"Gateway\" <&> 'x'")
    );
    assert_eq!(
        dict(&v, "EnvironmentVariables")
            .get("NOTE")
            .and_then(Value::as_string),
        Some("a]]>b&<")
    );
    assert_eq!(
        get(&v, "WorkingDirectory").as_string(),
        Some("/Users/a&b <c>/.openclaw")
    );
}

/// An independent implementation (libplist's `plistutil`, Debian package libplist-utils)
/// must accept the golden file: XML → binary → XML keeps every value.
#[test]
fn plistutil_accepts_the_golden_plist() {
    if Command::new("plistutil").arg("--help").output().is_err() {
        assert!(!in_ci(), "plistutil (libplist-utils) is required in CI");
        eprintln!("SKIP: plistutil not installed (apt-get install libplist-utils)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("g.bplist");
    let back = dir.path().join("g.xml");
    let golden = golden_path();
    let st = Command::new("plistutil")
        .args([
            "-i".as_ref(),
            golden.as_os_str(),
            "-o".as_ref(),
            bin.as_os_str(),
            "-f".as_ref(),
            "bin".as_ref(),
        ])
        .status()
        .unwrap();
    assert!(st.success(), "plistutil rejected {}", golden.display());
    let st = Command::new("plistutil")
        .args([
            "-i".as_ref(),
            bin.as_os_str(),
            "-o".as_ref(),
            back.as_os_str(),
            "-f".as_ref(),
            "xml".as_ref(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let original = Value::from_file(&golden).unwrap();
    assert_eq!(Value::from_file(&bin).unwrap(), original);
    assert_eq!(Value::from_file(&back).unwrap(), original);
}
