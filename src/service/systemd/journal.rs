//! Logging under systemd: the native journald protocol (structured fields, priorities) when —
//! and only when — stderr *is* the journal (`$JOURNAL_STREAM` = stderr's `dev:ino`, as
//! sd_journal_stream_fd documents). Then the stderr formatter must be dropped, or every line
//! would be logged twice. Anywhere else (terminal, file, pipe) plain stderr stays.
use std::os::unix::fs::MetadataExt;

/// Parses `$JOURNAL_STREAM` (`<dev>:<ino>`, decimal).
pub(crate) fn parse_stream(v: &str) -> Option<(u64, u64)> {
    let (d, i) = v.trim().split_once(':')?;
    Some((d.parse().ok()?, i.parse().ok()?))
}

/// Whether stderr is connected to the journal (`JOURNAL_STREAM` matches fd 2's device/inode).
pub(crate) fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    // fstat(2) through /proc/self/fd/2 (a symlink to the socket; metadata follows it).
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(m) => stream_matches(&v, m.dev(), m.ino()),
        Err(_) => false,
    }
}

/// Whether a `JOURNAL_STREAM` value names the file with this device and inode.
pub(crate) fn stream_matches(journal_stream: &str, dev: u64, ino: u64) -> bool {
    parse_stream(journal_stream) == Some((dev, ino))
}

/// The journald layer: INFO → priority 6 (informational, not tracing-journald's default 5 =
/// notice), fields without the `F_` prefix, `SYSLOG_IDENTIFIER=openclaw`. `None` when stderr is
/// not the journal or the journal socket is unreachable (then use plain stderr).
pub(crate) fn layer() -> Option<tracing_journald::Layer> {
    if !stderr_is_journal() {
        return None;
    }
    let l = tracing_journald::layer().ok()?;
    Some(
        l.with_field_prefix(None)
            .with_priority_mappings(priorities())
            .with_syslog_identifier("openclaw".into()),
    )
}

/// [`layer`] boxed for `telemetry::init`, filtered like the stderr layer (our targets at INFO,
/// DEBUG with `verbose`; others at WARN).
pub(crate) fn boxed_layer(verbose: bool) -> Option<crate::telemetry::BoxedLayer> {
    use tracing::level_filters::LevelFilter;
    use tracing_subscriber::Layer as _;
    let ours = if verbose {
        LevelFilter::DEBUG
    } else {
        LevelFilter::INFO
    };
    let targets = tracing_subscriber::filter::Targets::new()
        .with_target("openclaw", ours)
        .with_default(LevelFilter::WARN);
    layer().map(|l| l.with_filter(targets).boxed())
}

/// ERROR 3, WARN 4, INFO 6, DEBUG 7, TRACE 7 (what `journalctl -p info` users expect).
pub(crate) fn priorities() -> tracing_journald::PriorityMappings {
    use tracing_journald::Priority;
    tracing_journald::PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_values() {
        assert_eq!(parse_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_stream("8:x"), None);
        assert_eq!(parse_stream(""), None);
    }

    #[test]
    fn info_is_informational() {
        assert_eq!(priorities().info as u8, b'6');
        assert_eq!(priorities().warn as u8, b'4');
    }

    #[test]
    fn only_the_exact_stream_matches() {
        // A child inheriting JOURNAL_STREAM but writing stderr elsewhere must not use journald.
        assert!(stream_matches("8:12345", 8, 12345));
        assert!(!stream_matches("8:12345", 8, 12346));
        assert!(!stream_matches("9:12345", 8, 12345));
        assert!(!stream_matches("", 8, 12345));
    }
}
