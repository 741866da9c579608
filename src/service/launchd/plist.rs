//! Rendering a [`LaunchdJob`] to plist XML with the `plist` crate (insertion-ordered
//! `Dictionary`, so the output is byte-for-byte deterministic and pinned by the golden file
//! `plists/ai.openclaw.gateway.plist`), and reading an installed plist back into the few
//! fields [`super::print`] can compare against what launchd has loaded.
use std::collections::BTreeMap;

use plist::{Dictionary, Value};

use super::job::{LaunchdJob, SOCKET_NAME};

/// The plist as a `plist::Value` (keys in a fixed, documented order).
pub fn to_value(job: &LaunchdJob) -> Value {
    let mut d = Dictionary::new();
    d.insert("Label".into(), Value::String(job.label.clone()));
    d.insert("Comment".into(), Value::String(job.comment.clone()));
    d.insert(
        "ProgramArguments".into(),
        Value::Array(
            job.program_arguments
                .iter()
                .map(|a| Value::String(a.clone()))
                .collect(),
        ),
    );
    let mut env = Dictionary::new();
    for (k, v) in &job.environment {
        env.insert(k.clone(), Value::String(v.clone()));
    }
    d.insert("EnvironmentVariables".into(), Value::Dictionary(env));
    d.insert(
        "WorkingDirectory".into(),
        Value::String(job.working_directory.display().to_string()),
    );
    d.insert("RunAtLoad".into(), Value::Boolean(true));
    // Keys of a KeepAlive dict are OR-ed: respawn after a non-zero exit or a crash signal, but
    // not after exit 0 (a deliberate stop, or a config refusal under launchd; see super).
    let mut keep = Dictionary::new();
    keep.insert("SuccessfulExit".into(), Value::Boolean(false));
    keep.insert("Crashed".into(), Value::Boolean(true));
    d.insert("KeepAlive".into(), Value::Dictionary(keep));
    d.insert(
        "ThrottleInterval".into(),
        Value::Integer(job.throttle_interval_secs.into()),
    );
    d.insert(
        "ExitTimeOut".into(),
        Value::Integer(job.exit_timeout_secs.into()),
    );
    d.insert("ProcessType".into(), Value::String("Interactive".into()));
    d.insert("Umask".into(), Value::Integer(u64::from(job.umask).into()));
    for key in ["SoftResourceLimits", "HardResourceLimits"] {
        let mut lim = Dictionary::new();
        lim.insert(
            "NumberOfFiles".into(),
            Value::Integer(job.open_files.into()),
        );
        d.insert(key.into(), Value::Dictionary(lim));
    }
    d.insert("StandardInPath".into(), Value::String("/dev/null".into()));
    let log = job.log_path.display().to_string();
    d.insert("StandardOutPath".into(), Value::String(log.clone()));
    d.insert("StandardErrorPath".into(), Value::String(log));
    if !job.sockets.is_empty() {
        let listeners = job
            .sockets
            .iter()
            .map(|s| {
                let mut sd = Dictionary::new();
                sd.insert("SockNodeName".into(), Value::String(s.node.clone()));
                sd.insert(
                    "SockServiceName".into(),
                    Value::String(job.port.to_string()),
                );
                sd.insert("SockFamily".into(), Value::String(s.family.as_str().into()));
                sd.insert("SockType".into(), Value::String("stream".into()));
                sd.insert("SockPassive".into(), Value::Boolean(true));
                Value::Dictionary(sd)
            })
            .collect();
        let mut sockets = Dictionary::new();
        sockets.insert(SOCKET_NAME.into(), Value::Array(listeners));
        d.insert("Sockets".into(), Value::Dictionary(sockets));
    }
    Value::Dictionary(d)
}

/// The plist XML (tab-indented, trailing newline).
pub fn render(job: &LaunchdJob) -> String {
    let mut out = Vec::new();
    to_value(job)
        .to_writer_xml(&mut out)
        .expect("writing a plist to memory cannot fail");
    out.push(b'\n');
    String::from_utf8(out).expect("plist XML is UTF-8")
}

/// The fields of an installed plist that `launchctl print` also shows, for drift checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Definition {
    /// `Label`.
    pub label: Option<String>,
    /// `ProgramArguments`.
    pub program_arguments: Vec<String>,
    /// `EnvironmentVariables`.
    pub environment: BTreeMap<String, String>,
    /// `WorkingDirectory`.
    pub working_directory: Option<String>,
    /// `StandardOutPath`.
    pub stdout_path: Option<String>,
    /// `StandardErrorPath`.
    pub stderr_path: Option<String>,
    /// A `Sockets` dictionary is present (socket activation).
    pub has_sockets: bool,
}

/// Parses plist bytes (XML or binary) into a [`Definition`].
pub fn parse_definition(bytes: &[u8]) -> Result<Definition, String> {
    let v = Value::from_reader(std::io::Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let d = v
        .as_dictionary()
        .ok_or_else(|| "the top level is not a dictionary".to_string())?;
    let s = |k: &str| d.get(k).and_then(Value::as_string).map(str::to_string);
    Ok(Definition {
        label: s("Label"),
        program_arguments: d
            .get("ProgramArguments")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_string().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        environment: d
            .get("EnvironmentVariables")
            .and_then(Value::as_dictionary)
            .map(|e| {
                e.iter()
                    .filter_map(|(k, v)| v.as_string().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
        working_directory: s("WorkingDirectory"),
        stdout_path: s("StandardOutPath"),
        stderr_path: s("StandardErrorPath"),
        has_sockets: d.get("Sockets").and_then(Value::as_dictionary).is_some(),
    })
}
