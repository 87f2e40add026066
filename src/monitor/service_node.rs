//! GPU telemetry of the service node in a multi-node job (issue 23, case 5): the batch step
//! runs `factorybench monitor sample-service-node` beside the service while the runners on the
//! client nodes drive load, and stops it at teardown. Readings go to a
//! [`crate::store::service_node`] file, which the report attaches to the service aggregate.

use super::nvml::GpuSampler;
use crate::runner::clock::Clock;
use crate::store::service_node::{Header, Reading, Writer};
use std::path::Path;
use std::time::Duration;

/// What the sampler did.
#[derive(Debug, Default, PartialEq)]
pub struct Sampled {
    pub gpus: u32,
    pub readings: u64,
}

/// Sample this node's GPUs every `interval` into `out` until the parent process (the batch
/// step) is gone or the process is signalled (the batch script kills it at teardown; every
/// line is written whole as it is taken). Without NVML or GPUs: one line on stderr, no file,
/// and `Ok` at once.
pub fn sample(out: &Path, service: &str, interval: Duration) -> std::io::Result<Sampled> {
    let node = crate::store::hostname();
    let Some(gpu) = GpuSampler::open() else {
        eprintln!(
            "factorybench: no GPU telemetry on the service node {node} (no NVML or no GPU): \
             the report has no GPU samples or energy for `{service}`"
        );
        return Ok(Sampled::default());
    };
    let gpus = gpu.gpu_count();
    let mut w = Writer::create(
        out,
        &Header {
            service: service.to_string(),
            node: node.clone(),
            gpus,
        },
    )?;
    eprintln!(
        "factorybench: sampling {gpus} GPU(s) of the service node {node} into {}",
        out.display()
    );
    let clock = Clock::new();
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    let mut done = Sampled { gpus, readings: 0 };
    loop {
        let t_ns = clock.now_ns();
        for g in gpu.sample() {
            for (name, value) in g.sample_values() {
                w.reading(&Reading { t_ns, name, value })?;
                done.readings += 1;
            }
        }
        std::thread::sleep(interval);
        // SAFETY: as above.
        if unsafe { libc::getppid() } != parent {
            return Ok(done);
        }
    }
}
