//! Process facts for the harness: RSS of a process tree from /proc, and RLIMIT_NOFILE.

/// Resident set size in KiB of `pid` and all its descendants (all processes of the gateway).
pub fn tree_rss_kib(pid: u32) -> u64 {
    let mut total = 0;
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        total += rss_kib(p).unwrap_or(0);
        stack.extend(children(p));
    }
    total
}

/// VmRSS of one process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(c.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
        }
    }
    out
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns (old soft, new soft).
pub fn raise_nofile() -> (u64, u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    let (now, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((soft, hard));
    (soft, now)
}

/// User + system CPU seconds consumed so far by `pid` (all its threads), from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')')? + 2..];
    let mut f = after.split_whitespace().skip(11);
    let utime: f64 = f.next()?.parse().ok()?;
    let stime: f64 = f.next()?.parse().ok()?;
    // USER_HZ is 100 on every Linux ABI.
    Some((utime + stime) / 100.0)
}

/// CPU seconds the whole machine spent busy so far (all cores; /proc/stat: everything except
/// idle and iowait, steal included since it is time this VM did not get).
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum();
    Some(busy / 100.0)
}
