//! Watches the config file for changes.
//!
//! Editors save by writing a temp file and renaming it over the original, which replaces the
//! inode a file watch would follow, so we watch the file's **directory** (non-recursively) and
//! keep only events that name the config file. One save produces a burst of raw events
//! (create/modify/close-write/rename); `notify-debouncer-full` collapses them, and we report at
//! most one change per settled burst ([`DEBOUNCE`]). Read-only accesses (including our own
//! reads of the file) are ignored.
//!
//! When the config path is a symlink (dotfile managers, NixOS), the directory of its target is
//! watched too, so edits of the target are seen.
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_full::notify::event::{AccessKind, AccessMode, EventKind};
use notify_debouncer_full::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use crate::error::{Error, Result};

/// How long a burst of file events must be quiet before we act (upstream uses 300 ms).
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(300);

/// One settled change of the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigChanged {
    /// The watched paths (config file or symlink target) that the burst touched.
    pub paths: Vec<PathBuf>,
}

/// A running watcher; dropping it stops watching.
pub(crate) struct ConfigWatcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    watched_dirs: Vec<PathBuf>,
}

impl std::fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatcher")
            .field("watched_dirs", &self.watched_dirs)
            .finish()
    }
}

/// The files whose changes count: the config path itself and, when it is a symlink, its target.
fn targets(config_path: &Path) -> Vec<PathBuf> {
    let mut out = vec![config_path.to_path_buf()];
    if std::fs::symlink_metadata(config_path).is_ok_and(|m| m.file_type().is_symlink())
        && let Ok(real) = std::fs::canonicalize(config_path)
        && real != config_path
    {
        out.push(real);
    }
    out
}

fn relevant_kind(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

impl ConfigWatcher {
    /// Starts watching `config_path`'s directory. `on_change` runs on the watcher's thread once per
    /// settled burst that touched the config file; keep it cheap (send on a channel).
    pub(crate) fn start(
        config_path: &Path,
        mut on_change: impl FnMut(ConfigChanged) + Send + 'static,
    ) -> Result<ConfigWatcher> {
        let targets = targets(config_path);
        let handler_targets = targets.clone();
        let mut debouncer = new_debouncer(DEBOUNCE, None, move |res: DebounceEventResult| {
            let Ok(events) = res else {
                // Watch errors (e.g. inotify queue overflow) may hide a change: report one so
                // the file is re-read; an unchanged file is a no-op downstream.
                on_change(ConfigChanged {
                    paths: handler_targets.clone(),
                });
                return;
            };
            let mut hit: Vec<PathBuf> = Vec::new();
            for ev in &events {
                if !relevant_kind(&ev.event.kind) {
                    continue;
                }
                for p in &ev.event.paths {
                    if handler_targets.contains(p) && !hit.contains(p) {
                        hit.push(p.clone());
                    }
                }
            }
            if !hit.is_empty() {
                on_change(ConfigChanged { paths: hit });
            }
        })
        .map_err(|e| Error::Msg(format!("config watch: cannot start a file watcher: {e}")))?;
        let mut watched_dirs = Vec::new();
        for t in &targets {
            let dir = match t.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if watched_dirs.contains(&dir) {
                continue;
            }
            debouncer.watch(&dir, RecursiveMode::NonRecursive).map_err(|e| {
                Error::Msg(format!(
                    "config watch: cannot watch {} for changes of {}: {e}; edits will apply on SIGHUP (systemctl reload) only",
                    dir.display(),
                    t.display()
                ))
            })?;
            watched_dirs.push(dir);
        }
        Ok(ConfigWatcher {
            _debouncer: debouncer,
            watched_dirs,
        })
    }

    #[cfg(test)]
    /// The directories being watched.
    pub(crate) fn watched_dirs(&self) -> &[PathBuf] {
        &self.watched_dirs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const DEADLINE: Duration = Duration::from_secs(10);

    fn start(path: &Path) -> (ConfigWatcher, mpsc::Receiver<ConfigChanged>) {
        let (tx, rx) = mpsc::channel();
        let w = ConfigWatcher::start(path, move |c| {
            let _ = tx.send(c);
        })
        .unwrap();
        (w, rx)
    }

    #[test]
    fn sees_atomic_rename_saves_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("openclaw.json");
        std::fs::write(&cfg, "{}").unwrap();
        let (_w, rx) = start(&cfg);
        // An unrelated file in the same directory first, then an editor-style save.
        std::fs::write(dir.path().join("other.json"), "{}").unwrap();
        let tmp = dir.path().join(".openclaw.json.swp");
        std::fs::write(&tmp, "{gateway: {port: 1}}").unwrap();
        std::fs::rename(&tmp, &cfg).unwrap();
        let got = rx.recv_timeout(DEADLINE).expect("a change event");
        assert_eq!(got.paths, vec![cfg.clone()]);
        // Reading the file (as the reloader does) is not a change.
        let _ = std::fs::read_to_string(&cfg).unwrap();
        // An in-place write is seen as well.
        std::fs::write(&cfg, "{gateway: {port: 2}}").unwrap();
        let got = rx.recv_timeout(DEADLINE).expect("a second change event");
        assert_eq!(got.paths, vec![cfg.clone()]);
    }

    #[test]
    fn a_burst_settles_before_it_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.json");
        let (_w, rx) = start(&cfg);
        // Creating a missing file, then several writes in a row.
        for i in 0..5 {
            std::fs::write(&cfg, format!("{{n: {i}}}")).unwrap();
        }
        let first = rx.recv_timeout(DEADLINE).expect("a change event");
        assert_eq!(first.paths, vec![cfg.clone()]);
        // By the time the burst is reported the file holds the final content.
        assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "{n: 4}");
        // A removal is a change too.
        std::fs::remove_file(&cfg).unwrap();
        loop {
            let ev = rx.recv_timeout(DEADLINE).expect("the removal");
            assert_eq!(ev.paths, vec![cfg.clone()]);
            if !cfg.exists() {
                break;
            }
        }
    }

    #[test]
    fn follows_a_symlinked_config_to_its_target() {
        let real_dir = tempfile::tempdir().unwrap();
        let link_dir = tempfile::tempdir().unwrap();
        let real = real_dir.path().join("real.json");
        std::fs::write(&real, "{}").unwrap();
        let link = link_dir.path().join("openclaw.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let (w, rx) = start(&link);
        assert_eq!(w.watched_dirs().len(), 2);
        std::fs::write(&real, "{a: 1}").unwrap();
        let got = rx.recv_timeout(DEADLINE).expect("a change event");
        assert_eq!(got.paths, vec![real.canonicalize().unwrap()]);
    }

    #[test]
    fn missing_directory_is_a_clear_error() {
        let e = ConfigWatcher::start(Path::new("/nonexistent-dir-xyz/openclaw.json"), |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent-dir-xyz") && e.contains("SIGHUP"),
            "{e}"
        );
    }
}
