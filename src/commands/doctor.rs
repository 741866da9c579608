//! `openclaw doctor [--repair|--fix] [--force] [--json] [--non-interactive] [--yes] [--deep]`:
//! runs the [`crate::doctor`] checks, applies the repairs when asked, checks again, prints.
use crate::config::paths::Paths;
use crate::doctor::{checks, render_json, render_text, repair, run_all};
use crate::error::{Exit, Result};

/// `doctor`.
#[derive(Debug, Clone, Default)]
pub(crate) struct DoctorOptions {
    /// Apply the repairs (backing up anything rewritten).
    pub repair: bool,
    /// JSON output.
    pub json: bool,
    /// Never prompt.
    #[expect(
        dead_code,
        reason = "doctor never prompts, so --non-interactive changes nothing"
    )]
    pub non_interactive: bool,
    /// Accept the recommended repairs (same as --repair).
    pub yes: bool,
    /// With --repair: also rewrite service files that carry operator edits (backed up first).
    pub force: bool,
    /// Also scan other profiles and system locations for competing gateways.
    pub deep: bool,
}

/// `openclaw doctor`.
pub(crate) fn run(paths: &Paths, args: &DoctorOptions) -> Result<Exit> {
    let repair = args.repair || args.yes;
    let all = checks::all();
    let ctx = checks::real_ctx(paths, args.deep, Some(reinstall));
    let first = run_all(&all, &ctx);
    let mut applied = Vec::new();
    let report = if repair && !first.repairable(args.force).is_empty() {
        applied = if args.json {
            // The install transaction reports progress on stdout; keep stdout one JSON document.
            with_stdout_on_stderr(|| repair::apply(&first, &ctx, args.force))
        } else {
            repair::apply(&first, &ctx, args.force)
        };
        drop(ctx);
        let again = checks::real_ctx(paths, args.deep, Some(reinstall));
        run_all(&all, &again)
    } else {
        first
    };
    if args.json {
        crate::ops::print_json(&render_json(&report, &applied));
    } else {
        println!(
            "OpenClaw doctor{} ({})",
            paths
                .profile
                .as_ref()
                .map(|p| format!(" (profile {p})"))
                .unwrap_or_default(),
            paths.config_path.display()
        );
        if repair {
            if applied.is_empty() {
                println!("Nothing to repair.");
            } else {
                println!("Repairs:");
                for a in &applied {
                    println!(
                        "  {} {}: {}",
                        if a.ok { "done" } else { "FAILED" },
                        a.check,
                        a.message
                    );
                }
            }
        }
        print!("{}", render_text(&report, args.force));
    }
    Ok(if report.failed() || applied.iter().any(|a| !a.ok) {
        Exit::Failure
    } else {
        Exit::Ok
    })
}

/// Runs `f` with file descriptor 1 pointing at stderr, then restores it.
fn with_stdout_on_stderr<T>(f: impl FnOnce() -> T) -> T {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let saved = nix::unistd::dup(std::io::stdout()).ok();
    let redirected = saved.is_some() && nix::unistd::dup2_stdout(std::io::stderr()).is_ok();
    let out = f();
    let _ = std::io::stdout().flush();
    if let (true, Some(fd)) = (redirected, saved) {
        let _ = nix::unistd::dup2_stdout(fd);
    }
    out
}

/// The install transaction doctor's `Reinstall` repair runs: `gateway install` with defaults.
fn reinstall(paths: &Paths) -> Result<()> {
    let args = super::service::InstallOptions {
        timeout: 30,
        ..Default::default()
    };
    super::service::install(paths, &args).map(|_| ())
}
