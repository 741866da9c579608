//! File modes after every command that writes state: the state dir (and every directory we
//! create under it) is 0700, the config, its backup and the identity key are 0600, and the
//! log directory/file are 0700/0600 — under a permissive umask and when the state dir was
//! created beforehand by someone else's habits (mkdir with 0755).
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{self, Gateway};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file and directory below `dir` (inclusive).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// Asserts 0700 directories and 0600 files below `dir`; returns how many entries it checked.
fn assert_private_tree(dir: &Path, after: &str) -> usize {
    let all = walk(dir);
    for p in &all {
        let m = mode(p);
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(m, want, "after {after}: {} has mode {m:o}", p.display());
    }
    all.len()
}

/// `openclaw ARGS` under umask 000 (no std API for umask: a shell sets it, then execs) with
/// the private environment of [`support::command`].
fn umask0(home: &Path, args: &[&str]) -> Command {
    let base = support::command(home);
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(support::BIN)
        .args(args);
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh
}

fn run_umask0(home: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = umask0(home, args).output().expect("run openclaw");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn setup_and_run_leave_a_private_state_dir_under_a_permissive_umask() {
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join(".openclaw");
    // The user created the dir by hand, world-readable.
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();

    let (code, err) = run_umask0(home.path(), &["setup"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("set it to 0700"),
        "the tightening is announced: {err}"
    );
    let n = assert_private_tree(&state, "setup");
    assert!(n >= 2, "config written");

    // A second setup with --port rewrites the config (and writes the .bak).
    let (code, err) = run_umask0(home.path(), &["setup", "--port", "18999"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(state.join("openclaw.json.bak").exists());
    assert_private_tree(&state, "setup --port");

    // Starting the gateway writes the identity key; the log dir is created too.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
    let gw_home = home.path().to_path_buf();
    let c = umask0(&gw_home, &["gateway", "run", "--port", "0"]);
    let mut gw = Gateway::spawn(tempfile::tempdir().unwrap(), c, String::new());
    assert!(state.join("identity").join("gateway.json").exists());
    assert_private_tree(&state, "gateway run");
    let logs = gw_home.join("logs");
    assert_private_tree(&logs, "gateway run (logs)");
    gw.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(gw.wait_exit(support::WAIT).is_some());
}

#[test]
fn first_run_token_generation_and_init_write_private_files() {
    for args in [
        &["gateway", "run", "--init", "--port", "0"][..],
        &["gateway", "run", "--allow-unconfigured", "--port", "0"][..],
    ] {
        let home = tempfile::tempdir().unwrap();
        let c = umask0(home.path(), args);
        let holder = tempfile::tempdir().unwrap();
        let mut gw = Gateway::spawn(holder, c, String::new());
        let state = home.path().join(".openclaw");
        let cfg = std::fs::read_to_string(state.join("openclaw.json")).unwrap();
        assert!(cfg.contains("\"token\""), "a token was generated: {cfg}");
        assert_private_tree(&state, &args.join(" "));
        gw.signal(nix::sys::signal::Signal::SIGTERM);
        assert!(gw.wait_exit(support::WAIT).is_some());
    }
}

/// Issue 20: a user-written 0644 config was left 0644 (it holds the gateway's credentials), also
/// when `OPENCLAW_CONFIG_PATH` puts it outside the state dir.
#[test]
fn a_readable_config_is_tightened_to_0600_wherever_it_lives() {
    let elsewhere = tempfile::tempdir().unwrap();
    let cfg = elsewhere.path().join("gateway.json5");
    let b = Gateway::builder();
    std::fs::write(&cfg, b.config.clone().unwrap()).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let gw = b
        .no_config()
        .env("OPENCLAW_CONFIG_PATH", cfg.to_str().unwrap())
        .start();
    assert_eq!(mode(&cfg), 0o600);
    assert!(
        gw.stderr()
            .contains(&format!("note: config {} was readable", cfg.display())),
        "{}",
        gw.stderr()
    );
}

/// Issue 20: a config path that is a directory exited 1, which `Restart=on-failure` repeats
/// forever; it is a startup refusal (78) naming the path.
#[test]
fn a_config_path_that_is_a_directory_is_a_startup_refusal() {
    let f = Gateway::builder().no_config().run_to_exit_with(|home| {
        let dir = home.join(".openclaw/openclaw.json");
        std::fs::create_dir_all(&dir).unwrap();
    });
    assert_eq!(f.status.code(), Some(78), "{}", f.stderr);
    let path = f.home.path().join(".openclaw/openclaw.json");
    assert!(
        f.stderr.contains(&format!(
            "config {} is a directory: the config must be a regular file.",
            path.display()
        )),
        "{}",
        f.stderr
    );
}
