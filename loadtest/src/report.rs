//! Results: latency samples, one [`Run`] per measured sub-run, the [`Report`] written with
//! `--json`, and the table printed on stdout.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use serde_json::{Map, Value};

/// Latency samples in microseconds. A plain vector, sorted once at the end: runs are seconds
/// long, so even a million samples is a few megabytes.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<u32>);

impl Samples {
    pub fn with_capacity(n: usize) -> Self {
        Samples(Vec::with_capacity(n))
    }

    pub fn record(&mut self, d: Duration) {
        self.0.push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn merge(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    /// p50, p99 and max in milliseconds (zeros when empty).
    pub fn summary(mut self) -> Latency {
        if self.0.is_empty() {
            return Latency::default();
        }
        self.0.sort_unstable();
        let at = |q: f64| {
            let n = self.0.len();
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            f64::from(self.0[rank - 1]) / 1000.0
        };
        Latency {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One measured sub-run (a row of the table).
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub name: String,
    pub duration_s: f64,
    pub ops: u64,
    pub ops_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    pub duplicates: u64,
    /// Run-specific figures (concurrency, commit statistics, targets …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Run {
    pub fn new(name: impl Into<String>, elapsed: Duration, ops: u64, latency: Latency) -> Self {
        let duration_s = elapsed.as_secs_f64();
        Run {
            name: name.into(),
            duration_s: round(duration_s, 3),
            ops,
            ops_per_s: if duration_s > 0.0 {
                round(ops as f64 / duration_s, 1)
            } else {
                0.0
            },
            p50_ms: round(latency.p50_ms, 3),
            p99_ms: round(latency.p99_ms, 3),
            max_ms: round(latency.max_ms, 3),
            errors: 0,
            duplicates: 0,
            extra: Map::new(),
        }
    }

    pub fn errors(mut self, errors: u64) -> Self {
        self.errors = errors;
        self
    }

    pub fn duplicates(mut self, duplicates: u64) -> Self {
        self.duplicates = duplicates;
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }
}

/// What `--json` writes: the scenario's headline run flattened at the top level (so the common
/// fields `ops`, `ops_per_s`, `p50_ms` … are always there), every run under `runs`, and
/// scenario-wide figures (ratios, targets) beside them.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    #[serde(flatten)]
    pub headline: Run,
    pub runs: Vec<Run>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Report {
    /// A report whose headline is `runs[headline]`.
    pub fn new(scenario: &str, runs: Vec<Run>, headline: usize) -> anyhow::Result<Self> {
        let head = runs.get(headline).cloned().context("a report needs at least one run")?;
        Ok(Report {
            scenario: scenario.to_string(),
            headline: head,
            runs,
            extra: Map::new(),
        })
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
    }

    /// The table on stdout: one row per run, run-specific figures as notes, then scenario-wide
    /// figures.
    pub fn print(&self) {
        println!();
        println!("scenario: {}", self.scenario);
        let headers = [
            "run", "secs", "ops", "ops/s", "p50 ms", "p99 ms", "max ms", "errors", "dups",
        ];
        let rows: Vec<[String; 9]> = self
            .runs
            .iter()
            .map(|r| {
                [
                    r.name.clone(),
                    format!("{:.2}", r.duration_s),
                    group_digits(r.ops as f64, 0),
                    group_digits(r.ops_per_s, 0),
                    format!("{:.3}", r.p50_ms),
                    format!("{:.3}", r.p99_ms),
                    format!("{:.3}", r.max_ms),
                    r.errors.to_string(),
                    r.duplicates.to_string(),
                ]
            })
            .collect();
        let mut widths = headers.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let pad = w.saturating_sub(cell.chars().count());
                if i == 0 {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad));
                } else {
                    out.push_str("  ");
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                }
            }
            println!("{out}");
        };
        line(&headers.map(String::from));
        line(&widths.map(|w| "-".repeat(w)));
        for row in &rows {
            line(row);
        }
        for r in &self.runs {
            if !r.extra.is_empty() {
                let notes: Vec<String> = r.extra.iter().map(|(k, v)| format!("{k}={}", show(v))).collect();
                println!("  {}: {}", r.name, notes.join(", "));
            }
        }
        for (k, v) in &self.extra {
            println!("{k}: {}", show(v));
        }
        println!();
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rounds to `digits` decimals (keeps the JSON readable).
pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// `1234567.8` → `1,234,568`.
pub fn group_digits(x: f64, decimals: usize) -> String {
    let text = format!("{x:.decimals$}");
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i.to_string(), format!(".{f}")),
        None => (text.clone(), String::new()),
    };
    let (sign, digits) = match int.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", int.as_str()),
    };
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut s = Samples::default();
        for us in 1..=100u64 {
            s.record(Duration::from_micros(us * 1000));
        }
        let l = s.summary();
        assert_eq!(l.p50_ms, 50.0);
        assert_eq!(l.p99_ms, 99.0);
        assert_eq!(l.max_ms, 100.0);
    }

    #[test]
    fn digits() {
        assert_eq!(group_digits(1234567.8, 0), "1,234,568");
        assert_eq!(group_digits(999.0, 0), "999");
        assert_eq!(group_digits(1000.0, 0), "1,000");
    }
}
