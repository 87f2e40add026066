//! The validated plan: what a recipe means, with enums for kinds and modes and units in names.
//!
//! Everything downstream (render, runner, report) consumes a [`Plan`], never raw YAML.

pub use super::endpoint::Endpoint;
pub use crate::kinds::workload::*;
pub use crate::kinds::ServiceKind;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Path of the recipe file as given.
    pub source_path: PathBuf,
    /// SHA-256 of the recipe file bytes (hex).
    pub source_sha256: String,
    pub benchmark: Benchmark,
    pub global: Global,
    /// The optional top-level `monitoring` section.
    pub monitoring: Monitoring,
    pub services: Vec<Service>,
}

/// The recipe's `monitoring` section.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Monitoring {
    /// Also export the earlier tool's metric names in live pushes (`compat_metrics: seed`).
    pub compat_metrics: Option<crate::compat::CompatNames>,
    /// The campaign stresses its services on purpose (`expect_stress: true`): each run silences
    /// its own stress alerts in the monitoring stack's Alertmanager while it runs.
    pub expect_stress: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Benchmark {
    pub name: String,
    pub description: String,
    /// Whole-suite duration budget in seconds (`benchmark.duration`), if given.
    pub duration_s: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct Global {
    pub log_level: LogLevel,
    /// SQLite campaign file (relative paths are relative to the working directory).
    pub metrics_db: PathBuf,
    pub reports_dir: PathBuf,
    pub logs_dir: PathBuf,
    #[serde(serialize_with = "super::redact::ser_opt_url")]
    pub pushgateway_url: Option<String>,
    /// Seconds between live pushes to the Pushgateway.
    pub push_interval_s: f64,
}

/// How the batch script starts the service on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Runtime {
    /// `apptainer instance start` of `container_image`.
    Apptainer,
    /// `podman run -d` of `container_image` (sites without Apptainer).
    Podman,
    /// The service's native binary, `start_command`, run on the node.
    Host,
    /// Nothing is started: the service already runs elsewhere (or needs no server).
    External,
}

impl Runtime {
    /// The recipe's name of the runtime (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Apptainer => "apptainer",
            Runtime::Podman => "podman",
            Runtime::Host => "host",
            Runtime::External => "external",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    /// Unique, `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`: it names files and jobs.
    pub name: String,
    pub kind: ServiceKind,
    pub runtime: Runtime,
    /// The recipe names the runtime (`runtime:` of the service or of `global`)
    /// rather than it being implied by `container_image`/`start_command`: `factorybench run`
    /// then starts the service itself with the batch script's lifecycle (`run --start` /
    /// `--no-start` override).
    pub runtime_explicit: bool,
    pub container_image: Option<String>,
    /// For `runtime: host`: argv of the native server.
    pub start_command: Vec<String>,
    /// `service_url` as written (for `database` this may be a `postgresql://` URL). Clients
    /// read [`Service::endpoint`], which is resolved from it, `port` and `host`.
    #[serde(serialize_with = "super::redact::ser_opt_url")]
    pub service_url: Option<String>,
    /// Where the service is reached: resolved once, at plan time.
    pub endpoint: Endpoint,
    pub load: Load,
    pub workload: Workload,
    pub slurm: SlurmSpec,
    pub container: ContainerSpec,
    pub readiness: Readiness,
    pub sweep: Option<Sweep>,
    /// Names of services whose jobs must succeed before this one starts.
    pub depends_on: Vec<String>,
    /// `compare` limits for this service (`compare_thresholds`): metric → limit such as
    /// `10%` or `+5ms`; the command line overrides them.
    pub compare_thresholds: std::collections::BTreeMap<String, String>,
    /// `compare` absolute floors under relative limits (`compare_min_change`): metric → amount
    /// such as `0.1ms`; the command line's `--min-change` overrides them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub compare_min_change: std::collections::BTreeMap<String, String>,
    /// This runner's part when it runs on a client node of a multi-node job
    /// ([`Service::for_client_node`]); never from the recipe. Such a runner is not on the
    /// service's node: the GPUs it could see are not the service's, and it samples none.
    #[serde(skip)]
    pub client_share: Option<ClientShare>,
    /// `capacity_search`: find the highest total rate that holds the SLOs (`factorybench
    /// capacity`). Omitted from serialised plans when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_search: Option<CapacitySearch>,
}

/// Recipe `capacity_search` (docs/capacity.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacitySearch {
    /// Bounds and steps of the search.
    pub spec: crate::capacity::SearchSpec,
    /// Measured seconds of each step (`step_duration`; default: the service's `duration`).
    pub step_duration_s: Option<f64>,
    pub slo: CapacitySlo,
}

/// What a step must hold to pass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CapacitySlo {
    /// p99 of the corrected latency (from the scheduled start), successful requests.
    pub latency_p99_ms: Option<f64>,
    /// LLM: p99 time to first token.
    pub ttft_p99_ms: Option<f64>,
    /// Failed requests / measured requests.
    pub max_error_rate: f64,
    /// Achieved rate / target rate at least this (a service that cannot keep up fails).
    pub min_rate_ratio: f64,
}

/// Which part of a service's clients one client node runs (`run --client-share I/N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientShare {
    /// 0-based index of this node among the client nodes.
    pub index: u32,
    /// Number of client nodes.
    pub of: u32,
}

impl ClientShare {
    /// `I/N` with `I < N`.
    pub fn parse(s: &str) -> Result<ClientShare, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: expected INDEX/COUNT, e.g. 0/2"))?;
        let index: u32 = i.trim().parse().map_err(|_| format!("`{s}`: bad index"))?;
        let of: u32 = n.trim().parse().map_err(|_| format!("`{s}`: bad count"))?;
        if of == 0 || index >= of {
            return Err(format!(
                "`{s}`: the index must be below the count (0-based)"
            ));
        }
        Ok(ClientShare { index, of })
    }

    /// This node's part of `total` (the first `total % of` nodes take one more).
    pub fn part(&self, total: u64) -> u64 {
        let base = total / self.of as u64;
        base + u64::from((self.index as u64) < total % self.of as u64)
    }
}

impl Service {
    /// This service as one client node runs it: `client_count` and a `requests` budget split
    /// across the client nodes (the per-client rate stays, so the total target rate is split
    /// in the same proportion), a seed of its own per node (schedules do not repeat), and the
    /// clients pointed at `endpoint_host` (the service node's address) when given.
    pub fn for_client_node(
        &self,
        share: Option<ClientShare>,
        endpoint_host: Option<&str>,
    ) -> Service {
        let mut s = self.clone();
        if let Some(sh) = share {
            s.client_share = Some(sh);
            s.load.clients = (sh.part(self.load.clients as u64) as u32).max(1);
            s.load.requests = self.load.requests.map(|r| sh.part(r).max(1));
            s.load.seed = self.load.seed.wrapping_add(sh.index as u64);
            // A vector database's setup (re)creates its collection and loads the dataset: two
            // client nodes doing that to one collection delete each other's (ChromaDB answers
            // 404 mid-load). Each node gets its own collection, `<collection_name>-<node>`,
            // loaded with the whole dataset, so every node searches the same amount of data.
            if let Workload::Vectordb(v) = &mut s.workload {
                if sh.of > 1 {
                    v.collection_name = format!("{}-{}", v.collection_name, sh.index);
                }
            }
        }
        if let Some(h) = endpoint_host {
            s.endpoint = self.endpoint.with_host(h);
            // A workload URL of its own (HTTP `url` defaulted from `port` to
            // `http://127.0.0.1:PORT/`, S3 `endpoint_url`) names the loopback address the
            // service no longer binds: it moves to the node's address too.
            let moved = |u: &str| super::endpoint::replace_url_host(u, h);
            match &mut s.workload {
                Workload::Http(w) => w.url = moved(&w.url),
                Workload::S3(w) => w.endpoint_url = moved(&w.endpoint_url),
                Workload::Llm(_)
                | Workload::Vectordb(_)
                | Workload::Database(_)
                | Workload::FileStorage(_)
                | Workload::Tensor(_) => {}
            }
            s.service_url = s.service_url.as_deref().map(moved);
        }
        s
    }

    /// The job is heterogeneous: a GPU service with its clients on other nodes. GRES counts
    /// per node, so one homogeneous job would give every client node a GPU it never uses; the
    /// service's component takes the GPU, the clients' component none (`#SBATCH hetjob`,
    /// `srun --het-group=1`). Job arrays of heterogeneous jobs are not supported by SLURM: a
    /// sweep keeps one component (and `validate` warns).
    pub fn heterogeneous(&self) -> bool {
        self.wants_gpu()
            && self.slurm.client_nodes > 0
            && self.sweep.is_none()
            && self.runtime != Runtime::External
    }

    /// `--cpus-per-task` of the job: the recipe's, else [`SHARED_NODE_CPUS`] when the job starts
    /// the service and runs the load generator beside it (SLURM's default of one CPU would make
    /// them share one core, and the measurement would be the generator's), else none.
    pub fn cpus_per_task(&self) -> Option<u32> {
        self.slurm
            .cpus_per_task
            .or(
                (self.runtime != Runtime::External && self.slurm.client_nodes == 0)
                    .then_some(SHARED_NODE_CPUS),
            )
    }

    /// Whether the service needs a GPU (`gres` asks for one): `--nv` for Apptainer.
    pub fn wants_gpu(&self) -> bool {
        self.slurm
            .gres
            .as_deref()
            .is_some_and(|g| g.split(',').any(|g| g.trim_start().starts_with("gpu")))
    }

    /// Every secret this service carries (for redaction and secret files).
    pub fn secrets(&self) -> Vec<(&str, &Secret)> {
        let mut out: Vec<(&str, &Secret)> = Vec::new();
        for e in &self.container.env {
            if let EnvValue::Secret(s) = &e.value {
                out.push((e.name.as_str(), s));
            }
        }
        out.extend(self.workload.secrets());
        out
    }
}

/// Default `--cpus-per-task` of a job that runs a service and its load generator on one node:
/// one core each at least.
pub const SHARED_NODE_CPUS: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Open loop, requests evenly spaced at the target rate.
    Constant,
    /// Open loop, exponential inter-arrival times (a Poisson process) at the target rate.
    Poisson,
    /// Closed loop: each client sends its next request when the previous one returns.
    Closed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Load {
    /// Concurrent clients (`client_count`).
    pub clients: u32,
    pub arrival: Arrival,
    /// Target rate PER CLIENT, requests/s (recipe `requests_per_second`); the total is
    /// [`Load::target_rate_total_per_s`]. 0 with `closed` arrival means unthrottled (as fast as
    /// possible). Serialised as `rate_per_client`: the key in `plan.json` and in the stored
    /// runs' `recipe_json`, which older campaign files already hold.
    #[serde(rename = "rate_per_client")]
    pub target_rate_per_client_per_s: f64,
    /// Measured phase length, seconds (`duration`), after the warmup.
    pub duration_s: f64,
    /// Stop after this many measured requests instead of (or before) the duration.
    pub requests: Option<u64>,
    /// Warmup seconds: requests are recorded but excluded from results.
    pub warmup_s: f64,
    /// RNG seed: the same seed repeats the same schedule and payload choices.
    pub seed: u64,
    /// Stop the run (status failed) when the error rate exceeds this share (0..1).
    pub max_error_rate: Option<f64>,
    /// Per-request timeout, seconds.
    pub timeout_s: f64,
    /// Upper bound on requests in flight for open-loop runs (per service): caps the number of
    /// connections (`clients × connections_per_client`).
    pub max_in_flight: u32,
    /// Open loop: connections (sessions, in-flight slots) each client opens before the run and
    /// keeps for its whole length, as wrk2's `-c`. A request whose time has come waits for a
    /// free one; the wait counts in the corrected latency.
    pub connections_per_client: u32,
    /// Closed loop, for the kinds whose workers own their connections
    /// ([`crate::kinds::Kind::client_threads`]: database, http): the client threads, each a
    /// single-threaded runtime driving its share of the clients (pgbench's `-j`, wrk's `-t`).
    /// `None`: [`Load::client_threads_for`]'s default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_threads: Option<u32>,
    /// The measured window starts at this Unix-epoch instant, ns, instead of `warmup` after
    /// the first request: the common start a multi-node job's batch step hands every client
    /// node (`run --measure-from`), so that the nodes measure together; the warmup lasts until
    /// then (at least `warmup`'s share already elapsed is not required). Never from the recipe.
    #[serde(skip)]
    pub measure_from_ns: Option<i64>,
}

/// Default `connections_per_client`: LLM requests last seconds (many in flight per client);
/// the other kinds answer in micro- to milliseconds.
pub const DEFAULT_CONNECTIONS_PER_CLIENT: u32 = 4;
pub const DEFAULT_CONNECTIONS_PER_CLIENT_LLM: u32 = 64;
/// Largest `connections_per_client`.
pub const MAX_CONNECTIONS_PER_CLIENT: u32 = 4096;
/// Largest `client_threads`.
pub const MAX_CLIENT_THREADS: u32 = 1024;
/// Clients per client thread by default. A thread that serves several clients finds several
/// replies at each wake-up; one per client (or per core) wakes once per request and spends
/// the difference in the kernel, on the service's cores when they share a node.
pub const CLIENTS_PER_CLIENT_THREAD: u32 = 16;

impl Load {
    /// The client threads of a closed loop: `client_threads`, else one per
    /// [`CLIENTS_PER_CLIENT_THREAD`] clients; at most one per client and one per core of
    /// `cores`.
    pub fn client_threads_for(&self, cores: u32) -> u32 {
        let clients = self.clients.max(1);
        match self.client_threads {
            Some(n) => n.clamp(1, clients),
            None => clients
                .div_ceil(CLIENTS_PER_CLIENT_THREAD)
                .clamp(1, cores.max(1)),
        }
    }

    /// Connections an open-loop run opens and keeps: `clients × connections_per_client`,
    /// capped by `max_in_flight`.
    pub fn open_loop_connections(&self) -> u32 {
        (self.clients.max(1) as u64 * self.connections_per_client.max(1) as u64)
            .min(self.max_in_flight.max(1) as u64) as u32
    }
}

impl Load {
    /// The target total rate, requests/s over all clients, or `None` for an unthrottled closed
    /// loop (no target). This is the only place that decides "closed loop means no target":
    /// the engine, the live metrics, the stored run and `validate --explain` all ask here.
    pub fn target_rate_total_per_s(&self) -> Option<f64> {
        match self.arrival {
            Arrival::Closed if self.target_rate_per_client_per_s <= 0.0 => None,
            _ => Some(self.target_rate_per_client_per_s * self.clients as f64),
        }
    }

    /// Whether the load is paced (open loop, or a closed loop with a per-client rate).
    pub fn is_paced(&self) -> bool {
        self.target_rate_total_per_s().is_some()
    }
}

// ---------- SLURM, containers, secrets ----------

#[derive(Debug, Clone, Default, Serialize)]
pub struct SlurmSpec {
    pub partition: Option<String>,
    pub account: Option<String>,
    /// SLURM time limit as given (`[D-]HH:MM:SS`, `MM:SS`, minutes).
    pub time: Option<String>,
    /// The same limit in seconds.
    pub time_limit_s: Option<u64>,
    /// Nodes of the job: 1 + `client_nodes` when clients are spread, else `nodes` as written.
    pub nodes: u32,
    pub ntasks: u32,
    /// `--ntasks-per-node` (recipe `ntasks_per_node`, or `ntasks-per-node` as sbatch spells it).
    pub ntasks_per_node: Option<u32>,
    /// Nodes that run the clients (one runner each, started with `srun`); the service runs on
    /// the job's first node. 0: the clients run in the batch step, on the service's node.
    pub client_nodes: u32,
    /// Partition of the client nodes when the service asks for a GPU (`gres: gpu...`): the job
    /// is then heterogeneous (`#SBATCH hetjob`), the service's component on `partition` with the
    /// GPU, the clients' on this partition (default: the cluster's default) without one.
    pub client_partition: Option<String>,
    pub cpus_per_task: Option<u32>,
    /// `--mem` as sbatch spells it (`16G`, `512M`, `0` = all of a node's memory); without it
    /// the cluster's DefMemPerNode / DefMemPerCPU applies (`doctor` says how much), except that
    /// `submit` raises a started server to its kind's floor when that default is known and
    /// lower (`slurm::memory::mem_raise`).
    pub mem: Option<String>,
    pub qos: Option<String>,
    pub gres: Option<String>,
    pub constraint: Option<String>,
    /// Extra `#SBATCH` options, each like `--mail-type=END`.
    pub extra: Vec<String>,
    /// `module load` lines run before anything else.
    pub modules: Vec<String>,
    /// Seconds before the time limit at which SLURM sends USR1 (`--signal=B:USR1@N`).
    pub signal_grace_s: u32,
}

/// Mebibytes of an sbatch `--mem` value: digits with an optional unit `K`, `M` (the default),
/// `G` or `T` (either case). `None` when it is not such a value or beyond 1 PiB.
pub fn mem_mib(v: &str) -> Option<u64> {
    let (digits, unit) = match v.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_uppercase()),
        _ => (v, 'M'),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let mib = match unit {
        'K' => n.div_ceil(1024),
        'M' => n,
        'G' => n.checked_mul(1024)?,
        'T' => n.checked_mul(1024 * 1024)?,
        _ => return None,
    };
    (mib <= 1 << 30).then_some(mib)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bind {
    pub src: String,
    pub dst: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, Serialize)]
pub enum EnvValue {
    Plain(String),
    Secret(Secret),
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvVar {
    pub name: String,
    pub value: EnvValue,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ContainerSpec {
    pub binds: Vec<Bind>,
    /// `environment` of the recipe; names that look secret are secrets.
    pub env: Vec<EnvVar>,
    /// Extra arguments to the container runtime.
    pub extra_args: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// Give up waiting for the service after this many seconds.
    pub timeout_s: u32,
    pub interval_s: f64,
}

/// A sweep expands one service into a SLURM job array, one task per value. A sweep over
/// several parameters (`param` = [`SweepParam::Grid`]) runs their cartesian product: `axes`
/// holds each parameter's values and `values[i]` the label of task i,
/// `client_count=4,requests_per_second=10` (first axis slowest).
#[derive(Debug, Clone, Serialize)]
pub struct Sweep {
    pub param: SweepParam,
    pub values: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub axes: Vec<(SweepParam, Vec<String>)>,
}

impl Sweep {
    /// The `(parameter, value)` pairs of task `index` (one pair for a one-parameter sweep).
    pub fn assignments(&self, index: usize) -> Option<Vec<(SweepParam, String)>> {
        let label = self.values.get(index)?;
        if self.param != SweepParam::Grid {
            return Some(vec![(self.param, label.clone())]);
        }
        label
            .split(',')
            .map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((SweepParam::parse(k)?, v.to_string()))
            })
            .collect()
    }

    /// The cartesian product's labels (first axis slowest).
    pub fn grid_labels(axes: &[(SweepParam, Vec<String>)]) -> Vec<String> {
        let mut labels = vec![String::new()];
        for (p, vals) in axes {
            let mut next = Vec::with_capacity(labels.len() * vals.len());
            for l in &labels {
                for v in vals {
                    let sep = if l.is_empty() { "" } else { "," };
                    next.push(format!("{l}{sep}{}={v}", p.as_str()));
                }
            }
            labels = next;
        }
        labels
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepParam {
    ClientCount,
    RequestsPerSecond,
    Model,
    BatchSize,
    /// Several parameters at once (see [`Sweep`]).
    Grid,
}

impl SweepParam {
    pub fn parse(s: &str) -> Option<SweepParam> {
        Some(match s {
            "client_count" => SweepParam::ClientCount,
            "requests_per_second" => SweepParam::RequestsPerSecond,
            "model" => SweepParam::Model,
            "batch_size" => SweepParam::BatchSize,
            "grid" => SweepParam::Grid,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SweepParam::Grid => "grid",
            SweepParam::ClientCount => "client_count",
            SweepParam::RequestsPerSecond => "requests_per_second",
            SweepParam::Model => "model",
            SweepParam::BatchSize => "batch_size",
        }
    }
}

impl Plan {
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}
