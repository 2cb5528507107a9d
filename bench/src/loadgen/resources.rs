//! CPU and memory of the watched processes, the generator and the machine
//! during a step (read from /proc by [`crate::proc`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::args::Watched;
use super::lock;
use crate::proc::{cpu_time, machine_ticks, status_kib};

/// CPU time of a process in seconds (`pid` as for [`cpu_time`]).
fn cpu_seconds(pid: &str) -> Option<f64> {
    cpu_time(pid).map(|t| t.as_secs_f64())
}

/// A line of `/proc/PID/status` in MiB (`VmRSS`, `VmHWM`).
pub(super) fn memory_mib(pid: u32, field: &str) -> Option<f64> {
    status_kib(&pid.to_string(), field).map(|kib| kib as f64 / 1024.0)
}

/// CPU and memory of the watched processes, the generator and the machine
/// over the sending part of a step.
pub(super) struct Usage {
    started: Instant,
    cpu: Vec<Option<f64>>,
    own_cpu: Option<f64>,
    machine: Option<(u64, u64)>,
    peak_rss: Arc<Mutex<Vec<f64>>>,
    sampler: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ProcessUsage {
    pub(super) name: String,
    pub(super) cpu_percent: Option<f64>,
    pub(super) peak_rss_mib: Option<f64>,
    /// CPU time (µs) from the step's first request to its last chain done
    /// (or the drain's end), divided by the chains completed: what one
    /// registration chain costs the process, its idle work included.
    #[serde(default)]
    pub(super) cpu_per_chain_us: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Resources {
    pub(super) processes: Vec<ProcessUsage>,
    pub(super) loadgen_cpu_percent: Option<f64>,
    /// Of the whole machine: 100 % is every core busy.
    pub(super) machine_busy_percent: Option<f64>,
    /// CPU of everything else on the machine (in % of one core): the
    /// machine's busy time less the watched processes and the generator.
    /// Well above a few per cent, something else competed for the cores.
    pub(super) others_cpu_percent: Option<f64>,
}

impl Usage {
    pub(super) fn start(watched: &[Watched]) -> Self {
        let peak_rss = Arc::new(Mutex::new(vec![0.0_f64; watched.len()]));
        let sampler = {
            let peak_rss = peak_rss.clone();
            let pids: Vec<u32> = watched.iter().map(|w| w.pid).collect();
            tokio::spawn(async move {
                loop {
                    for (i, pid) in pids.iter().enumerate() {
                        if let Some(rss) = memory_mib(*pid, "VmRSS:") {
                            let mut peaks = lock(&peak_rss);
                            peaks[i] = peaks[i].max(rss);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        };
        Self {
            started: Instant::now(),
            cpu: watched
                .iter()
                .map(|w| cpu_seconds(&w.pid.to_string()))
                .collect(),
            own_cpu: cpu_seconds("self"),
            machine: machine_ticks(),
            peak_rss,
            sampler,
        }
    }

    /// The usage over the sending part, and what measures on to the
    /// step's last chain.
    pub(super) fn finish(self, watched: &[Watched]) -> (Resources, ChainCpu) {
        self.sampler.abort();
        let wall = self.started.elapsed().as_secs_f64();
        let percent =
            |before: Option<f64>, after: Option<f64>| Some((after? - before?) / wall * 100.0);
        let peaks = lock(&self.peak_rss).clone();
        let machine = match (self.machine, machine_ticks()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some((b1 - b0) as f64 / (t1 - t0) as f64 * 100.0)
            }
            _ => None,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let processes: Vec<ProcessUsage> = watched
            .iter()
            .zip(&self.cpu)
            .zip(peaks)
            .map(|((w, before), peak)| ProcessUsage {
                name: w.name.clone(),
                cpu_percent: percent(*before, cpu_seconds(&w.pid.to_string())),
                peak_rss_mib: (peak > 0.0).then_some(peak),
                cpu_per_chain_us: None,
            })
            .collect();
        let loadgen = percent(self.own_cpu, cpu_seconds("self"));
        let chain_cpu = ChainCpu {
            before: self.cpu.clone(),
        };
        let known: f64 =
            processes.iter().filter_map(|p| p.cpu_percent).sum::<f64>() + loadgen.unwrap_or(0.0);
        let resources = Resources {
            others_cpu_percent: machine.map(|m| (m * cores - known).max(0.0)),
            processes,
            loadgen_cpu_percent: loadgen,
            machine_busy_percent: machine,
        };
        (resources, chain_cpu)
    }
}

/// The watched processes' CPU time at the step's start, for
/// [`ProcessUsage::cpu_per_chain_us`] once its chains are done.
pub(super) struct ChainCpu {
    before: Vec<Option<f64>>,
}

impl ChainCpu {
    /// Fills in each process's CPU per chain, now that `completed` chains
    /// are done.
    pub(super) fn finish(self, watched: &[Watched], completed: u64, resources: &mut Resources) {
        for ((w, before), p) in watched
            .iter()
            .zip(self.before)
            .zip(&mut resources.processes)
        {
            p.cpu_per_chain_us = match (before, cpu_seconds(&w.pid.to_string())) {
                (Some(before), Some(after)) if completed > 0 => {
                    Some((after - before) * 1e6 / completed as f64)
                }
                _ => None,
            };
        }
    }
}
