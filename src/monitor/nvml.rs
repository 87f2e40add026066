//! GPU telemetry through NVML (`libnvidia-ml.so`, loaded at run time by nvml-wrapper): per GPU
//! utilisation, memory, power, temperature, clocks and the energy counter.
//!
//! On a machine without an NVIDIA driver, [`GpuSampler::open`] logs one informational line and
//! returns `None`; everything else works without GPU figures.

use super::expo::{Exposition, MetricType};
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::Nvml;

/// One reading of one GPU. Fields NVML does not support on a device are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuSample {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    pub util_percent: Option<f64>,
    pub mem_util_percent: Option<f64>,
    pub mem_used_bytes: Option<u64>,
    pub mem_total_bytes: Option<u64>,
    pub power_watts: Option<f64>,
    pub temperature_celsius: Option<f64>,
    pub sm_clock_mhz: Option<f64>,
    pub mem_clock_mhz: Option<f64>,
    /// Energy used since the driver was loaded (Volta and later), joules.
    pub energy_joules: Option<f64>,
}

impl GpuSample {
    /// Named values for the SQLite `samples` table (`gpu0_util_percent`, ...).
    pub fn sample_values(&self) -> Vec<(String, f64)> {
        let i = self.index;
        let mut out = Vec::new();
        let mut put = |name: &str, v: Option<f64>| {
            if let Some(v) = v {
                out.push((format!("gpu{i}_{name}"), v));
            }
        };
        put("util_percent", self.util_percent);
        put("mem_util_percent", self.mem_util_percent);
        put("mem_used_bytes", self.mem_used_bytes.map(|b| b as f64));
        put("power_watts", self.power_watts);
        put("temperature_celsius", self.temperature_celsius);
        put("sm_clock_mhz", self.sm_clock_mhz);
        put("mem_clock_mhz", self.mem_clock_mhz);
        put("energy_joules", self.energy_joules);
        out
    }
}

/// Render the latest GPU readings (base units: ratio, bytes, watts, celsius, hertz, joules).
pub fn render_gpus(gpus: &[GpuSample], e: &mut Exposition) {
    if gpus.is_empty() {
        return;
    }
    type Get = fn(&GpuSample) -> Option<f64>;
    let families: [(&str, MetricType, &str, Get); 9] = [
        (
            "gpu_utilization_ratio",
            MetricType::Gauge,
            "Share of time a kernel ran on the GPU (0-1).",
            |g| g.util_percent.map(|p| p / 100.0),
        ),
        (
            "gpu_memory_utilization_ratio",
            MetricType::Gauge,
            "Share of time GPU memory was read or written (0-1).",
            |g| g.mem_util_percent.map(|p| p / 100.0),
        ),
        (
            "gpu_memory_used_bytes",
            MetricType::Gauge,
            "GPU memory allocated.",
            |g| g.mem_used_bytes.map(|b| b as f64),
        ),
        (
            "gpu_memory_total_bytes",
            MetricType::Gauge,
            "GPU memory installed.",
            |g| g.mem_total_bytes.map(|b| b as f64),
        ),
        (
            "gpu_power_watts",
            MetricType::Gauge,
            "GPU power draw.",
            |g| g.power_watts,
        ),
        (
            "gpu_temperature_celsius",
            MetricType::Gauge,
            "GPU die temperature.",
            |g| g.temperature_celsius,
        ),
        (
            "gpu_sm_clock_hertz",
            MetricType::Gauge,
            "GPU SM clock.",
            |g| g.sm_clock_mhz.map(|m| m * 1e6),
        ),
        (
            "gpu_memory_clock_hertz",
            MetricType::Gauge,
            "GPU memory clock.",
            |g| g.mem_clock_mhz.map(|m| m * 1e6),
        ),
        (
            "gpu_energy_joules_total",
            MetricType::Counter,
            "GPU energy used since the driver was loaded.",
            |g| g.energy_joules,
        ),
    ];
    for (name, kind, help, get) in families {
        if gpus.iter().all(|g| get(g).is_none()) {
            continue;
        }
        e.family(name, kind, help);
        for g in gpus {
            if let Some(v) = get(g) {
                let idx = g.index.to_string();
                e.sample(
                    name,
                    &[("gpu", &idx), ("uuid", &g.uuid), ("model", &g.name)],
                    v,
                );
            }
        }
    }
}

/// Say why there is no GPU telemetry once per process (several services may run at once).
fn info_once(msg: String) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let mut first = false;
    ONCE.call_once(|| first = true);
    if first {
        tracing::info!("{msg}");
    } else {
        tracing::debug!("{msg}");
    }
}

/// An open NVML library and its GPUs.
pub struct GpuSampler {
    nvml: Nvml,
    count: u32,
}

impl GpuSampler {
    /// Load NVML. Without a driver or GPUs: one informational line and `None`.
    pub fn open() -> Option<GpuSampler> {
        match Nvml::init() {
            Ok(nvml) => match nvml.device_count() {
                Ok(0) => {
                    info_once("GPU telemetry: NVML loaded but reports no GPUs".into());
                    None
                }
                Ok(count) => {
                    tracing::debug!("GPU telemetry: {count} GPU(s) through NVML");
                    Some(GpuSampler { nvml, count })
                }
                Err(e) => {
                    info_once(format!("GPU telemetry off: NVML cannot count GPUs ({e})"));
                    None
                }
            },
            Err(e) => {
                info_once(format!(
                    "GPU telemetry off: no NVIDIA driver/NVML on this node ({e}); \
                     everything else is measured"
                ));
                None
            }
        }
    }

    pub fn gpu_count(&self) -> u32 {
        self.count
    }

    /// Provenance facts: `gpu.count`, `gpu.driver`, `gpu.cuda`, `gpuN.name`, `gpuN.uuid`,
    /// `gpuN.memory_bytes` (keys of [`crate::runner::provenance`]).
    pub fn facts(&self) -> std::collections::BTreeMap<String, String> {
        let mut f = std::collections::BTreeMap::new();
        f.insert("gpu.count".to_string(), self.count.to_string());
        if let Ok(v) = self.nvml.sys_driver_version() {
            f.insert("gpu.driver".into(), v);
        }
        if let Ok(v) = self.nvml.sys_cuda_driver_version() {
            f.insert(
                "gpu.cuda".into(),
                format!("{}.{}", v / 1000, (v % 1000) / 10),
            );
        }
        for index in 0..self.count {
            let Ok(d) = self.nvml.device_by_index(index) else {
                continue;
            };
            if let Ok(n) = d.name() {
                f.insert(format!("gpu{index}.name"), n);
            }
            if let Ok(u) = d.uuid() {
                f.insert(format!("gpu{index}.uuid"), u);
            }
            if let Ok(m) = d.memory_info() {
                f.insert(format!("gpu{index}.memory_bytes"), m.total.to_string());
            }
        }
        f
    }

    /// Read every GPU now. Unsupported fields stay `None`.
    pub fn sample(&self) -> Vec<GpuSample> {
        let mut out = Vec::with_capacity(self.count as usize);
        for index in 0..self.count {
            let Ok(d) = self.nvml.device_by_index(index) else {
                continue;
            };
            let util = d.utilization_rates().ok();
            let mem = d.memory_info().ok();
            out.push(GpuSample {
                index,
                uuid: d.uuid().unwrap_or_default(),
                name: d.name().unwrap_or_default(),
                util_percent: util.as_ref().map(|u| u.gpu as f64),
                mem_util_percent: util.as_ref().map(|u| u.memory as f64),
                mem_used_bytes: mem.as_ref().map(|m| m.used),
                mem_total_bytes: mem.as_ref().map(|m| m.total),
                power_watts: d.power_usage().ok().map(|mw| mw as f64 / 1000.0),
                temperature_celsius: d.temperature(TemperatureSensor::Gpu).ok().map(|t| t as f64),
                sm_clock_mhz: d.clock_info(Clock::SM).ok().map(|c| c as f64),
                mem_clock_mhz: d.clock_info(Clock::Memory).ok().map(|c| c as f64),
                energy_joules: d
                    .total_energy_consumption()
                    .ok()
                    .map(|mj| mj as f64 / 1000.0),
            });
        }
        out
    }
}

/// The GPU facts of a run's provenance (NVML opened once per call; none without a driver).
pub fn gpu_facts() -> crate::runner::provenance::GpuFacts {
    std::sync::Arc::new(|| GpuSampler::open().map(|g| g.facts()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values as an H100 reports them through NVML (a fixture: no GPU on this machine).
    pub(crate) fn fixture() -> GpuSample {
        GpuSample {
            index: 0,
            uuid: "GPU-5d3c1c9e-0000-0000-0000-000000000000".into(),
            name: "NVIDIA H100 80GB HBM3".into(),
            util_percent: Some(87.0),
            mem_util_percent: Some(41.0),
            mem_used_bytes: Some(40 << 30),
            mem_total_bytes: Some(80 << 30),
            power_watts: Some(512.3),
            temperature_celsius: Some(61.0),
            sm_clock_mhz: Some(1980.0),
            mem_clock_mhz: Some(2619.0),
            energy_joules: Some(123_456.789),
        }
    }

    #[test]
    fn renders_base_units() {
        let mut e = Exposition::new();
        render_gpus(&[fixture()], &mut e);
        let t = e.into_string();
        assert!(t.contains("factorybench_gpu_utilization_ratio{gpu=\"0\",uuid=\"GPU-5d3c1c9e-0000-0000-0000-000000000000\",model=\"NVIDIA H100 80GB HBM3\"} 0.87\n"), "{t}");
        assert!(t.contains("factorybench_gpu_sm_clock_hertz{gpu=\"0\""));
        assert!(t.contains("} 1980000000\n"));
        assert!(t.contains("# TYPE factorybench_gpu_energy_joules_total counter"));
        let names: Vec<String> = fixture()
            .sample_values()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(names.contains(&"gpu0_util_percent".to_string()));
    }

    #[test]
    fn no_gpu_here_is_not_an_error() {
        // On machines without a driver this returns None after one info line; with a GPU it
        // must read at least one device.
        if let Some(s) = GpuSampler::open() {
            assert!(!s.sample().is_empty());
        }
    }
}
