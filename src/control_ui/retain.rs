//! Earlier asset generations, kept so a browser tab still running the previous bundle after an
//! upgrade can load its fingerprinted `assets/*` (docs/control-ui.md §5: users report "Protocol
//! mismatch" and blank pages when those 404).
//!
//! Once the gateway serves, the current root's `assets/` is copied (regular files with one link
//! only: no symlinks, no hard links) into `<state>/control-ui-assets/<build id>/` unless that generation is already
//! there (copied into a temporary directory, then renamed: a generation is complete or absent).
//! At most [`KEEP`] generations are kept, newest first. A missing `assets/*` file of the root is
//! then looked up in the kept generations, newest first, with the same safe open as the root.
use std::path::{Path, PathBuf};

/// Generations kept (the current one included).
pub(super) const KEEP: usize = 3;

/// Directory depth copied below `assets/` (the bundle's is flat).
const MAX_DEPTH: usize = 8;

/// Files copied per generation, at most (the official bundle has ~1,500 with siblings).
const MAX_FILES: usize = 20_000;

/// The kept generations' directories, newest first.
pub(super) fn generations(store: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(store) else {
        return Vec::new();
    };
    let mut gens: Vec<(std::time::SystemTime, PathBuf)> = rd
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().contains(".tmp-"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            m.is_dir()
                .then(|| (m.modified().unwrap_or(std::time::UNIX_EPOCH), e.path()))
        })
        .collect();
    gens.sort_by(|a, b| b.0.cmp(&a.0));
    gens.into_iter().map(|(_, p)| p).collect()
}

fn copy_tree(from: &Path, to: &Path, depth: usize, budget: &mut usize) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let ft = e.file_type()?;
        let target = to.join(e.file_name());
        if ft.is_dir() && depth < MAX_DEPTH {
            copy_tree(&e.path(), &target, depth + 1, budget)?;
        } else if ft.is_file() {
            // A hard link may name a file outside the root: the root never serves one, so
            // it is not kept either.
            if std::os::unix::fs::MetadataExt::nlink(&e.metadata()?) > 1 {
                continue;
            }
            if *budget == 0 {
                return Err(std::io::Error::other("too many files"));
            }
            *budget -= 1;
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

/// Keeps the generation of `root_real` (build id `build`) in `store` and prunes old ones.
pub(super) fn keep(root_real: &Path, build: &str, store: &Path) -> std::io::Result<()> {
    let dest = store.join(build);
    if !dest.exists() {
        let tmp = store.join(format!("{build}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let mut budget = MAX_FILES;
        let copied = copy_tree(
            &root_real.join("assets"),
            &tmp.join("assets"),
            0,
            &mut budget,
        )
        .and_then(|()| std::fs::rename(&tmp, &dest));
        if let Err(e) = copied {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    } else {
        // Touch: the generation in use is the newest.
        let _ =
            std::fs::File::open(&dest).and_then(|f| f.set_modified(std::time::SystemTime::now()));
    }
    for old in generations(store).into_iter().skip(KEEP) {
        if old != dest {
            let _ = std::fs::remove_dir_all(old);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_are_kept_whole_newest_first_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        for (i, build) in ["b1", "b2", "b3", "b4"].iter().enumerate() {
            let root = dir.path().join(format!("root{i}"));
            std::fs::create_dir_all(root.join("assets/sub")).unwrap();
            std::fs::write(root.join(format!("assets/app-{build}.js")), build).unwrap();
            std::fs::write(root.join("assets/sub/x.css"), "x").unwrap();
            std::os::unix::fs::symlink("/etc/passwd", root.join("assets/link.js")).unwrap();
            keep(&root, build, &store).unwrap();
            // Distinct modification times on coarse file systems.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let gens = generations(&store);
        let names: Vec<_> = gens
            .iter()
            .map(|g| g.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["b4", "b3", "b2"]);
        assert_eq!(
            std::fs::read_to_string(store.join("b3/assets/app-b3.js")).unwrap(),
            "b3"
        );
        assert!(store.join("b3/assets/sub/x.css").is_file());
        assert!(
            !store.join("b3/assets/link.js").exists(),
            "symlinks are not copied"
        );
    }
}
