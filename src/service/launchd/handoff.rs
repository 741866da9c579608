//! The detached helper that finishes a plan for a caller running inside the service.
//!
//! When `openclaw gateway restart` runs in a process the gateway spawned (an agent tool, a
//! shell), `bootout`/`kickstart -k` kill the job's process group — the caller included — so a
//! plan executed in-process could stop half-way and leave the agent unloaded (openclaw #71929).
//! Instead the remaining launchctl steps go to `/bin/sh -c <script>`, started in its own process
//! group (launchd kills only the job's process group; `AbandonProcessGroup`, launchd.plist(5)).
//! The script waits for the caller to exit, then runs the steps with the same bounds as the
//! in-process executor: bootout tolerates "not loaded", the unload wait and the bootstrap
//! retries (37/5) are bounded. Its output is appended to the gateway log.
use std::fmt::Write as _;
use std::path::Path;

use super::plan::{Launchctl, Step};

/// Seconds the helper waits for the caller to exit.
pub const CALLER_WAIT_SECS: u32 = 60;
/// Seconds the helper waits for an unload.
pub const UNLOAD_WAIT_SECS: u32 = 15;
/// Bootstrap attempts in the helper.
pub const BOOTSTRAP_ATTEMPTS: u32 = 5;

/// Quotes `s` for POSIX sh.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=:@%+,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn cmd(launchctl: &str, l: &Launchctl) -> String {
    let mut argv = l.argv();
    argv[0] = launchctl.to_string();
    argv.iter()
        .map(|a| sh_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The helper script. Argument `$1` is the pid to wait for. `launchctl` is the binary's path,
/// `target` the service target polled while waiting for an unload, `log` where output goes.
pub fn script(steps: &[Step], launchctl: &str, target: &str, log: &Path) -> String {
    let lc = sh_quote(launchctl);
    let print = format!("{lc} print {} >/dev/null 2>&1", sh_quote(target));
    let ticks_caller = CALLER_WAIT_SECS * 5;
    let ticks_unload = UNLOAD_WAIT_SECS * 5;
    let mut s = String::new();
    // A failed redirection on `exec` would end the script, so check the directory first.
    let dir = log.parent().unwrap_or(Path::new("/"));
    let _ = writeln!(
        s,
        "if [ -d {d} ]; then exec >>{l} 2>&1; else exec >/dev/null 2>&1; fi; exec </dev/null",
        d = sh_quote(&dir.display().to_string()),
        l = sh_quote(&log.display().to_string()),
    );
    let _ = writeln!(
        s,
        "echo \"openclaw launchd helper: waiting for pid $1 to exit\""
    );
    let _ = writeln!(
        s,
        "i=0; while kill -0 \"$1\" 2>/dev/null && [ $i -lt {ticks_caller} ]; do i=$((i+1)); sleep 0.2; done"
    );
    for step in steps {
        match step {
            Step::Run(l @ Launchctl::Bootout { .. }) => {
                let _ = writeln!(s, "echo \"openclaw launchd helper: {}\"", l);
                let _ = writeln!(
                    s,
                    "{} || {{ rc=$?; case $rc in 3|113) ;; *) echo \"bootout failed: $rc\"; exit $rc;; esac; }}",
                    cmd(launchctl, l)
                );
            }
            Step::Run(l @ Launchctl::Bootstrap { .. }) => {
                let _ = writeln!(s, "echo \"openclaw launchd helper: {}\"", l);
                let _ = writeln!(
                    s,
                    "n=0; until {}; do rc=$?; n=$((n+1)); case $rc in 5|37|124) ;; *) echo \"bootstrap failed: $rc\"; exit $rc;; esac; \
                     [ $n -ge {BOOTSTRAP_ATTEMPTS} ] && {{ echo \"bootstrap still failing after $n attempts: $rc\"; exit $rc; }}; sleep $n; done",
                    cmd(launchctl, l)
                );
            }
            Step::Run(l) => {
                let _ = writeln!(s, "echo \"openclaw launchd helper: {}\"", l);
                let _ = writeln!(
                    s,
                    "{} || {{ rc=$?; echo \"{} failed: $rc\"; exit $rc; }}",
                    cmd(launchctl, l),
                    l.verb()
                );
            }
            Step::WaitUnloaded => {
                let _ = writeln!(
                    s,
                    "i=0; while {print} && [ $i -lt {ticks_unload} ]; do i=$((i+1)); sleep 0.2; done"
                );
            }
            // File steps and verification never reach the helper (see plan::hand_off).
            _ => {}
        }
    }
    let _ = writeln!(s, "echo \"openclaw launchd helper: done\"");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("/bin/launchctl"), "/bin/launchctl");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
