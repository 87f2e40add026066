//! The memory a service job gets: the cluster's default for a job that asks for none
//! (`scontrol show config`: DefMemPerNode / DefMemPerCPU), and the `--mem` that `submit` adds
//! on the sbatch command line when that default is known and below the floor of a server the
//! job starts (`Kind::mem_floor_mib`). The rule (docs/slurm.md): never below what the site
//! gives, never when the recipe says `slurm.mem`, never when the default is unknown or
//! unlimited. Rendering stays pure: the scripts never carry it (command-line options override
//! `#SBATCH` directives).

use crate::recipe::{Runtime, Service};
use std::time::Duration;

/// How long `scontrol show config` may take before the default counts as unknown.
const SCONTROL_BUDGET: Duration = Duration::from_secs(15);

/// The memory the cluster gives a job that asks for none (`scontrol show config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemDefault {
    /// `DefMemPerNode`: MiB per node; `None`: UNLIMITED (all of the node's memory).
    PerNode(Option<u64>),
    /// `DefMemPerCPU`: MiB per allocated CPU.
    PerCpu(u64),
}

impl MemDefault {
    /// MiB a job with `cpus` CPUs per node gets; `None`: all of the node's memory.
    pub fn job_mib(self, cpus: u64) -> Option<u64> {
        match self {
            MemDefault::PerNode(n) => n,
            MemDefault::PerCpu(x) => Some(x.saturating_mul(cpus)),
        }
    }

    /// How the default comes about, for messages: `DefMemPerCPU=1000 MiB x 2 CPU(s) gives the
    /// job 2000 MiB`.
    pub fn describe(self, cpus: u64) -> String {
        match self {
            MemDefault::PerNode(None) => {
                "the cluster's DefMemPerNode=UNLIMITED gives the job all of the node's memory"
                    .to_string()
            }
            MemDefault::PerNode(Some(x)) => {
                format!("the cluster's DefMemPerNode gives the job {x} MiB")
            }
            MemDefault::PerCpu(x) => format!(
                "the cluster's DefMemPerCPU={x} MiB x {cpus} CPU(s) gives the job {} MiB",
                x.saturating_mul(cpus)
            ),
        }
    }
}

/// The controller's default job memory (`None` when scontrol does not answer or say).
pub fn mem_default() -> Option<MemDefault> {
    let out = super::run_within(
        "scontrol",
        &["show".to_string(), "config".to_string()],
        SCONTROL_BUDGET,
    )
    .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_mem_default(&String::from_utf8_lossy(&out.stdout))
}

/// DefMemPerCPU (when set and non-zero) or DefMemPerNode from `scontrol show config`.
pub fn parse_mem_default(config: &str) -> Option<MemDefault> {
    let value = |key: &str| {
        config.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let mib = |v: &str| v.parse::<u64>().ok().filter(|n| *n > 0);
    if let Some(v) = value("DefMemPerCPU") {
        if let Some(n) = mib(&v) {
            return Some(MemDefault::PerCpu(n));
        }
    }
    value("DefMemPerNode").map(|v| MemDefault::PerNode(mib(&v)))
}

/// The CPUs per node the cluster's DefMemPerCPU is multiplied by for a service's job: its
/// `--cpus-per-task` (one task on the service's node), else SLURM's one.
pub fn job_cpus(svc: &Service) -> u64 {
    u64::from(svc.cpus_per_task().unwrap_or(1))
}

/// The floor of memory a server the job starts should get (`Kind::mem_floor_mib`), MiB;
/// `None` for an external service or a kind without one.
pub fn started_floor_mib(svc: &Service) -> Option<u64> {
    if svc.runtime == Runtime::External {
        None
    } else {
        svc.kind.spec().mem_floor_mib()
    }
}

/// A `--mem` that `submit` adds to a service's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemRaise {
    pub service: String,
    /// The kind whose floor it is (`ollama`, `vectordb`, ...).
    pub kind: &'static str,
    /// What is asked for, MiB (`--mem=<floor>M`).
    pub floor_mib: u64,
    /// What the cluster's default would have given, MiB.
    pub default_mib: u64,
    /// How the default comes about ([`MemDefault::describe`]).
    pub default_how: String,
}

impl MemRaise {
    /// The sbatch option's value (`16384M`).
    pub fn mem_value(&self) -> String {
        format!("{}M", self.floor_mib)
    }

    /// One line for `submit`: what was added, why, and how to choose otherwise.
    pub fn note(&self) -> String {
        format!(
            "memory: added --mem={} to `{}`'s job: no slurm.mem, and {}, less than a started \
             {} server should have ({} MiB); set `slurm.mem` on `{}` to choose otherwise",
            self.mem_value(),
            self.service,
            self.default_how,
            self.kind,
            self.floor_mib,
            self.service
        )
    }
}

/// Whether `submit` adds `--mem` to `svc`'s job, given the cluster's default (`None`:
/// unknown): only for a server the job starts whose kind has a floor, without `slurm.mem`,
/// when the default is known, limited and below that floor.
pub fn mem_raise(svc: &Service, default: Option<MemDefault>) -> Option<MemRaise> {
    if svc.slurm.mem.is_some() {
        return None;
    }
    let floor_mib = started_floor_mib(svc)?;
    let default = default?;
    let cpus = job_cpus(svc);
    let default_mib = default.job_mib(cpus)?;
    (default_mib < floor_mib).then(|| MemRaise {
        service: svc.name.clone(),
        kind: svc.kind.as_str(),
        floor_mib,
        default_mib,
        default_how: default.describe(cpus),
    })
}

/// Whether any of `services` could get a `--mem` from `submit`, so that the cluster is asked
/// for its default only then.
pub fn may_raise<'a>(mut services: impl Iterator<Item = &'a Service>) -> bool {
    services.any(|s| s.slurm.mem.is_none() && started_floor_mib(s).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn service(lines: &str) -> Service {
        crate::recipe::parse_str(
            &format!("benchmark: {{name: x}}\nservices:\n  - service_name: s\n{lines}"),
            Path::new("r.yml"),
        )
        .unwrap()
        .plan
        .services[0]
            .clone()
    }

    fn ollama(extra: &str) -> Service {
        service(&format!(
            "    service_type: ollama\n    container_image: docker://ollama/ollama\n    model: m\n    pull_model: true\n{extra}"
        ))
    }

    #[test]
    fn default_memory_from_the_controller_config() {
        assert_eq!(
            parse_mem_default("DefMemPerNode           = UNLIMITED\nMaxMemPerNode = UNLIMITED\n"),
            Some(MemDefault::PerNode(None))
        );
        assert_eq!(
            parse_mem_default("DefMemPerCPU = 2048\n"),
            Some(MemDefault::PerCpu(2048))
        );
        assert_eq!(
            parse_mem_default("DefMemPerNode = 64000\n"),
            Some(MemDefault::PerNode(Some(64000)))
        );
        // A shim's injected DefMemPerCPU wins over the DefMemPerNode line.
        assert_eq!(
            parse_mem_default("DefMemPerNode = UNLIMITED\nDefMemPerCPU = 1000\n"),
            Some(MemDefault::PerCpu(1000))
        );
        assert_eq!(parse_mem_default("ClusterName = x\n"), None);
    }

    #[test]
    fn a_started_llm_server_below_its_floor_gets_the_floor() {
        // The service and its load generator on one node: 2 CPUs by default.
        let r = mem_raise(&ollama(""), Some(MemDefault::PerCpu(1000))).unwrap();
        assert_eq!(r.floor_mib, 16 * 1024);
        assert_eq!(r.default_mib, 2000);
        assert_eq!(r.mem_value(), "16384M");
        let note = r.note();
        assert!(note.contains("added --mem=16384M to `s`'s job"), "{note}");
        assert!(
            note.contains("DefMemPerCPU=1000 MiB x 2 CPU(s) gives the job 2000 MiB"),
            "{note}"
        );
        assert!(note.contains("set `slurm.mem` on `s`"), "{note}");
        // The recipe's cpus-per-task multiplies DefMemPerCPU.
        let r = mem_raise(
            &ollama("    slurm: {cpus_per_task: 8}\n"),
            Some(MemDefault::PerCpu(1000)),
        )
        .unwrap();
        assert_eq!(r.default_mib, 8000);
        assert_eq!(
            mem_raise(&ollama(""), Some(MemDefault::PerNode(Some(8000))))
                .unwrap()
                .default_mib,
            8000
        );
    }

    #[test]
    fn nothing_is_added_when_the_site_gives_enough_or_says_nothing() {
        // Unknown, unlimited, or already at the floor: never reduce what the site gives.
        assert_eq!(mem_raise(&ollama(""), None), None);
        assert_eq!(
            mem_raise(&ollama(""), Some(MemDefault::PerNode(None))),
            None
        );
        assert_eq!(
            mem_raise(&ollama(""), Some(MemDefault::PerNode(Some(16 * 1024)))),
            None
        );
        assert_eq!(
            mem_raise(&ollama(""), Some(MemDefault::PerCpu(8 * 1024))),
            None
        );
        // The recipe chose, even below the floor (doctor warns about that).
        assert_eq!(
            mem_raise(
                &ollama("    slurm: {mem: 4G}\n"),
                Some(MemDefault::PerCpu(1000))
            ),
            None
        );
    }

    #[test]
    fn only_started_servers_with_a_floor() {
        let low = Some(MemDefault::PerCpu(100));
        // An external LLM: the job starts no server.
        let ext = service(
            "    service_type: openai\n    runtime: external\n    service_url: http://127.0.0.1:1\n    model: m\n",
        );
        assert_eq!(mem_raise(&ext, low), None);
        assert!(!may_raise([&ext].into_iter()));
        // A kind without a floor (http).
        let http = service(
            "    service_type: http\n    runtime: host\n    start_command: [sleep, \"1\"]\n    port: 8080\n    url: /\n",
        );
        assert_eq!(mem_raise(&http, low), None);
        assert!(!may_raise([&http].into_iter()));
        // A started vector database: its 2 GiB floor.
        let chroma = service(
            "    service_type: vectordb\n    backend: chromadb\n    runtime: host\n    start_command: [chroma, run]\n    port: 8000\n    dimension: 4\n",
        );
        let r = mem_raise(&chroma, low).unwrap();
        assert_eq!(
            (r.kind, r.floor_mib, r.default_mib),
            ("vectordb", 2048, 200)
        );
        assert!(may_raise([&http, &chroma].into_iter()));
    }
}
