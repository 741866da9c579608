//! launchctl error numbers, decoded into what happened and what to do next.
//!
//! launchctl reports failures as `<Verb> failed: <N>: <strerror>` on stderr and (mostly) exits
//! with N. Numbers below 107 are errno values; 107+ are launchd's own table (`launchctl error
//! <N>` prints the text). Which number a situation produces varies between macOS releases
//! (docs/service-managers.md B4), so decoding looks at the verb and at what we observed (e.g. a
//! persisted disable) before giving advice.
use std::fmt;
use std::path::PathBuf;

/// A decoded launchctl failure number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(pub i32);

impl Code {
    /// launchd's / errno's text for the number.
    pub fn meaning(self) -> &'static str {
        match self.0 {
            1 => "Operation not permitted",
            2 => "No such file or directory",
            3 => "No such process",
            5 => "Input/output error",
            17 => "File exists",
            22 => "Invalid argument",
            37 => "Operation already in progress",
            107 => "Malformed bundle",
            108 => "Invalid path",
            109 => "Invalid property list",
            110 => "Invalid or missing service identifier",
            111 => "Invalid or missing Program/ProgramArguments",
            112 => "Could not find specified domain",
            113 => "Could not find specified service",
            114 => "The specified username does not exist",
            115 => "The specified group does not exist",
            118 => "Bad response from server",
            119 => "Service is disabled",
            121 => "Path not searched for services",
            122 => "Path had bad ownership/permissions",
            124 => "Domain is tearing down",
            125 => "Domain does not support specified action",
            134 => "Service cannot load in requested session",
            150 => "Operation not permitted while System Integrity Protection is engaged",
            _ => "unrecognised launchctl error",
        }
    }

    /// The job is not loaded (bootout/kickstart/print of an unknown label).
    pub fn is_not_loaded(self) -> bool {
        matches!(self.0, 3 | 113)
    }

    /// A bootstrap that may succeed when retried after the previous instance is gone.
    pub fn is_transient_bootstrap(self) -> bool {
        matches!(self.0, 5 | 37 | 124)
    }

    /// The `gui/<uid>` domain is missing (no GUI login: SSH, headless, sudo).
    pub fn is_no_gui_session(self) -> bool {
        matches!(self.0, 112 | 125 | 134)
    }
}

/// Extracts the failure number from launchctl's output, falling back to its exit status.
/// `Could not find service` (print/kickstart of an unloaded label) is 113 whatever the status.
pub(crate) fn code_of(status: i32, stderr: &str, stdout: &str) -> Code {
    let text = format!("{stderr}\n{stdout}");
    if let Some(i) = text.find("failed: ") {
        let rest = &text[i + 8..];
        let num: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = num.parse() {
            return Code(n);
        }
    }
    if text.contains("Could not find service") {
        return Code(113);
    }
    if text.contains("Operation already in progress") {
        return Code(37);
    }
    Code(status)
}

/// What we knew when a launchctl command failed, to make the advice specific.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Context {
    /// `launchctl print-disabled` shows a persisted disable for the label.
    pub disabled: bool,
    /// The service target (`gui/501/<label>`).
    pub target: String,
    /// The plist path.
    pub plist: PathBuf,
    /// The user id (for the no-GUI advice).
    pub uid: u32,
}

/// What to do next for a failed launchctl `verb` with `code`.
pub(crate) fn advice(verb: &str, code: Code, ctx: &Context) -> String {
    let enable = format!("launchctl enable {}", ctx.target);
    let plist = ctx.plist.display();
    match code.0 {
        _ if code.is_no_gui_session() => format!(
            "uid {} has no macOS GUI login session (SSH, headless or sudo): LaunchAgents run only inside a logged-in desktop session. \
             Log in at the Mac (or via Screen Sharing) and run the command there, without sudo; \
             to run without a login, use `openclaw gateway run` under your own supervisor",
            ctx.uid
        ),
        5 | 119 if ctx.disabled => format!(
            "the service is disabled by a persisted launchd override (it survives reboots and plist deletion): run `{enable}` and try again"
        ),
        119 => format!("the service is disabled: run `{enable}` and try again"),
        5 if verb == "bootstrap" => format!(
            "launchd refused to load {plist}: the label may still be loaded or tearing down, disabled, or the file may not be yours with mode 0644. \
             Check `launchctl print {}` and `launchctl print-disabled {}`, `ls -l {plist}`, then run `openclaw gateway install` again",
            ctx.target,
            ctx.target.rsplit_once('/').map(|(d, _)| d).unwrap_or(&ctx.target),
        ),
        37 | 124 => "launchd is still tearing down the previous instance: wait a few seconds and run the command again".into(),
        122 => format!("launchd requires the plist to be owned by you and not group/world-writable: run `chmod 644 {plist}` (and `chown $USER {plist}`), then try again"),
        2 | 108 => format!("the plist {plist} is missing or unreadable: run `openclaw gateway install`"),
        109..=111 => format!("launchd rejected {plist} as invalid: run `openclaw gateway install --force` to rewrite it (check with `plutil -lint {plist}`)"),
        3 | 113 => "the service is not loaded: run `openclaw gateway start` (or `openclaw gateway install` if it was never installed)".into(),
        1 | 150 => "launchctl was not permitted to act on the service: run as the logged-in user, without sudo".into(),
        n => format!("run `launchctl error {n}` for launchd's description and check `launchctl print {}`", ctx.target),
    }
}

/// Errors of the launchd adapter. Every message names what failed, where, and what to do.
#[derive(Debug)]
pub enum LaunchdError {
    /// A launchctl invocation failed.
    Launchctl {
        /// The argv as run.
        argv: Vec<String>,
        /// The decoded number.
        code: Code,
        /// Trimmed stderr (or stdout) of launchctl.
        output: String,
        /// What to do next.
        advice: String,
    },
    /// launchctl could not be run at all.
    Spawn {
        /// The argv.
        argv: Vec<String>,
        /// Why.
        source: std::io::Error,
    },
    /// A LaunchDaemon with the same label exists; an agent would be shadowed by or fight it.
    DaemonConflict {
        /// The label.
        label: String,
        /// What proves it (a path or `system/<label> is loaded`).
        evidence: String,
    },
    /// start/restart without an installed plist.
    NotInstalled {
        /// The label.
        label: String,
        /// Where the plist was expected.
        plist: PathBuf,
    },
    /// The gui domain is missing (observed before changing anything).
    NoGuiSession {
        /// The uid.
        uid: u32,
    },
    /// Run as root: a LaunchAgent must be managed as the user it runs as.
    RunningAsRoot,
    /// A secret would have been written into the plist.
    SecretInPlist {
        /// What (key name or `the gateway token from <config>`); never the value.
        what: String,
    },
    /// The service spec cannot be rendered.
    InvalidSpec(String),
    /// The gateway's config does not load, so the service would refuse to start.
    Config(crate::error::Error),
    /// A filesystem step failed.
    Io {
        /// Verb ("writing", "creating", …).
        verb: &'static str,
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A bounded wait ran out.
    Timeout {
        /// What we waited for.
        what: String,
        /// How long.
        secs: u64,
        /// What to do next.
        advice: String,
    },
    /// The job is loaded but did not reach `running`.
    NotRunning {
        /// The label.
        label: String,
        /// `launchctl print` summary.
        detail: String,
        /// The gateway's refusal message, when it left one.
        refusal: Option<String>,
        /// The log file.
        log: PathBuf,
    },
}

impl fmt::Display for LaunchdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchdError::Launchctl {
                argv,
                code,
                output,
                advice,
            } => {
                write!(f, "`{}` failed with {}: {}", argv.join(" "), code.0, code.meaning())?;
                if !output.is_empty() {
                    write!(f, " (launchctl said: {output})")?;
                }
                write!(f, ".\nNext: {advice}.")
            }
            LaunchdError::Spawn { argv, source } => write!(
                f,
                "cannot run `{}`: {source}. launchd management needs macOS's /bin/launchctl",
                argv.join(" ")
            ),
            LaunchdError::DaemonConflict { label, evidence } => write!(
                f,
                "refusing to install or start the LaunchAgent {label}: a system LaunchDaemon with the same label exists ({evidence}). \
                 Two gateways would fight over the port and status would report the wrong one. \
                 Remove the daemon first (`sudo launchctl bootout system/{label}` and delete /Library/LaunchDaemons/{label}.plist) \
                 or keep managing it yourself"
            ),
            LaunchdError::NotInstalled { label, plist } => write!(
                f,
                "the LaunchAgent {label} is not installed ({} does not exist): run `openclaw gateway install`",
                plist.display()
            ),
            LaunchdError::NoGuiSession { uid } => write!(
                f,
                "launchd domain gui/{uid} is not available: {}",
                advice("", Code(125), &Context { uid: *uid, ..Context::default() })
            ),
            LaunchdError::RunningAsRoot => f.write_str(
                "refusing to manage a LaunchAgent as root: it would land in root's domain, not yours. Run the command without sudo",
            ),
            LaunchdError::SecretInPlist { what } => write!(
                f,
                "refusing to write {what} into the LaunchAgent plist: secrets stay in the config file (0600), never in service definitions. \
                 Remove it from the service environment; the gateway reads its token from config at startup"
            ),
            LaunchdError::InvalidSpec(m) => write!(f, "cannot render the LaunchAgent: {m}"),
            LaunchdError::Config(e) => write!(
                f,
                "{e}\nThe service was not changed: the gateway would refuse this config at startup."
            ),
            LaunchdError::Io { verb, path, source } => {
                write!(f, "{verb} {}: {source}", path.display())
            }
            LaunchdError::Timeout { what, secs, advice } => {
                write!(f, "timed out after {secs} s waiting for {what}. Next: {advice}")
            }
            LaunchdError::NotRunning {
                label,
                detail,
                refusal,
                log,
            } => {
                write!(f, "the LaunchAgent {label} is loaded but not running: {detail}.")?;
                if let Some(r) = refusal {
                    write!(f, "\nThe gateway refused to start: {r}")?;
                    write!(f, "\nNext: fix the config, then run `openclaw gateway start`.")?;
                }
                write!(f, "\nLogs: {}", log.display())
            }
        }
    }
}

impl std::error::Error for LaunchdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LaunchdError::Spawn { source, .. } | LaunchdError::Io { source, .. } => Some(source),
            LaunchdError::Config(e) => Some(e),
            _ => None,
        }
    }
}

impl From<LaunchdError> for crate::error::Error {
    fn from(e: LaunchdError) -> Self {
        match e {
            LaunchdError::Config(inner) => inner,
            LaunchdError::Io { verb, path, source } => {
                crate::error::Error::Io { verb, path, source }
            }
            other => crate::error::Error::Msg(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_from_text_and_status() {
        assert_eq!(
            code_of(5, "Bootstrap failed: 5: Input/output error\n", ""),
            Code(5)
        );
        assert_eq!(
            code_of(1, "Bootstrap failed: 37: Operation already in progress", ""),
            Code(37)
        );
        assert_eq!(
            code_of(113, "", "Could not find service \"x\" in domain for port"),
            Code(113)
        );
        assert_eq!(
            code_of(3, "Boot-out failed: 3: No such process", ""),
            Code(3)
        );
        assert_eq!(code_of(125, "", ""), Code(125));
        assert!(Code(3).is_not_loaded() && Code(113).is_not_loaded());
        assert!(Code(37).is_transient_bootstrap());
        assert!(!Code(122).is_transient_bootstrap());
    }

    #[test]
    fn advice_is_specific() {
        let ctx = Context {
            disabled: true,
            target: "gui/501/ai.openclaw.gateway".into(),
            plist: "/p.plist".into(),
            uid: 501,
        };
        assert!(
            advice("bootstrap", Code(5), &ctx)
                .contains("launchctl enable gui/501/ai.openclaw.gateway")
        );
        let ctx2 = Context {
            disabled: false,
            ..ctx.clone()
        };
        let a = advice("bootstrap", Code(5), &ctx2);
        assert!(
            a.contains("print-disabled gui/501") && a.contains("0644"),
            "{a}"
        );
        assert!(advice("bootstrap", Code(125), &ctx).contains("SSH"));
        assert!(advice("bootstrap", Code(122), &ctx).contains("chmod 644 /p.plist"));
        assert!(advice("kickstart", Code(999), &ctx).contains("launchctl error 999"));
    }
}
