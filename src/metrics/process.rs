//! Process metrics read from `/proc/self` at scrape time (open file descriptors, the fd limit,
//! resident memory, CPU time), plus build info and uptime.
//!
//! Owns: parsing those files. Does not: cache anything. Invariants: a missing or unreadable file
//! (not Linux, restricted /proc) yields `None` and the metric is left out, never an error.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::text::{Kind, Page, Value};

/// What could be read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessInfo {
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// Resident set size in bytes.
    pub resident_bytes: Option<u64>,
    /// User plus system CPU time in seconds.
    pub cpu_seconds: Option<f64>,
}

/// Reads the current process's numbers.
pub fn read() -> ProcessInfo {
    let proc = Path::new("/proc/self");
    ProcessInfo {
        open_fds: std::fs::read_dir(proc.join("fd"))
            .ok()
            .map(|d| u64::try_from(d.count()).unwrap_or(u64::MAX)),
        max_fds: std::fs::read_to_string(proc.join("limits"))
            .ok()
            .and_then(|t| max_open_files(&t)),
        resident_bytes: std::fs::read_to_string(proc.join("status"))
            .ok()
            .and_then(|t| vm_rss_bytes(&t)),
        cpu_seconds: std::fs::read_to_string(proc.join("stat"))
            .ok()
            .and_then(|t| cpu_ticks(&t))
            .map(|ticks| crate::stats::histogram::to_f64(ticks) / TICKS_PER_SECOND),
    }
}

/// `sysconf(_SC_CLK_TCK)` is 100 on every Linux architecture pgsluice targets.
const TICKS_PER_SECOND: f64 = 100.0;

/// `VmRSS:   1234 kB` from `/proc/self/status`, in bytes.
pub fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// The soft limit of `Max open files` from `/proc/self/limits`.
pub fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// utime + stime (fields 14 and 15) from `/proc/self/stat`; the command name may hold spaces,
/// so fields are counted after its closing parenthesis.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// Writes the build, uptime and process families (each left out when unreadable).
pub fn render(page: &mut Page, started: Instant, started_wall: SystemTime) {
    let info = read();
    page.family(
        "pgsluice_build_info",
        Kind::Gauge,
        "Always 1; the version is a label.",
    );
    page.sample(
        "pgsluice_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        Value::Int(1),
    );
    page.family(
        "pgsluice_uptime_seconds",
        Kind::Gauge,
        "Seconds since pgsluice started.",
    );
    let uptime = started.elapsed().as_secs_f64();
    page.sample("pgsluice_uptime_seconds", &[], Value::Float(uptime));
    let start = started_wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    let floats = [
        (
            "pgsluice_process_start_time_seconds",
            Kind::Gauge,
            "Start time of the process since the Unix epoch.",
            Some(start.as_secs_f64()),
        ),
        (
            "pgsluice_process_cpu_seconds_total",
            Kind::Counter,
            "User and system CPU time spent.",
            info.cpu_seconds,
        ),
    ];
    for (name, kind, help, v) in floats {
        if let Some(v) = v {
            page.family(name, kind, help);
            page.sample(name, &[], Value::Float(v));
        }
    }
    let ints = [
        (
            "pgsluice_process_open_fds",
            "Open file descriptors.",
            info.open_fds,
        ),
        (
            "pgsluice_process_max_fds",
            "Limit on open file descriptors.",
            info.max_fds,
        ),
        (
            "pgsluice_process_resident_memory_bytes",
            "Resident memory size.",
            info.resident_bytes,
        ),
    ];
    for (name, help, v) in ints {
        if let Some(v) = v {
            page.family(name, Kind::Gauge, help);
            page.sample(name, &[], Value::Int(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(
            vm_rss_bytes("Name:\tx\nVmRSS:\t    2048 kB\nVmSwap: 0 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(vm_rss_bytes("Name: x\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4";
        assert_eq!(cpu_ticks(stat), Some(300));
    }

    #[test]
    fn reads_own_process() {
        let info = read();
        if Path::new("/proc/self/fd").exists() {
            assert!(info.open_fds.unwrap() > 0);
            assert!(info.resident_bytes.unwrap() > 0);
        }
    }
}
