//! A once-a-second sampler thread for node (/proc) and GPU (NVML) telemetry. The latest
//! readings go into every push; every reading goes to a sink (the run's SQLite `samples`
//! through the store writer). The report derives GPU energy per request / per output token
//! from the `gpuN_energy_joules` (or `gpuN_power_watts`) samples over the measured window.

use super::expo::Exposition;
use super::live::LiveSource;
use super::nvml::{self, GpuSample, GpuSampler};
use super::procfs::{NodeSnapshot, ProcSampler};
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

/// Where every reading goes (called on the sampler thread).
pub type SampleSink = Box<dyn FnMut(Sample) + Send>;

/// What the sampler did, returned by [`Telemetry::stop`].
#[derive(Debug, Default)]
pub struct TelemetryData {
    pub samples_taken: u64,
    pub gpu_count: u32,
}

/// The running sampler thread.
pub struct Telemetry {
    view: Arc<TelemetryView>,
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<TelemetryData>,
}

impl Telemetry {
    /// Start sampling every `interval` (1 s in runs). NVML is loaded inside the thread.
    pub fn start(
        clock: Clock,
        interval: Duration,
        gpus: bool,
        sink: SampleSink,
    ) -> std::io::Result<Telemetry> {
        let view = Arc::new(TelemetryView::default());
        let (stop, rx) = mpsc::channel::<()>();
        let v = view.clone();
        let thread = std::thread::Builder::new()
            .name("fb-telemetry".into())
            .spawn(move || sample_loop(clock, interval, gpus, &v, rx, sink))?;
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
    mut sink: SampleSink,
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
            data.samples_taken += 1;
            sink(Sample { t_ns, name, value });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_thread_collects_node_samples() {
        let got = Arc::new(Mutex::new(Vec::<Sample>::new()));
        let g = got.clone();
        let sink: SampleSink = Box::new(move |s| g.lock().unwrap().push(s));
        let t = Telemetry::start(Clock::new(), Duration::from_millis(20), true, sink).unwrap();
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
        let samples = got.lock().unwrap();
        assert!(samples.iter().any(|s| s.name == "node_mem_used_bytes"));
        assert!(samples.iter().any(|s| s.name == "node_cpu_percent"));
        assert_eq!(data.samples_taken as usize, samples.len());
    }
}
