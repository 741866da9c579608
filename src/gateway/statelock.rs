//! The state-directory lock: one gateway per state dir. Two gateways sharing one (same `HOME`,
//! different ports) would fight over its identity, config writes and logs, so the second one
//! refuses at startup (exit 78, naming the holder and what to do).
//!
//! `flock(LOCK_EX|LOCK_NB)` on `<state>/gateway.lock` (0600), held for the life of the process
//! (in-process restarts keep it); the kernel releases it when the process dies, so a crash
//! never leaves a stale lock. The file records the holder's pid for the message only.
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// A held state-dir lock (released on drop / process exit). `None` inside when the state dir
/// is read-only: nothing can be written there, so there is nothing to protect, and a gateway
/// on a read-only state dir must still start.
#[derive(Debug)]
pub(crate) struct StateLock {
    _lock: Option<Flock<File>>,
}

/// `<state>/gateway.lock`.
pub(crate) fn lock_path(state_dir: &Path) -> PathBuf {
    state_dir.join("gateway.lock")
}

impl StateLock {
    /// Takes the lock or fails at once with the refusal (exit 78).
    pub(crate) fn acquire(state_dir: &Path) -> Result<StateLock> {
        Self::acquire_within(state_dir, Duration::ZERO)
    }

    /// Takes the lock, retrying for up to `wait` (e.g. after `--force` stopped the holder).
    pub(crate) fn acquire_within(state_dir: &Path, wait: Duration) -> Result<StateLock> {
        let path = lock_path(state_dir);
        let deadline = Instant::now() + wait;
        loop {
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EROFS as i32) => {
                    tracing::warn!(
                        "state directory {} is read-only: running without the state-dir lock (nothing can be written there)",
                        state_dir.display()
                    );
                    return Ok(StateLock { _lock: None });
                }
                Err(e) => return Err(Error::io("opening the state-dir lock", &path, e)),
            };
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(mut lock) => {
                    let _ = lock.set_len(0);
                    let _ = lock.seek(SeekFrom::Start(0));
                    let _ = writeln!(lock, "{}", std::process::id());
                    let _ = lock.sync_data();
                    return Ok(StateLock { _lock: Some(lock) });
                }
                Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                    if Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    return Err(refusal(state_dir, &path, text.trim().parse().ok()));
                }
                Err((_, e)) => {
                    return Err(Error::io(
                        "locking",
                        &path,
                        std::io::Error::from_raw_os_error(e as i32),
                    ));
                }
            }
        }
    }
}

fn refusal(state_dir: &Path, path: &Path, pid: Option<u32>) -> Error {
    let holder = match pid {
        Some(p) => format!("pid {p}"),
        None => "another process".to_string(),
    };
    let stop = match pid {
        Some(p) => format!("`openclaw gateway stop` if it is the service, else `kill {p}`"),
        None => "`openclaw gateway stop`".to_string(),
    };
    Error::Config(format!(
        "Gateway failed to start: another gateway ({holder}) is already using the state directory {} (lock {}).\nOne state directory serves one gateway. Stop that one first ({stop}), or give this gateway its own state with OPENCLAW_STATE_DIR=<dir> or --profile <name>.",
        state_dir.display(),
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_pid() {
        let d = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(d.path()).unwrap();
        // flock locks belong to the open file description: a second open conflicts even in
        // the same process, exactly as a second gateway would.
        let e = StateLock::acquire(d.path()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("OPENCLAW_STATE_DIR"), "{msg}");
        assert_eq!(e.exit(), crate::error::Exit::Config);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(lock_path(d.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(first);
        assert!(StateLock::acquire(d.path()).is_ok());
    }
}
