//! Helpers for the operator-CLI tests: run `openclaw` in a private HOME (borrowed, so one HOME
//! can outlive several gateway processes), gateways at a fixed port in a profile's config,
//! and a line-streaming child for `logs --follow`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{Listening, command, free_port, random_token, spawn_listening};

/// A finished CLI run.
#[derive(Debug)]
pub struct Run {
    /// Exit status.
    pub status: ExitStatus,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Run {
    /// The exit code.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
    /// stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `openclaw ARGS` in `home` with extra env, bounded by 20 s.
pub fn run(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = command(home);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openclaw");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("openclaw {args:?} did not exit within 20s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// The state dir of a profile under `home` (`.openclaw`, `.openclaw-<p>`).
pub fn state_dir(home: &Path, profile: Option<&str>) -> PathBuf {
    home.join(match profile {
        Some(p) => format!(".openclaw-{p}"),
        None => ".openclaw".into(),
    })
}

/// Writes a profile's config (dir 0700, file 0600).
pub fn write_config(home: &Path, profile: Option<&str>, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = state_dir(home, profile);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let p = dir.join("openclaw.json");
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A local config with a fixed port and token.
/// Hot reload is off: tests rewrite the config the CLI reads while a gateway runs from the same
/// HOME, and a watching gateway would otherwise follow the edit (e.g. restart onto a new port).
pub fn local_config(port: u16, token: &str) -> String {
    format!(
        "{{ gateway: {{ mode: 'local', port: {port}, reload: {{ mode: 'off' }}, auth: {{ mode: 'token', token: '{token}' }} }} }}"
    )
}

/// A gateway process in a borrowed HOME (killed on drop; the HOME is the caller's).
pub struct Gw {
    child: Child,
    /// Port.
    pub port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Gw {
    /// Starts `openclaw [global] gateway run` in `home` and waits for its listening line.
    pub fn start(home: &Path, global: &[&str], env: &[(&str, &str)]) -> Gw {
        let mut c = command(home);
        c.args(global).args(["gateway", "run"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let Listening {
            child,
            port,
            stderr,
            ..
        } = spawn_listening(c);
        Gw {
            child,
            port,
            stderr,
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait for exit (bounded).
    pub fn stop(mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "gateway ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A HOME with a running default-profile gateway on a fixed port (in config).
pub struct Local {
    /// The HOME.
    pub home: tempfile::TempDir,
    /// Gateway.
    pub gw: Gw,
    /// Token.
    pub token: String,
}

impl Local {
    /// Starts one.
    pub fn start() -> Local {
        let home = tempfile::tempdir().unwrap();
        let token = random_token();
        // A free port recorded in config, so the CLI resolves it without flags.
        let port = free_port();
        write_config(home.path(), None, &local_config(port, &token));
        let gw = Gw::start(home.path(), &[], &[]);
        assert_eq!(gw.port, port);
        Local { home, gw, token }
    }
    /// Runs the CLI in this HOME.
    pub fn run(&self, args: &[&str]) -> Run {
        run(self.home.path(), args, &[])
    }
}

/// A child whose stdout/stderr lines are streamed (for `logs --follow`).
pub struct Streaming {
    child: Child,
    rx: mpsc::Receiver<(bool, String)>,
    /// Every stdout line so far.
    pub out: Vec<String>,
    /// Every stderr line so far.
    pub err: Vec<String>,
}

impl Streaming {
    /// Spawns `openclaw ARGS` in `home`.
    pub fn spawn(home: &Path, args: &[&str]) -> Streaming {
        let mut c = command(home);
        c.args(args);
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn openclaw");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send((true, l));
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send((false, l));
            }
        });
        Streaming {
            child,
            rx,
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    /// Waits until a stdout (`stdout=true`) or stderr line satisfies `pred`.
    pub fn wait_for(
        &mut self,
        stdout: bool,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        // Lines already seen count too.
        if (if stdout { &self.out } else { &self.err })
            .iter()
            .any(|l| pred(l))
        {
            return true;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((is_out, l)) => {
                    let hit = is_out == stdout && pred(&l);
                    if is_out {
                        self.out.push(l);
                    } else {
                        self.err.push(l);
                    }
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Waits until at least `n` stdout lines from index `from` on satisfy `pred`.
    pub fn wait_count(
        &mut self,
        from: usize,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let have = self.out.iter().skip(from).filter(|l| pred(l)).count();
            if have >= n {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((true, l)) => self.out.push(l),
                Ok((false, l)) => self.err.push(l),
                Err(_) => return false,
            }
        }
    }

    /// Kills the child and collects what it printed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.wait_exit(Duration::from_secs(5));
    }

    /// True while running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for exit (bounded) and drains output.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                while let Ok((is_out, l)) = self.rx.recv_timeout(Duration::from_millis(200)) {
                    if is_out {
                        self.out.push(l);
                    } else {
                        self.err.push(l);
                    }
                }
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
