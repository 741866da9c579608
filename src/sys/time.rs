//! Wall-clock helpers every layer may use (no dependency on anything above `sys`).

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_ms_is_after_2020_and_monotone_enough() {
        let a = super::now_ms();
        assert!(a > 1_577_836_800_000, "{a}");
        assert!(super::now_ms() >= a);
    }
}
