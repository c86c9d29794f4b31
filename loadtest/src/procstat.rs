//! CPU and I/O of this process and of the whole machine, read from `/proc` (Linux; zeros
//! elsewhere). The difference of two snapshots tells how busy the cores were during a run, how much
//! of that was this process (hub, fake and load generator together) and how much was something else
//! on the machine, and how many bytes the process wrote to storage.

use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/*/stat` (USER_HZ): 100 on every Linux architecture.
const TICKS_PER_S: f64 = 100.0;

#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    at: Instant,
    /// CPU ticks of this process (user + system, all threads).
    self_ticks: u64,
    /// Busy ticks of the machine, all cores (everything but idle and iowait).
    machine_busy: u64,
    /// Bytes this process caused to be written to / read from storage.
    write_bytes: u64,
    read_bytes: u64,
}

/// What happened between two snapshots.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub wall: Duration,
    /// CPU seconds used by this process.
    pub self_cpu_s: f64,
    /// CPU seconds used by everything else on the machine.
    pub other_cpu_s: f64,
    pub write_bytes: u64,
    pub read_bytes: u64,
    pub cores: usize,
}

impl Usage {
    /// Share of all cores this process kept busy (1.0 = every core, the whole time).
    pub fn self_share(&self) -> f64 {
        let capacity = self.wall.as_secs_f64() * self.cores as f64;
        if capacity > 0.0 {
            self.self_cpu_s / capacity
        } else {
            0.0
        }
    }

    /// Share of all cores other processes kept busy.
    pub fn other_share(&self) -> f64 {
        let capacity = self.wall.as_secs_f64() * self.cores as f64;
        if capacity > 0.0 {
            self.other_cpu_s / capacity
        } else {
            0.0
        }
    }
}

impl Snapshot {
    pub fn take() -> Snapshot {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name (which may contain spaces) start at field 3 (state);
        // utime and stime are fields 14 and 15.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let self_ticks = field(11) + field(12);

        let machine = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let cpu: Vec<u64> = machine
            .lines()
            .find(|l| l.starts_with("cpu "))
            .map(|l| l.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_default();
        let at = |i: usize| cpu.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal (guest time is included in user).
        let machine_busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);

        let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
        let io_field = |name: &str| {
            io.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Snapshot {
            at: Instant::now(),
            self_ticks,
            machine_busy,
            write_bytes: io_field("write_bytes:"),
            read_bytes: io_field("read_bytes:"),
        }
    }

    pub fn since(&self, before: &Snapshot) -> Usage {
        let self_cpu_s = self.self_ticks.saturating_sub(before.self_ticks) as f64 / TICKS_PER_S;
        let machine_s = self.machine_busy.saturating_sub(before.machine_busy) as f64 / TICKS_PER_S;
        Usage {
            wall: self.at.saturating_duration_since(before.at),
            self_cpu_s,
            other_cpu_s: (machine_s - self_cpu_s).max(0.0),
            write_bytes: self.write_bytes.saturating_sub(before.write_bytes),
            read_bytes: self.read_bytes.saturating_sub(before.read_bytes),
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}
