//! The pure plan, table-tested: every op against every observed state, with exact steps.
use std::path::Path;

use openclaw::service::launchd::plan::{Desired, Observed, OnDisk, hand_off, plan};
use openclaw::service::launchd::plist::{parse_definition, render};
use openclaw::service::launchd::print::parse_print;
use openclaw::service::launchd::{Domain, LaunchdJob, Op, Step};

use super::{fixture, spec};

const T: &str = "gui/501/ai.openclaw.gateway";
const P: &str = "/Users/alice/Library/LaunchAgents/ai.openclaw.gateway.plist";

fn desired() -> Desired {
    let home = Path::new("/Users/alice");
    Desired {
        label: "ai.openclaw.gateway".into(),
        domain: Domain::Gui(501),
        plist_path: P.into(),
        rendered: render(&LaunchdJob::from_spec(&spec(home), home).unwrap()),
    }
}

fn on_disk(text: &str) -> Option<OnDisk> {
    Some(OnDisk {
        bytes: text.as_bytes().to_vec(),
        definition: parse_definition(text.as_bytes()).ok(),
    })
}

/// Nothing installed, GUI session present.
fn empty() -> Observed {
    Observed {
        uid: 501,
        gui_available: true,
        disabled: Some(false),
        ..Observed::default()
    }
}

/// Installed (current file) and loaded per the fixture.
fn loaded(fixture_name: &str) -> Observed {
    Observed {
        on_disk: on_disk(&desired().rendered),
        loaded: Some(parse_print(&fixture(fixture_name))),
        ..empty()
    }
}

fn show(steps: &[Step]) -> Vec<String> {
    steps.iter().map(ToString::to_string).collect()
}

fn run(op: Op, obs: &Observed) -> Vec<String> {
    show(&plan(op, &desired(), obs).unwrap_or_else(|e| panic!("{op:?}: {e}")))
}

fn enable() -> String {
    format!("launchctl enable {T}")
}
fn bootstrap() -> String {
    format!("launchctl bootstrap gui/501 {P}")
}
fn bootout() -> String {
    format!("launchctl bootout {T}")
}
fn kick() -> String {
    format!("launchctl kickstart {T}")
}
const PREP: &str = "create ~/Library/LaunchAgents, the log dir and the state dir if missing";
const WRITE: &str = "write the plist atomically (mode 0644)";
const CLEAR: &str = "clear the gateway's config-refusal marker";
const WAIT: &str = "wait until launchd has unloaded the label";
const VERIFY: &str = "verify the job is running";

#[test]
fn install() {
    assert_eq!(
        run(Op::Install { force: false }, &empty()),
        [PREP, WRITE, CLEAR, &enable(), &bootstrap(), &kick(), VERIFY]
    );
    // Current and running: nothing.
    assert!(run(Op::Install { force: false }, &loaded("print-running.txt")).is_empty());
    // Current, loaded but stopped: start it.
    assert_eq!(
        run(
            Op::Install { force: false },
            &loaded("print-not-running.txt")
        ),
        [PREP, CLEAR, &enable(), &kick(), VERIFY]
    );
    // Current and running but carrying a persisted disable: clear it (next login).
    let mut obs = loaded("print-running.txt");
    obs.disabled = Some(true);
    assert_eq!(run(Op::Install { force: false }, &obs), [PREP, &enable()]);
    // The loaded job runs an older definition: reload.
    let reload = [
        PREP,
        CLEAR,
        &enable(),
        &bootout(),
        WAIT,
        &bootstrap(),
        &kick(),
        VERIFY,
    ];
    assert_eq!(
        run(Op::Install { force: false }, &loaded("print-drifted.txt"))[..1],
        [PREP]
    );
    assert_eq!(
        run(Op::Install { force: false }, &loaded("print-drifted.txt")),
        reload
    );
    // A stale file is rewritten even when launchd matches it.
    let mut stale = loaded("print-running.txt");
    stale.on_disk = on_disk(&desired().rendered.replace("Interactive", "Background"));
    let mut want = vec![PREP.to_string(), WRITE.to_string()];
    want.extend(reload[1..].iter().map(ToString::to_string));
    assert_eq!(run(Op::Install { force: false }, &stale), want);
    // --force rewrites and reloads a current job.
    assert_eq!(
        run(Op::Install { force: true }, &loaded("print-running.txt")),
        want
    );
}

#[test]
fn start() {
    assert_eq!(
        run(
            Op::Start,
            &Observed {
                on_disk: on_disk(&desired().rendered),
                ..empty()
            }
        ),
        [CLEAR, &enable(), &bootstrap(), &kick(), VERIFY]
    );
    assert_eq!(
        run(Op::Start, &loaded("print-not-running.txt")),
        [CLEAR, &enable(), &kick(), VERIFY]
    );
    let e = plan(Op::Start, &desired(), &empty())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not installed") && e.contains(P), "{e}");
}

#[test]
fn stop() {
    assert!(run(Op::Stop { disable: false }, &empty()).is_empty());
    assert_eq!(
        run(Op::Stop { disable: false }, &loaded("print-running.txt")),
        [&bootout(), WAIT]
    );
    assert_eq!(
        run(Op::Stop { disable: true }, &loaded("print-running.txt")),
        [&format!("launchctl disable {T}"), &bootout(), WAIT]
    );
    // Stop works without a GUI check and next to a LaunchDaemon (it only unloads ours).
    let mut odd = loaded("print-running.txt");
    odd.daemon = Some("/Library/LaunchDaemons/ai.openclaw.gateway.plist".into());
    assert_eq!(run(Op::Stop { disable: false }, &odd), [&bootout(), WAIT]);
}

#[test]
fn restart() {
    assert_eq!(
        run(Op::Restart, &loaded("print-running.txt")),
        [
            CLEAR,
            &enable(),
            &format!("launchctl kickstart -k {T}"),
            VERIFY
        ]
    );
    assert_eq!(
        run(Op::Restart, &loaded("print-drifted.txt")),
        [
            CLEAR,
            &enable(),
            &bootout(),
            WAIT,
            &bootstrap(),
            &kick(),
            VERIFY
        ]
    );
    assert_eq!(
        run(
            Op::Restart,
            &Observed {
                on_disk: on_disk(&desired().rendered),
                ..empty()
            }
        ),
        [CLEAR, &enable(), &bootstrap(), &kick(), VERIFY]
    );
    // The verification after a restart requires a new pid.
    let steps = plan(Op::Restart, &desired(), &loaded("print-running.txt")).unwrap();
    assert_eq!(
        steps.last(),
        Some(&Step::VerifyRunning {
            previous_pid: Some(4242)
        })
    );
    assert!(plan(Op::Restart, &desired(), &empty()).is_err());
}

#[test]
fn uninstall() {
    assert_eq!(run(Op::Uninstall, &empty()), [CLEAR]);
    let mut obs = loaded("print-running.txt");
    obs.disabled = Some(true);
    assert_eq!(
        run(Op::Uninstall, &obs),
        [
            &bootout(),
            WAIT,
            &enable(),
            "move the plist to ~/.Trash",
            CLEAR
        ]
    );
}

#[test]
fn refusals_come_before_any_step() {
    let mut root = loaded("print-running.txt");
    root.uid = 0;
    for op in [
        Op::Install { force: false },
        Op::Stop { disable: false },
        Op::Uninstall,
    ] {
        assert!(
            plan(op, &desired(), &root)
                .unwrap_err()
                .to_string()
                .contains("sudo")
        );
    }
    let mut daemon = empty();
    daemon.daemon = Some("`launchctl print system/ai.openclaw.gateway` shows it loaded".into());
    daemon.on_disk = on_disk(&desired().rendered);
    for op in [Op::Install { force: false }, Op::Start, Op::Restart] {
        let e = plan(op, &desired(), &daemon).unwrap_err().to_string();
        assert!(e.contains("LaunchDaemon with the same label"), "{e}");
    }
    assert_eq!(
        run(Op::Uninstall, &daemon),
        ["move the plist to ~/.Trash", CLEAR]
    );
    let mut headless = empty();
    headless.gui_available = false;
    let e = plan(Op::Install { force: false }, &desired(), &headless)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no macOS GUI login session"), "{e}");
}

#[test]
fn launchctl_argv_is_exact() {
    use openclaw::service::launchd::Launchctl;
    let k = Launchctl::Kickstart {
        target: T.into(),
        kill: true,
    };
    assert_eq!(k.argv(), ["launchctl", "kickstart", "-k", T]);
    assert!(k.is_disruptive());
    let b = Launchctl::Bootstrap {
        domain: "gui/501".into(),
        plist: "/a b/x.plist".into(),
    };
    assert_eq!(
        b.argv(),
        ["launchctl", "bootstrap", "gui/501", "/a b/x.plist"],
        "one argv entry per path, no shell"
    );
    assert!(!b.is_disruptive());
    assert_eq!(
        Launchctl::PrintDisabled {
            domain: "gui/501".into()
        }
        .argv(),
        ["launchctl", "print-disabled", "gui/501"]
    );
}

#[test]
fn inside_the_service_the_disruptive_tail_is_handed_off() {
    let mut inside = loaded("print-running.txt");
    inside.inside_service = true;
    let steps = plan(Op::Restart, &desired(), &inside).unwrap();
    assert_eq!(show(&steps[..2]), [CLEAR, &enable()]);
    assert_eq!(
        steps[2],
        Step::Handoff(vec![Step::Run(
            openclaw::service::launchd::Launchctl::Kickstart {
                target: T.into(),
                kill: true
            }
        )])
    );
    assert_eq!(
        steps.len(),
        3,
        "no in-process verification: the caller is about to die"
    );

    let mut drifted = loaded("print-drifted.txt");
    drifted.inside_service = true;
    drifted.disabled = Some(true);
    // Uninstall: the file steps stay in-process, launchctl steps go to the helper.
    let steps = plan(Op::Uninstall, &desired(), &drifted).unwrap();
    assert_eq!(show(&steps[..2]), ["move the plist to ~/.Trash", CLEAR]);
    let Step::Handoff(later) = &steps[2] else {
        panic!("{steps:?}")
    };
    assert_eq!(show(later), [&bootout(), WAIT, &enable()]);
    // Nothing disruptive: nothing handed off.
    assert_eq!(hand_off(vec![Step::WritePlist]), vec![Step::WritePlist]);
    inside.loaded = None;
    assert!(
        !plan(Op::Start, &desired(), &inside)
            .unwrap()
            .iter()
            .any(|s| matches!(s, Step::Handoff(_)))
    );
}
