//! Shell completions and man pages, generated from the clap tree (never hand-maintained).
//!
//! `openclaw completions <bash|zsh|fish|elvish|powershell>` prints a completion script;
//! `openclaw man [--out-dir DIR]` prints `openclaw.1` or writes one page per visible command
//! (`openclaw.1`, `openclaw-gateway.1`, `openclaw-gateway-install.1`, …). Packagers call them
//! on the binary they ship (packaging/deb/build-deb, Homebrew's
//! `generate_completions_from_executable`), so the installed pages always match that binary.
//! Neither needs a home directory or a config.
use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use super::{Cli, CompletionsArgs, ManArgs};
use crate::error::{Error, Exit, Result};

/// The binary name completions and pages are generated for.
pub(crate) const BIN: &str = "openclaw";

/// The completion script for `shell`.
pub(crate) fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut out);
    out
}

/// The top-level man page (`openclaw.1`) as roff.
pub(crate) fn man_page() -> Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| Error::Msg(format!("rendering the man page: {e}")))?;
    Ok(out)
}

/// Writes `openclaw.1` and one page per visible subcommand into `dir` (created if missing).
/// Returns the file names written, sorted.
pub(crate) fn write_man_pages(dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating man page directory", dir, e))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .map_err(|e| Error::io("writing man pages into", dir, e))?;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("listing", dir, e))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".1"))
        .collect();
    names.sort();
    Ok(names)
}

/// `openclaw completions SHELL`.
pub(crate) fn completions(args: &CompletionsArgs) -> Result<Exit> {
    std::io::stdout()
        .write_all(&completion_script(args.shell))
        .map_err(|e| Error::Msg(format!("writing the completion script to stdout: {e}")))?;
    Ok(Exit::Ok)
}

/// `openclaw man [--out-dir DIR]`.
pub(crate) fn man(args: &ManArgs) -> Result<Exit> {
    match &args.out_dir {
        Some(dir) => {
            for n in write_man_pages(dir)? {
                println!("{}", dir.join(n).display());
            }
        }
        None => std::io::stdout()
            .write_all(&man_page()?)
            .map_err(|e| Error::Msg(format!("writing the man page to stdout: {e}")))?,
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap_complete::Shell;

    #[test]
    fn completions_cover_subcommands_in_every_packaged_shell() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let s = String::from_utf8(completion_script(shell)).unwrap();
            // fish spells long options without dashes (`-l profile`, `profile=`).
            for word in ["gateway", "install", "status", "doctor", "profile"] {
                assert!(s.contains(word), "{shell}: no {word:?} in\n{s}");
            }
        }
    }

    #[test]
    fn man_pages_name_every_visible_command_and_skip_hidden_ones() {
        let top = String::from_utf8(man_page().unwrap()).unwrap();
        assert!(
            top.starts_with(".ie") || top.contains(".TH openclaw 1"),
            "{top}"
        );
        assert!(top.contains("gateway"));
        let dir = tempfile::tempdir().unwrap();
        let names = write_man_pages(dir.path()).unwrap();
        for n in [
            "openclaw.1",
            "openclaw-gateway.1",
            "openclaw-gateway-install.1",
            "openclaw-completions.1",
        ] {
            assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
        }
        // `man` is for packagers: hidden from help, so no page of its own.
        assert!(!names.contains(&"openclaw-man.1".to_string()), "{names:?}");
        let install =
            std::fs::read_to_string(dir.path().join("openclaw-gateway-install.1")).unwrap();
        assert!(install.contains("dry"), "{install}");
    }
}
