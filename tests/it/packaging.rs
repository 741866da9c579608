//! Packaging (issue 9): the Debian package built by `packaging/deb/build-deb` from the binary
//! under test (`--profile <its profile> --no-build`: CI packages what the suite already built,
//! no release build), its contents and lintian verdict, and the Homebrew formula evaluated
//! against the golden LaunchAgent plist.
//!
//! Needs `cargo deb`, `dpkg-deb`, `lintian` and `ruby` (CI installs them); outside CI a missing
//! tool is a visible SKIP, under `CI=true` a failure.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

use crate::support::BIN;

/// The repository root (tests run with the package root as working directory).
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Visible skip outside CI, failure under `CI=true`.
fn skip_or_fail(test: &str, why: &str) {
    assert!(!in_ci(), "{test}: cannot run under CI=true: {why}");
    eprintln!("SKIP: {test}: {why}");
}

fn have(tool: &str, args: &[&str]) -> bool {
    Command::new(tool)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run_ok(c: &mut Command) -> String {
    let o = c.output().unwrap_or_else(|e| panic!("running {c:?}: {e}"));
    assert!(o.status.success(), "{c:?} failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The built package and its extracted tree.
#[derive(Debug)]
pub struct Deb {
    /// The .deb file.
    pub file: PathBuf,
    /// `dpkg-deb -x` of it.
    pub root: PathBuf,
}

/// Where this target dir keeps the package under test (shared by outer and sandboxed runs).
fn deb_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("packaging")
}

/// Builds the .deb once per test process from the binary under test; `Err` names a missing tool.
pub fn deb() -> Result<&'static Deb, String> {
    static DEB: OnceLock<Result<Deb, String>> = OnceLock::new();
    DEB.get_or_init(build_deb).as_ref().map_err(Clone::clone)
}

fn build_deb() -> Result<Deb, String> {
    if !have("cargo", &["deb", "--version"]) {
        return Err("needs cargo-deb (`cargo install cargo-deb --locked`)".into());
    }
    if !have("dpkg-deb", &["--version"]) {
        return Err("needs dpkg-deb (Debian: dpkg)".into());
    }
    // Package the binary the suite runs: <target>/<profile dir>/openclaw.
    let bin = Path::new(BIN);
    let profile_dir = bin.parent().unwrap();
    let target = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => panic!("unexpected binary path {BIN}"),
    };
    let dir = deb_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = run_ok(
        Command::new(repo().join("packaging/deb/build-deb"))
            .args(["--profile", profile, "--no-build", "--fast", "--output"])
            .arg(&dir)
            .env("CARGO_TARGET_DIR", target)
            .current_dir(repo()),
    );
    let file = PathBuf::from(out.lines().last().unwrap_or_default().trim());
    assert!(
        file.extension().is_some_and(|e| e == "deb") && file.is_file(),
        "build-deb did not print a .deb path: {out}"
    );
    let root = dir.join("root");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&file).arg(&root));
    Ok(Deb { file, root })
}

/// `Key: value` fields of `dpkg-deb -f`.
fn control(file: &Path) -> BTreeMap<String, String> {
    let out = run_ok(Command::new("dpkg-deb").arg("-f").arg(file));
    let mut m = BTreeMap::new();
    let mut last = String::new();
    for line in out.lines() {
        if line.starts_with(' ') {
            m.entry(last.clone())
                .and_modify(|v: &mut String| v.push_str(&format!("\n{line}")));
        } else if let Some((k, v)) = line.split_once(": ") {
            last = k.to_string();
            m.insert(last.clone(), v.to_string());
        }
    }
    m
}

#[test]
fn deb_ships_binary_units_completions_and_man_pages() {
    let test = "packaging::deb_ships_binary_units_completions_and_man_pages";
    let deb = match deb() {
        Ok(d) => d,
        Err(why) => return skip_or_fail(test, &why),
    };
    // `dpkg-deb -c`: paths and modes as dpkg will install them.
    let listing = run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb.file));
    let entries: BTreeMap<String, String> = listing
        .lines()
        .filter_map(|l| {
            let mode = l.split_whitespace().next()?.to_string();
            let path = l
                .split_whitespace()
                .last()?
                .trim_start_matches('.')
                .to_string();
            Some((path, mode))
        })
        .collect();
    for (path, mode) in [
        ("/usr/bin/openclaw", "-rwxr-xr-x"),
        (
            "/usr/lib/systemd/user/openclaw-gateway.service",
            "-rw-r--r--",
        ),
        (
            "/usr/lib/systemd/user/openclaw-gateway.socket",
            "-rw-r--r--",
        ),
        (
            "/usr/lib/systemd/system/openclaw-gateway.service",
            "-rw-r--r--",
        ),
        (
            "/usr/lib/systemd/system/openclaw-gateway.socket",
            "-rw-r--r--",
        ),
        (
            "/usr/share/bash-completion/completions/openclaw",
            "-rw-r--r--",
        ),
        ("/usr/share/zsh/vendor-completions/_openclaw", "-rw-r--r--"),
        (
            "/usr/share/fish/vendor_completions.d/openclaw.fish",
            "-rw-r--r--",
        ),
        ("/usr/share/man/man1/openclaw.1.gz", "-rw-r--r--"),
        (
            "/usr/share/man/man1/openclaw-gateway-install.1.gz",
            "-rw-r--r--",
        ),
        ("/usr/share/doc/openclaw/copyright", "-rw-r--r--"),
        ("/usr/share/doc/openclaw/changelog.Debian.gz", "-rw-r--r--"),
    ] {
        assert_eq!(
            entries.get(path).map(String::as_str),
            Some(mode),
            "{path} in the package with mode {mode}:\n{listing}"
        );
    }
    // Nothing is installed into /etc: no enablement symlinks, no conffiles.
    assert!(
        !entries.keys().any(|p| p.starts_with("/etc")),
        "the package must not ship /etc (enablement is the user's choice):\n{listing}"
    );
    // One source: the packaged units are units/ byte for byte.
    for (packaged, golden) in [
        (
            "usr/lib/systemd/user/openclaw-gateway.service",
            "units/openclaw-gateway.service",
        ),
        (
            "usr/lib/systemd/user/openclaw-gateway.socket",
            "units/openclaw-gateway.socket",
        ),
        (
            "usr/lib/systemd/system/openclaw-gateway.service",
            "units/packaged-system/openclaw-gateway.service",
        ),
        (
            "usr/lib/systemd/system/openclaw-gateway.socket",
            "units/packaged-system/openclaw-gateway.socket",
        ),
    ] {
        assert_eq!(
            std::fs::read(deb.root.join(packaged)).unwrap(),
            std::fs::read(repo().join(golden)).unwrap(),
            "{packaged} differs from {golden}"
        );
    }
    // The packaged binary is the one under test, and the user unit runs it.
    let v = run_ok(Command::new(deb.root.join("usr/bin/openclaw")).arg("--version"));
    assert_eq!(v.trim(), format!("openclaw {}", env!("CARGO_PKG_VERSION")));
    let unit = std::fs::read_to_string(
        deb.root
            .join("usr/lib/systemd/user/openclaw-gateway.service"),
    )
    .unwrap();
    assert!(
        unit.lines()
            .any(|l| l.starts_with("ExecStart=/usr/bin/openclaw gateway run")),
        "{unit}"
    );
    // Completions and man pages come from that binary.
    let bash = std::fs::read_to_string(
        deb.root
            .join("usr/share/bash-completion/completions/openclaw"),
    )
    .unwrap();
    assert_eq!(
        bash,
        run_ok(Command::new(BIN).args(["completions", "bash"]))
    );
    // `dpkg-deb -I`: control fields and the maintainer scripts.
    let f = control(&deb.file);
    assert_eq!(f["Package"], "openclaw");
    assert_eq!(f["Version"], format!("{}-1", env!("CARGO_PKG_VERSION")));
    assert!(f["Depends"].contains("libc6"), "{f:?}");
    assert!(
        f["Description"].lines().next().unwrap().len() <= 80,
        "{f:?}"
    );
    let info = run_ok(Command::new("dpkg-deb").arg("-I").arg(&deb.file));
    for script in ["postinst", "prerm", "postrm"] {
        assert!(info.contains(script), "no {script} in:\n{info}");
    }
}

/// Lintian tags accepted, each with its reason. Everything else (errors and warnings) fails.
const LINTIAN_ACCEPTED: &[(&str, &str)] = &[(
    "initial-upload-closes-no-bugs",
    "about Debian's archive process (an ITP bug); this package is not uploaded to Debian",
)];

#[test]
fn deb_passes_lintian() {
    let test = "packaging::deb_passes_lintian";
    let deb = match deb() {
        Ok(d) => d,
        Err(why) => return skip_or_fail(test, &why),
    };
    if !have("lintian", &["--version"]) {
        return skip_or_fail(test, "needs lintian (Debian: apt-get install lintian)");
    }
    // Lintian works offline; it only reads the package.
    let o = Command::new("lintian")
        .args(["--tag-display-limit", "0", "--fail-on", "none"])
        .arg(&deb.file)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    eprintln!("lintian {}:\n{out}", deb.file.display());
    assert!(o.status.success(), "lintian itself failed: {}", text(&o));
    let bad: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("E: ") || l.starts_with("W: "))
        .filter(|l| {
            !LINTIAN_ACCEPTED
                .iter()
                .any(|(tag, _)| l.contains(&format!(": {tag}")))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "lintian errors/warnings:\n{}",
        bad.join("\n")
    );
}

/// A plist value as JSON (strings, integers, booleans, arrays, dicts are all the plist uses).
fn plist_json(v: &plist::Value) -> Value {
    match v {
        plist::Value::Dictionary(d) => {
            Value::Object(d.iter().map(|(k, v)| (k.clone(), plist_json(v))).collect())
        }
        plist::Value::Array(a) => Value::Array(a.iter().map(plist_json).collect()),
        plist::Value::Boolean(b) => Value::Bool(*b),
        plist::Value::String(s) => Value::String(s.clone()),
        plist::Value::Integer(i) => Value::from(i.as_signed().expect("small integer")),
        other => panic!("unexpected plist value {other:?}"),
    }
}

/// The golden plist as a JSON value (parsed by the `plist` crate).
fn golden_plist() -> Value {
    let v = plist::Value::from_file(repo().join("plists/ai.openclaw.gateway.plist"))
        .expect("parsing plists/ai.openclaw.gateway.plist");
    plist_json(&v)
}

/// Evaluates the formula with the DSL stand-in; `HOME` as on the golden plist's Mac.
fn formula() -> Value {
    let out = run_ok(
        Command::new("ruby")
            .arg(repo().join("tests/it/packaging/brew_stub.rb"))
            .arg(repo().join("packaging/homebrew/openclaw.rb"))
            .env("HOME", "/Users/alice"),
    );
    serde_json::from_str(&out).expect("the stub prints JSON")
}

#[test]
fn homebrew_service_matches_the_golden_plist() {
    let test = "packaging::homebrew_service_matches_the_golden_plist";
    if !have("ruby", &["--version"]) {
        return skip_or_fail(test, "needs ruby (Debian: apt-get install ruby)");
    }
    let f = formula();
    let s = &f["service"];
    let g = golden_plist();
    // Same job identity as `openclaw gateway install`.
    assert_eq!(s["Label"], g["Label"]);
    for k in [
        "RunAtLoad",
        "ThrottleInterval",
        "ProcessType",
        "StandardInPath",
        "StandardOutPath",
        "StandardErrorPath",
    ] {
        assert_eq!(s[k], g[k], "{k}: formula {} vs plist {}", s[k], g[k]);
    }
    // Keep-alive: the condition Homebrew can write is the plist's.
    assert_eq!(
        s["KeepAlive"]["SuccessfulExit"],
        g["KeepAlive"]["SuccessfulExit"]
    );
    // Environment: the plist's, except what launchd's HOME provides at run time.
    let genv = g["EnvironmentVariables"].as_object().unwrap();
    let senv = s["EnvironmentVariables"].as_object().unwrap();
    for (k, v) in genv {
        match k.as_str() {
            "HOME" | "OPENCLAW_STATE_DIR" | "OPENCLAW_CONFIG_PATH" => {
                assert!(senv.get(k).is_none(), "{k} is per-user, not per-formula")
            }
            _ => assert_eq!(senv.get(k), Some(v), "EnvironmentVariables.{k}"),
        }
    }
    assert_eq!(senv.len(), genv.len() - 3, "{senv:?}");
    // The socket the gateway activates ("Listeners"), on the plist's IPv4 address and port.
    let gl = &g["Sockets"]["Listeners"][0];
    let sl = &s["Sockets"]["Listeners"];
    assert_eq!(sl["SockNodeName"], gl["SockNodeName"]);
    assert_eq!(sl["SockServiceName"], gl["SockServiceName"]);
    assert_eq!(sl["SockProtocol"], "TCP");
    // Program: the plist's argv plus --init (no `openclaw setup` before `brew services start`),
    // behind the /bin/sh prologue that sets what the DSL cannot.
    let argv: Vec<&str> = s["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(&argv[..2], ["/bin/sh", "-c"]);
    assert_eq!(argv[4], "/opt/homebrew/opt/openclaw/bin/openclaw");
    let gargv: Vec<&str> = g["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = gargv[1..].to_vec();
    expected.insert(2, "--init");
    assert_eq!(&argv[5..], &expected[..]);
    // The flags it passes exist in the binary: `gateway run --init --port N` parses.
    let help = run_ok(Command::new(BIN).args(["gateway", "run", "--help"]));
    assert!(help.contains("--init") && help.contains("--port"), "{help}");
}

#[test]
fn homebrew_prologue_sets_umask_open_files_and_a_private_state_dir() {
    let test = "packaging::homebrew_prologue_sets_umask_open_files_and_a_private_state_dir";
    if !have("ruby", &["--version"]) {
        return skip_or_fail(test, "needs ruby (Debian: apt-get install ruby)");
    }
    let f = formula();
    let argv: Vec<String> = f["service"]["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let (script, arg0) = (&argv[2], &argv[3]);
    // Run the prologue for real (/bin/sh), exec'ing a probe instead of the gateway.
    let home = tempfile::tempdir().unwrap();
    let out = run_ok(
        Command::new("/bin/sh")
            .args(["-c", script, arg0])
            .args(["/bin/sh", "-c", "umask; ulimit -S -n; ulimit -H -n; pwd"])
            .env("HOME", home.path()),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim_start_matches('0'), "77", "umask: {out}");
    let (soft, hard) = (lines[1], lines[2]);
    let want = if hard == "unlimited" || hard.parse::<u64>().unwrap() >= 10240 {
        "10240".to_string()
    } else {
        hard.to_string()
    };
    if soft != want {
        // The soft limit is only raised up to the hard one; ours may be lower.
        assert!(
            hard != "unlimited" && hard.parse::<u64>().unwrap() < 10240,
            "soft open-files limit {soft}, hard {hard}: {out}"
        );
    }
    let state = home.path().join(".openclaw");
    assert_eq!(Path::new(lines[3]), state, "working directory: {out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "state dir mode {mode:o}");
    // A state dir that cannot be created: a message, exit 0 (launchd does not respawn it).
    let o = Command::new("/bin/sh")
        .args(["-c", script, arg0, "/bin/echo", "gateway-started"])
        .env("HOME", "/proc/nonexistent-home")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("gateway-started"));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot use /proc/nonexistent-home/.openclaw"),
        "{}",
        text(&o)
    );
}

#[test]
fn homebrew_install_builds_from_source_with_completions_and_man_pages() {
    let test = "packaging::homebrew_install_builds_from_source_with_completions_and_man_pages";
    if !have("ruby", &["--version"]) {
        return skip_or_fail(test, "needs ruby (Debian: apt-get install ruby)");
    }
    let f = formula();
    let calls: Vec<Vec<String>> = serde_json::from_value(f["install"].clone()).unwrap();
    assert_eq!(
        calls[0][..3],
        ["system", "cargo", "install"],
        "cargo install with std_cargo_args: {calls:?}"
    );
    assert!(calls[0].contains(&"--locked".to_string()));
    assert_eq!(
        calls[1][0], "generate_completions_from_executable",
        "{calls:?}"
    );
    assert_eq!(calls[1][2], "completions");
    assert_eq!(calls[2][2..4], ["man", "--out-dir"]);
    // What Homebrew then runs exists: `openclaw completions <shell>` for its three shells,
    // `openclaw man --out-dir DIR`.
    for shell in ["bash", "zsh", "fish"] {
        let s = run_ok(Command::new(BIN).args(["completions", shell]));
        assert!(s.contains("gateway"), "{shell}: {s}");
    }
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        Command::new(BIN)
            .arg("man")
            .arg("--out-dir")
            .arg(dir.path()),
    );
    assert!(dir.path().join("openclaw.1").is_file());
    assert_eq!(f["fields"]["license"], "MIT");
    assert!(f["caveats"].as_str().unwrap().contains("auth-token"));
}
