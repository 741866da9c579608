//! Atomic config writes: a temp file in the same directory (0600, `O_EXCL`), fsync, a `.bak`
//! copy of the previous file, rename over the target, fsync of the directory. A crash at any
//! point leaves either the old or the new file, never a torn one. Directories we create are
//! 0700. JSON5 comments do not survive a rewrite (upstream behaves the same).
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Creates `dir` (and parents) with mode 0700 when missing.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("creating directory", dir, e))?;
    // DirBuilder's mode is filtered by the umask; make it exact.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("setting permissions on", dir, e))
}

/// Like [`ensure_private_dir`] for the state directory, which also holds secrets (config,
/// identity): an existing one that we own but that group/others can access is tightened to
/// 0700 (with a note on stderr), so every command that writes state leaves it private.
pub(crate) fn ensure_state_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    ensure_private_dir(dir)?;
    let m = fs::metadata(dir).map_err(|e| Error::io("inspecting", dir, e))?;
    if m.uid() == nix::unistd::getuid().as_raw() && m.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("setting permissions on", dir, e))?;
        eprintln!(
            "note: {} was accessible to other users (mode {:o}); set it to 0700 (it holds the gateway's secrets)",
            dir.display(),
            m.permissions().mode() & 0o777
        );
    }
    Ok(())
}

/// The config holds the gateway's credentials wherever it lives (`OPENCLAW_CONFIG_PATH` may put
/// it outside the state dir, and an editor or `cp` may have left it 0644): one we own that group
/// or others can read is tightened to 0600 (with a note on stderr); one we do not own is left as
/// it is, with a warning naming the path. Returns the note or warning it printed.
pub(crate) fn ensure_private_config(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).ok().filter(|m| m.is_file())?;
    let mode = m.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return None;
    }
    let msg = if m.uid() == nix::unistd::getuid().as_raw() {
        match fs::set_permissions(path, fs::Permissions::from_mode(0o600)) {
            Ok(()) => format!(
                "note: config {} was readable by other users (mode {mode:o}); set it to 0600 (it holds the gateway's credentials)",
                path.display()
            ),
            Err(e) => format!(
                "warning: config {} is readable by other users (mode {mode:o}) and could not be set to 0600: {e}. Run `chmod 600 {}`.",
                path.display(),
                path.display()
            ),
        }
    } else {
        format!(
            "warning: config {} is readable by other users (mode {mode:o}) and belongs to uid {}, not to this user: its owner should run `chmod 600 {}`.",
            path.display(),
            m.uid(),
            path.display()
        )
    };
    eprintln!("{msg}");
    Some(msg)
}

fn tmp_name(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let mut rnd = [0u8; 6];
    let _ = getrandom::fill(&mut rnd);
    path.with_file_name(format!(
        ".{name}.{tag}-{}-{}",
        std::process::id(),
        hex::encode(rnd)
    ))
}

/// The one atomic file writer: `bytes` land in `path` with `mode` (no other user ever sees a
/// partial or wider-moded file): a fresh temporary beside it (`O_EXCL`, created with `mode`),
/// fsync, rename over `path`, fsync of the directory. The directory must exist.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tmp_name(path, "tmp");
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| Error::io("creating", &tmp, e))?;
        // The umask may have narrowed the creation mode; the caller asked for exactly `mode`.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .and_then(|_| f.write_all(bytes))
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io("writing", &tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| Error::io("replacing", path, e))?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes a private file (config, secrets): its directory made private (0700) if needed, the
/// previous content kept in `<path>.bak` (0600), then [`write_atomic`] with mode 0600.
pub(crate) fn write_private_with_backup(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    ensure_private_dir(dir)?;
    if path.exists() {
        let bak = PathBuf::from(format!("{}.bak", path.display()));
        let content = fs::read(path).map_err(|e| Error::io("reading", path, e))?;
        write_atomic(&bak, &content, 0o600).map_err(|e| match e {
            Error::Io { source, .. } => Error::io("writing backup", &bak, source),
            other => other,
        })?;
    }
    write_atomic(path, bytes, 0o600)
}

/// Serializes a config document (pretty JSON, which is valid JSON5) and writes it atomically.
pub(crate) fn write_config(path: &Path, doc: &Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(doc)
        .map_err(|e| Error::Msg(format!("serializing config for {}: {e}", path.display())))?;
    text.push('\n');
    write_private_with_backup(path, text.as_bytes())
}

/// Sets a dotted path (`gateway.auth.token`) in a document, creating objects on the way.
/// Fails when an intermediate value exists and is not an object.
pub(crate) fn set_path(
    doc: &mut Value,
    dotted: &str,
    value: Value,
) -> std::result::Result<(), String> {
    let mut cur = doc;
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, k) in parts.iter().enumerate() {
        if !cur.is_object() {
            return Err(format!(
                "{} is not an object",
                parts[..i].join(".").as_str().to_owned()
            ));
        }
        let obj = cur.as_object_mut().expect("checked above");
        if i == parts.len() - 1 {
            obj.insert((*k).to_string(), value);
            return Ok(());
        }
        cur = obj
            .entry((*k).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(())
}

/// Generates a gateway token: 24 random bytes, hex (48 chars).
pub(crate) fn generate_token() -> String {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).expect("the OS random source is unavailable");
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn atomic_write_modes_and_backup() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("state");
        let p = dir.join("openclaw.json");
        write_config(&p, &json!({"a": 1})).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        write_config(&p, &json!({"a": 2})).unwrap();
        let bak = dir.join("openclaw.json.bak");
        assert!(fs::read_to_string(&bak).unwrap().contains("\"a\": 1"));
        assert_eq!(
            fs::metadata(&bak).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(fs::read_to_string(&p).unwrap().contains("\"a\": 2"));
        // no temp files left behind
        let n = fs::read_dir(&dir).unwrap().count();
        assert_eq!(n, 2);
    }

    #[test]
    fn write_atomic_sets_exactly_the_mode_asked_and_leaves_nothing_on_failure() {
        let d = tempfile::tempdir().unwrap();
        let unit = d.path().join("openclaw-gateway.service");
        write_atomic(&unit, b"[Unit]\n", 0o644).unwrap();
        assert_eq!(
            fs::metadata(&unit).unwrap().permissions().mode() & 0o777,
            0o644
        );
        write_atomic(&unit, b"[Unit]\nA=1\n", 0o600).unwrap();
        assert_eq!(
            fs::metadata(&unit).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read(&unit).unwrap(), b"[Unit]\nA=1\n");
        let missing = d.path().join("no-such-dir").join("f");
        let e = write_atomic(&missing, b"x", 0o600).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temporary left behind"
        );
    }

    #[test]
    fn set_path_creates_and_refuses() {
        let mut v = json!({"gateway": {"mode": "local"}});
        set_path(&mut v, "gateway.auth.token", json!("t")).unwrap();
        assert_eq!(v["gateway"]["auth"]["token"], json!("t"));
        assert_eq!(v["gateway"]["mode"], json!("local"));
        let mut w = json!({"gateway": 1});
        assert!(set_path(&mut w, "gateway.auth.token", json!("t")).is_err());
        assert_eq!(generate_token().len(), 48);
    }
}
