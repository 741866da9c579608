//! Result bookkeeping for the benchmark harness: samples → median/p99, machine facts, and the
//! JSON + Markdown outputs under `bench/results/`.
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// One measured metric: its samples, unit, target and whether the target is met.
#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub unit: &'static str,
    pub samples: Vec<f64>,
    /// Human target text, e.g. "≤ 20 ms".
    pub target: String,
    /// `Some(true)` met, `Some(false)` missed, `None` recorded only.
    pub met: Option<bool>,
    /// Free-form note (how it was measured, caveats).
    pub note: String,
}

impl Metric {
    pub fn median(&self) -> f64 {
        percentile(&self.samples, 50.0)
    }
    pub fn p99(&self) -> f64 {
        percentile(&self.samples, 99.0)
    }
}

/// Nearest-rank percentile of unsorted samples (NaN when empty).
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Milliseconds as f64.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Machine facts printed with the results (cores, kernel, load).
pub fn machine() -> Value {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let model = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("")
        .trim()
        .to_string();
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": model,
        "kernel": read("/proc/sys/kernel/osrelease"),
        "loadavg": read("/proc/loadavg"),
        "memTotal": read("/proc/meminfo").lines().next().unwrap_or("").to_string(),
    })
}

/// Writes `<dir>/latest.json` and `<dir>/latest.md`; returns the Markdown.
pub fn write(
    dir: &Path,
    mode: &str,
    target: &str,
    metrics: &[Metric],
    started: &str,
) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let m = machine();
    let json = json!({
        "started": started,
        "mode": mode,
        "target": target,
        "machine": m,
        "metrics": metrics.iter().map(|x| json!({
            "name": x.name, "unit": x.unit, "n": x.samples.len(),
            "median": finite(x.median()), "p99": finite(x.p99()),
            "min": finite(x.samples.iter().cloned().fold(f64::INFINITY, f64::min)),
            "max": finite(x.samples.iter().cloned().fold(f64::NEG_INFINITY, f64::max)),
            "target": x.target, "met": x.met, "note": x.note,
        })).collect::<Vec<_>>(),
    });
    let mut md = String::new();
    let _ = writeln!(md, "Benchmark run {started} ({mode}) against {target}");
    let _ = writeln!(
        md,
        "Machine: {} cores, {}, kernel {}, load {}\n",
        m["cores"],
        m["cpu"].as_str().unwrap_or(""),
        m["kernel"].as_str().unwrap_or(""),
        m["loadavg"].as_str().unwrap_or("")
    );
    let _ = writeln!(md, "| metric | median | p99 | n | target | met | note |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for x in metrics {
        let met = match x.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let _ = writeln!(
            md,
            "| {} | {} {} | {} {} | {} | {} | {} | {} |",
            x.name,
            fmt(x.median()),
            x.unit,
            fmt(x.p99()),
            x.unit,
            x.samples.len(),
            x.target,
            met,
            x.note
        );
    }
    std::fs::write(
        dir.join("latest.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    std::fs::write(dir.join("latest.md"), &md)?;
    Ok(md)
}

fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

fn fmt(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(super::percentile(&v, 50.0), 3.0);
        assert_eq!(super::percentile(&v, 99.0), 5.0);
        assert!(super::percentile(&[], 50.0).is_nan());
    }
}
