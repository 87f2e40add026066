//! A once-a-second sampler thread for node (/proc) and GPU (NVML) telemetry. The latest
//! readings go into every push; every reading goes into the run's SQLite `samples`; the GPU
//! energy over the measured window becomes run_metrics (energy per request / per token).

use super::expo::Exposition;
use super::live::LiveSource;
use super::nvml::{self, GpuSample, GpuSampler};
use super::procfs::{NodeSnapshot, ProcSampler};
use crate::runner::client::RunMetric;
use crate::runner::clock::Clock;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One row of the `samples` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub t_ns: i64,
    pub name: String,
    pub value: f64,
}

#[derive(Debug, Default)]
struct Latest {
    node: NodeSnapshot,
    gpus: Vec<GpuSample>,
}

/// GPU energy reading at one instant: counter (J, summed over GPUs) and power (W).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyPoint {
    pub t_ns: i64,
    pub counter_j: Option<f64>,
    pub power_w: Option<f64>,
}

/// The shared latest readings; rendered into pushes.
#[derive(Debug, Default)]
pub struct TelemetryView {
    latest: Mutex<Latest>,
}

impl LiveSource for TelemetryView {
    fn render(&self, e: &mut Exposition) {
        let l = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        l.node.render(e);
        nvml::render_gpus(&l.gpus, e);
    }
}

/// What the sampler collected, returned by [`Telemetry::stop`].
#[derive(Debug, Default)]
pub struct TelemetryData {
    pub samples: Vec<Sample>,
    pub energy: Vec<EnergyPoint>,
    pub gpu_count: u32,
}

impl TelemetryData {
    /// GPU energy (J) between two instants: the energy counters when present, else the
    /// integral of sampled power. `None` without GPU readings covering the window.
    pub fn energy_between(&self, t0_ns: i64, t1_ns: i64) -> Option<f64> {
        let pts: Vec<&EnergyPoint> = self
            .energy
            .iter()
            .filter(|p| p.t_ns >= t0_ns && p.t_ns <= t1_ns)
            .collect();
        if pts.len() < 2 {
            return None;
        }
        let (first, last) = (pts[0], pts[pts.len() - 1]);
        if let (Some(a), Some(b)) = (first.counter_j, last.counter_j) {
            return Some((b - a).max(0.0));
        }
        let mut j = 0.0;
        for w in pts.windows(2) {
            let (Some(p0), Some(p1)) = (w[0].power_w, w[1].power_w) else {
                return None;
            };
            j += (p0 + p1) / 2.0 * (w[1].t_ns - w[0].t_ns) as f64 / 1e9;
        }
        Some(j)
    }

    /// run_metrics for the measured window: GPU energy, per request and per output token.
    pub fn energy_metrics(
        &self,
        t0_ns: i64,
        t1_ns: i64,
        requests: u64,
        output_tokens: Option<u64>,
    ) -> Vec<RunMetric> {
        let Some(j) = self.energy_between(t0_ns, t1_ns) else {
            return Vec::new();
        };
        let m = |name: &str, value: f64| RunMetric {
            name: name.to_string(),
            value,
            unit: "J".to_string(),
        };
        let mut out = vec![m("gpu_energy_joules", j)];
        if requests > 0 {
            out.push(m("energy_per_request_joules", j / requests as f64));
        }
        if let Some(t) = output_tokens.filter(|t| *t > 0) {
            out.push(m("energy_per_output_token_joules", j / t as f64));
        }
        out
    }
}

/// The running sampler thread.
pub struct Telemetry {
    view: Arc<TelemetryView>,
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<TelemetryData>,
}

impl Telemetry {
    /// Start sampling every `interval` (1 s in runs). NVML is loaded inside the thread.
    pub fn start(clock: Clock, interval: Duration, gpus: bool) -> std::io::Result<Telemetry> {
        let view = Arc::new(TelemetryView::default());
        let (stop, rx) = mpsc::channel::<()>();
        let v = view.clone();
        let thread = std::thread::Builder::new()
            .name("fb-telemetry".into())
            .spawn(move || sample_loop(clock, interval, gpus, &v, rx))?;
        Ok(Telemetry { view, stop, thread })
    }

    /// The push source showing the latest readings.
    pub fn view(&self) -> Arc<TelemetryView> {
        self.view.clone()
    }

    /// Stop sampling (takes one last reading) and return everything collected.
    pub fn stop(self) -> TelemetryData {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or_default()
    }
}

fn sample_loop(
    clock: Clock,
    interval: Duration,
    gpus: bool,
    view: &TelemetryView,
    rx: mpsc::Receiver<()>,
) -> TelemetryData {
    let gpu = if gpus { GpuSampler::open() } else { None };
    let mut procs = ProcSampler::new();
    let mut data = TelemetryData {
        gpu_count: gpu.as_ref().map(|g| g.gpu_count()).unwrap_or(0),
        ..Default::default()
    };
    loop {
        let t_ns = clock.now_ns();
        let (node, values) = procs.sample();
        let readings = gpu.as_ref().map(|g| g.sample()).unwrap_or_default();
        for (name, value) in values
            .into_iter()
            .chain(readings.iter().flat_map(|g| g.sample_values()))
        {
            data.samples.push(Sample { t_ns, name, value });
        }
        if !readings.is_empty() {
            data.energy.push(EnergyPoint {
                t_ns,
                counter_j: nvml::total_energy_j(&readings),
                power_w: nvml::total_power_w(&readings),
            });
        }
        {
            let mut l = view.latest.lock().unwrap_or_else(|e| e.into_inner());
            l.node = node;
            l.gpus = readings;
        }
        match rx.recv_timeout(interval) {
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            _ => break,
        }
    }
    data
}

/// Write samples into the run's campaign file (`samples` table of schema.sql).
pub fn store_samples(
    conn: &rusqlite::Connection,
    run_id: &str,
    samples: &[Sample],
) -> rusqlite::Result<()> {
    let tx = if conn.is_autocommit() {
        Some(conn.unchecked_transaction()?)
    } else {
        None
    };
    {
        let mut st = conn.prepare_cached(
            "INSERT INTO samples (run_id, t_ns, name, value) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for s in samples {
            st.execute(rusqlite::params![run_id, s.t_ns, s.name, s.value])?;
        }
    }
    if let Some(tx) = tx {
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_from_counters_or_power() {
        let d = TelemetryData {
            energy: vec![
                EnergyPoint {
                    t_ns: 0,
                    counter_j: Some(100.0),
                    power_w: Some(100.0),
                },
                EnergyPoint {
                    t_ns: 1_000_000_000,
                    counter_j: Some(250.0),
                    power_w: Some(200.0),
                },
                EnergyPoint {
                    t_ns: 2_000_000_000,
                    counter_j: Some(400.0),
                    power_w: Some(100.0),
                },
            ],
            ..Default::default()
        };
        assert_eq!(d.energy_between(0, 2_000_000_000), Some(300.0));
        let m = d.energy_metrics(0, 2_000_000_000, 30, Some(600));
        assert_eq!(m[1].name, "energy_per_request_joules");
        assert_eq!(m[1].value, 10.0);
        assert_eq!(m[2].value, 0.5);
        let p = TelemetryData {
            energy: d
                .energy
                .iter()
                .map(|e| EnergyPoint {
                    counter_j: None,
                    ..*e
                })
                .collect(),
            ..Default::default()
        };
        assert_eq!(p.energy_between(0, 2_000_000_000), Some(300.0));
        assert_eq!(p.energy_between(0, 0), None);
        assert!(TelemetryData::default()
            .energy_metrics(0, 1, 1, None)
            .is_empty());
    }

    #[test]
    fn sampler_thread_collects_node_samples() {
        let t = Telemetry::start(Clock::new(), Duration::from_millis(20), true).unwrap();
        // Wait (bounded) for at least two readings so rates exist; no timing assertion.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut e = Exposition::new();
            t.view().render(&mut e);
            if e.as_str().contains("node_cpu_utilization_ratio")
                || std::time::Instant::now() > deadline
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let data = t.stop();
        assert!(data.samples.iter().any(|s| s.name == "node_mem_used_bytes"));
        assert!(data.samples.iter().any(|s| s.name == "node_cpu_percent"));
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!("../store/schema.sql"))
            .unwrap();
        conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        store_samples(&conn, "r1", &data.samples).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM samples WHERE run_id='r1'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n as usize, data.samples.len());
    }
}
