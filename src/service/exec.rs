//! Running service-manager programs (`systemctl`, `launchctl`) behind a trait, so plans can be
//! executed against a recording fake in tests and the real program in production.
use std::process::Command;

/// What a finished command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit status (`-1` when killed by a signal).
    pub status: i32,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
}

impl Output {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// Runs an argv and captures its output.
pub trait CommandRunner {
    /// Runs `argv[0]` with the remaining arguments.
    fn run(&self, argv: &[String]) -> std::io::Result<Output>;

    /// Starts `argv` detached (own process group, stdio on /dev/null) without waiting, and
    /// returns its pid. Used for helpers that must outlive the caller's service (launchd
    /// restart hand-off). Runners that cannot do this say so.
    fn spawn_detached(&self, argv: &[String]) -> std::io::Result<u32> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("this command runner cannot start detached processes ({argv:?})"),
        ))
    }
}

/// The real runner: `std::process::Command`, no shell.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run(&self, argv: &[String]) -> std::io::Result<Output> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty argv"))?;
        let out = Command::new(prog).args(args).output()?;
        Ok(Output {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn spawn_detached(&self, argv: &[String]) -> std::io::Result<u32> {
        use std::os::unix::process::CommandExt;
        use std::process::Stdio;
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty argv"))?;
        let child = Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        Ok(child.id())
    }
}
