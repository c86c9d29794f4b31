//! One module per scenario, plus what several of them share.

use std::time::Duration;

pub mod append;
pub mod http_baseline;
pub mod lag;
pub mod publish;
pub mod replay;
pub mod webhooks;
pub mod world;

/// Counters of the embedded store's group commit, read from the process-wide metrics (the
/// store records every commit there). The difference of two snapshots describes the commits
/// made in between, which tells whether time goes to fsync (few large groups, long commits) or
/// to per-request work (many short commits).
#[derive(Debug, Default, Clone, Copy)]
pub struct CommitStats {
    pub commits: f64,
    pub requests: f64,
    pub commit_seconds: f64,
}

impl CommitStats {
    pub fn snapshot() -> Self {
        let text = nikara::metrics::global().render();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        CommitStats {
            commits: value("nikara_store_commit_group_size_count"),
            requests: value("nikara_store_commit_group_size_sum"),
            commit_seconds: value("nikara_store_commit_duration_seconds_sum"),
        }
    }

    pub fn since(self, before: CommitStats) -> CommitStats {
        CommitStats {
            commits: self.commits - before.commits,
            requests: self.requests - before.requests,
            commit_seconds: self.commit_seconds - before.commit_seconds,
        }
    }

    /// Append calls folded into one transaction, on average.
    pub fn mean_group(&self) -> f64 {
        if self.commits > 0.0 {
            self.requests / self.commits
        } else {
            0.0
        }
    }

    /// Mean time of one group transaction (inserts + commit + fsync), in ms.
    pub fn mean_commit_ms(&self) -> f64 {
        if self.commits > 0.0 {
            1000.0 * self.commit_seconds / self.commits
        } else {
            0.0
        }
    }

    /// Share of the wall-clock time the writer thread spent inside transactions.
    pub fn writer_busy(&self, wall: Duration) -> f64 {
        let wall = wall.as_secs_f64();
        if wall > 0.0 { self.commit_seconds / wall } else { 0.0 }
    }
}

/// A ~200-byte JSON document: the size of a typical small domain event.
pub fn small_payload(seq: u64) -> Vec<u8> {
    const SIZE: usize = 200;
    let head = format!(r#"{{"post_id":"post_{seq:016x}","platform":"instagram","seq":{seq},"caption":""#);
    let tail = r#""}"#;
    let fill = SIZE.saturating_sub(head.len() + tail.len());
    let mut out = String::with_capacity(SIZE);
    out.push_str(&head);
    out.extend(std::iter::repeat_n('x', fill));
    out.push_str(tail);
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_small_json() {
        let p = small_payload(42);
        assert_eq!(p.len(), 200);
        let v: serde_json::Value = serde_json::from_slice(&p).expect("valid JSON");
        assert_eq!(v["seq"], 42);
    }
}
