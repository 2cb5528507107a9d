//! CPU time and memory of processes and of the machine, from Linux's
//! `/proc`: the load generator's per-step resources and the consume
//! benchmark's per-drain CPU both read them here. A reading that fails (no
//! such process, no `/proc`) is `None`, never a panic.

use std::time::Duration;

/// CPU time (user + system) that process `pid` (`"self"`: this one) used
/// so far, from `/proc/PID/stat`. Clock ticks are taken as 100 a second
/// (`USER_HZ` on Linux).
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let (user, system) = cpu_times(pid)?;
    Some(user + system)
}

/// User and system CPU time of process `pid` so far, apart: work in the
/// process's own code moves the first, wake-ups and I/O the second.
pub fn cpu_times(pid: &str) -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from after it.
    // Fields then start at the third (state); utime and stime are the 14th
    // and 15th.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = |t: u64| Duration::from_millis(t * 10);
    Some((ticks(utime), ticks(stime)))
}

/// Busy and total CPU time of the whole machine (all cores), in ticks, from `/proc/stat`.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

/// A `kB` line of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), `pid` as for
/// [`cpu_time`].
pub fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets this process's `VmHWM` to its current RSS, so that the next
/// reading is the peak from now on.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process id of the tansu broker listening on `bootstrap`, if any.
pub fn broker_pid(bootstrap: &str) -> Option<String> {
    let url = format!("tcp://{bootstrap}");
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        (cmdline.contains("broker") && cmdline.split('\0').any(|a| a == url))
            .then(|| entry.file_name().to_string_lossy().into_owned())
    })
}

/// Measures the CPU time of this process and of the broker behind
/// `bootstrap` (when it is a process of its own). A time that cannot be
/// read counts as 0.
pub struct CpuMeter {
    /// This process's user and system time at the start.
    me: (Duration, Duration),
    broker: Option<(String, Duration)>,
}

impl CpuMeter {
    pub fn start(bootstrap: &str) -> Self {
        Self {
            me: cpu_times("self").unwrap_or_default(),
            broker: broker_pid(bootstrap).map(|pid| {
                let t = cpu_time(&pid).unwrap_or_default();
                (pid, t)
            }),
        }
    }

    /// This process's and the broker's CPU time since [`CpuMeter::start`].
    pub fn stop(&self) -> (Duration, Option<Duration>) {
        (
            cpu_time("self")
                .unwrap_or_default()
                .saturating_sub(self.me.0 + self.me.1),
            self.broker
                .as_ref()
                .map(|(pid, t)| cpu_time(pid).unwrap_or_default().saturating_sub(*t)),
        )
    }

    /// The part of this process's CPU time since [`CpuMeter::start`] spent
    /// in user space.
    pub fn user(&self) -> Duration {
        cpu_times("self")
            .unwrap_or_default()
            .0
            .saturating_sub(self.me.0)
    }
}
