//! One service: its name and kind, the load, the endpoint (resolved here, once), the sweep,
//! and its kind's workload (decoded by the kind's module).

use super::consistency;
use super::container::{decode_container, decode_slurm};
use super::fields::*;
use super::{check_url, decode_workload, runtime_field, KindCx};
use crate::kinds::{Check, COMMON_SERVICE_KEYS};
use crate::recipe::plan::*;
use crate::recipe::yaml::Node;

/// Counts blocking diagnostics: a part that added one makes the service `None`.
fn blocking(cx: &Ctx) -> usize {
    cx.diags.iter().filter(|d| d.blocks_recipe()).count()
}

#[allow(clippy::too_many_arguments)]
pub(super) fn decode_service(
    cx: &mut Ctx,
    node: &Node,
    path: &str,
    default_runtime: Option<Runtime>,
    default_seed: Option<u64>,
    default_slurm: Option<&Node>,
    index: usize,
) -> Option<Service> {
    if node.as_map().is_none() {
        cx.error(
            node.pos,
            path,
            format!(
                "each service must be a mapping, found a {}",
                node.type_name()
            ),
        );
        return None;
    }
    let f = Fields::new(Some(node), path);
    let errors_before = blocking(cx);

    let name = decode_name(cx, node, &f);
    let kind = decode_kind(cx, node, &f);
    check_service_keys(cx, node, path, name.as_deref(), kind);
    let started = decode_started(cx, node, &f, default_runtime);
    let runtime = started.runtime;
    let port = f.port(cx, "port");
    let service_url = f.nonempty_string(cx, "service_url");
    if let (Some(u), Some(n)) = (&service_url, f.get("service_url")) {
        let schemes = kind.map_or(&["http", "https"][..], |k| k.spec().url_schemes());
        check_url(cx, n.pos, &f.p("service_url"), u, schemes);
    }
    let is_llm = kind.is_some_and(|k| k.is_llm());
    let load = decode_load(cx, node, &f, is_llm, default_seed, index);
    let slurm = decode_slurm(cx, f.get("slurm"), default_slurm, &f.p("slurm"));
    check_client_nodes(cx, node, &f, &slurm, load.clients);
    let mut container = decode_container(cx, &f);
    let readiness = Readiness {
        timeout_s: f
            .u32_range(cx, "readiness_timeout", 1, 86_400)
            .unwrap_or(if is_llm { 900 } else { 180 }),
        interval_s: 1.0,
    };
    check_time_limit(cx, &f, &slurm, &load, readiness.timeout_s);
    check_shared_cpu(cx, &f, &slurm, runtime);
    let depends_on = f.string_list(cx, "depends_on");
    let starts_service = matches!(
        runtime,
        Runtime::Apptainer | Runtime::Podman | Runtime::Host
    );

    // Only the kinds that have a `host` key (vectordb, database) read it.
    let host = match kind {
        Some(k) if k.spec().recipe_keys().contains(&"host") => f.nonempty_string(cx, "host"),
        Some(_) | None => None,
    };
    let workload = kind.and_then(|kind| {
        let k = KindCx {
            f: &f,
            kind,
            starts_service,
            service_url: service_url.as_deref(),
            port,
        };
        decode_workload(cx, &k)
    });
    let sweep = decode_service_sweep(cx, &f, &slurm, kind);
    let capacity_search = f.get("capacity_search").and_then(|n| {
        super::capacity::decode_capacity_search(cx, n, &f.p("capacity_search"), is_llm)
    });

    let errors_after = blocking(cx);
    if errors_after > errors_before {
        return None;
    }
    let compare_thresholds = decode_compare_thresholds(cx, &f);
    let compare_min_change = decode_compare_min_change(cx, &f);
    let mut workload = workload?;
    let kind = kind?;
    run_checks(
        cx,
        &f,
        kind,
        runtime,
        service_url.as_deref(),
        &mut container,
        &mut workload,
    );
    if blocking(cx) > errors_after {
        return None;
    }
    if starts_service {
        add_ambient_secrets(&mut container, kind);
    }
    promote_secret_lookalikes(&mut container, &workload);
    check_client_threads(cx, &f, kind, &load);
    let endpoint = Endpoint::resolve(kind, &workload, port, service_url.as_deref(), host);
    if starts_service {
        check_ephemeral_port(cx, &f, endpoint.port);
    }
    Some(Service {
        name: name?,
        kind,
        runtime,
        runtime_explicit: started.explicit,
        container_image: started.container_image,
        start_command: started.start_command,
        service_url,
        endpoint,
        load,
        workload,
        slurm,
        container,
        readiness,
        sweep,
        depends_on,
        compare_thresholds,
        compare_min_change,
        client_share: None,
        capacity_search,
    })
}

/// `service_name`: present and usable as a file and job name.
fn decode_name(cx: &mut Ctx, node: &Node, f: &Fields) -> Option<String> {
    let Some(n) = f.get("service_name") else {
        cx.error(
            node.pos,
            &f.p("service_name"),
            "missing required key `service_name`",
        );
        return None;
    };
    match f.string(cx, "service_name") {
        Some(v) if valid_service_name(&v) => Some(v),
        Some(v) => {
            cx.error_help(
                n.pos,
                &f.p("service_name"),
                format!("invalid service_name `{}`", v.escape_debug()),
                "use 1-64 characters from A-Z a-z 0-9 . _ - starting with a letter or digit (it names files and SLURM jobs)".into(),
            );
            None
        }
        None => None,
    }
}

/// `service_type`: one of the registry's spellings.
fn decode_kind(cx: &mut Ctx, node: &Node, f: &Fields) -> Option<ServiceKind> {
    if f.get("service_type").is_none() {
        cx.error(
            node.pos,
            &f.p("service_type"),
            "missing required key `service_type`",
        );
        return None;
    }
    f.enum_of(cx, "service_type", &crate::kinds::service_type_names())
}

/// Unknown keys: the common ones and the kind's (any kind's when the kind is unknown).
fn check_service_keys(
    cx: &mut Ctx,
    node: &Node,
    path: &str,
    name: Option<&str>,
    kind: Option<ServiceKind>,
) {
    let ctx_name = match kind {
        Some(k) => format!("service `{}` (service_type {k})", name.unwrap_or("?")),
        None => "a service".to_string(),
    };
    let mut allowed: Vec<&str> = COMMON_SERVICE_KEYS.to_vec();
    match kind {
        Some(k) => allowed.extend_from_slice(k.spec().recipe_keys()),
        None => {
            // Without a known type, accept any type's keys rather than pile up noise.
            for k in crate::kinds::KINDS {
                allowed.extend_from_slice(k.recipe_keys());
            }
        }
    }
    cx.check_keys(node, path, &allowed, &ctx_name);
}

/// How the service is started: its runtime and what the runtime needs.
struct Started {
    runtime: Runtime,
    /// The recipe names the runtime (`runtime:` of the service or of `global`).
    explicit: bool,
    container_image: Option<String>,
    start_command: Vec<String>,
}

fn decode_started(
    cx: &mut Ctx,
    node: &Node,
    f: &Fields,
    default_runtime: Option<Runtime>,
) -> Started {
    let container_image = f.nonempty_string(cx, "container_image");
    let start_command = f.string_list(cx, "start_command");
    let explicit_runtime = runtime_field(cx, f).or(default_runtime);
    let runtime = match explicit_runtime {
        Some(r) => r,
        None if container_image.is_some() => Runtime::Apptainer,
        None if !start_command.is_empty() => Runtime::Host,
        None => Runtime::External,
    };
    match runtime {
        Runtime::Apptainer | Runtime::Podman if container_image.is_none() => cx.error(
            node.pos,
            &f.p("container_image"),
            format!("runtime {runtime:?} needs `container_image`").to_lowercase(),
        ),
        Runtime::Host if start_command.is_empty() => cx.error_help(
            node.pos,
            &f.p("start_command"),
            "runtime host needs `start_command` (the native server's argv)",
            "or use `runtime: external` for a service that is already running".into(),
        ),
        Runtime::Apptainer | Runtime::Podman | Runtime::Host | Runtime::External => {}
    }
    Started {
        runtime,
        explicit: explicit_runtime.is_some(),
        container_image,
        start_command,
    }
}

/// The load: clients, arrival, rate, duration and the limits of one run.
fn decode_load(
    cx: &mut Ctx,
    node: &Node,
    f: &Fields,
    is_llm: bool,
    default_seed: Option<u64>,
    index: usize,
) -> Load {
    let clients = f.u32_range(cx, "client_count", 1, 100_000).unwrap_or(1);
    let (arrival, rate) = decode_arrival(cx, node, f, clients);
    let duration_s = f
        .duration_s(cx, "duration", range::MAX_DURATION_S)
        .unwrap_or(60.0);
    if f.get("duration").is_some() && duration_s == 0.0 {
        cx.error(
            f.get("duration").unwrap().pos,
            &f.p("duration"),
            "`duration` must be greater than 0",
        );
    }
    let requests = f.u64_range(cx, "requests", 0, range::MAX_COUNT);
    if requests == Some(0) {
        cx.error(
            f.get("requests").unwrap().pos,
            &f.p("requests"),
            "`requests` must be at least 1",
        );
    }
    let warmup_s = f
        .duration_s(cx, "warmup", range::MAX_DURATION_S)
        .unwrap_or(0.0);
    let max_error_rate = f.nonneg_f64(cx, "max_error_rate");
    if let Some(r) = max_error_rate {
        if r > 1.0 {
            cx.error(
                f.get("max_error_rate").unwrap().pos,
                &f.p("max_error_rate"),
                "`max_error_rate` is a share between 0 and 1",
            );
        }
    }
    let timeout_s = f
        .duration_s(cx, "timeout", range::MAX_TIMEOUT_S)
        .unwrap_or(if is_llm { 300.0 } else { 30.0 });
    if f.get("timeout").is_some() && timeout_s == 0.0 {
        cx.error(
            f.get("timeout").unwrap().pos,
            &f.p("timeout"),
            "`timeout` must be greater than 0",
        );
    }
    let max_in_flight = f
        .u32_range(cx, "max_in_flight", 1, 1_000_000)
        .unwrap_or(1024.max(clients));
    let connections_per_client = f
        .u32_range(
            cx,
            "connections_per_client",
            1,
            crate::recipe::plan::MAX_CONNECTIONS_PER_CLIENT,
        )
        .unwrap_or(if is_llm {
            crate::recipe::plan::DEFAULT_CONNECTIONS_PER_CLIENT_LLM
        } else {
            crate::recipe::plan::DEFAULT_CONNECTIONS_PER_CLIENT
        });
    let client_threads = f.u32_range(
        cx,
        "client_threads",
        1,
        crate::recipe::plan::MAX_CLIENT_THREADS,
    );
    Load {
        clients,
        arrival,
        target_rate_per_client_per_s: rate,
        duration_s,
        requests,
        warmup_s,
        seed: f
            .u64(cx, "seed")
            .or(default_seed)
            .unwrap_or(0x5eed_0000 + index as u64),
        max_error_rate,
        timeout_s,
        max_in_flight,
        connections_per_client,
        client_threads,
        measure_from_ns: None,
    }
}

/// `requests_per_second` and `arrival`: the per-client rate and how requests arrive.
fn decode_arrival(cx: &mut Ctx, node: &Node, f: &Fields, clients: u32) -> (Arrival, f64) {
    let rate = f
        .f64_range(
            cx,
            "requests_per_second",
            0.0,
            range::MAX_RATE_PER_CLIENT_PER_S,
        )
        .unwrap_or(10.0);
    let rate_pos = f
        .get("requests_per_second")
        .map(|n| n.pos)
        .unwrap_or(node.pos);
    if rate * clients as f64 > range::MAX_RATE_TOTAL_PER_S {
        cx.error_help(
            rate_pos,
            &f.p("requests_per_second"),
            format!(
                "client_count × requests_per_second is {} requests/s, above the {} one runner can be asked for",
                rate * clients as f64,
                range::MAX_RATE_TOTAL_PER_S
            ),
            "lower the rate, or use `arrival: closed` (requests_per_second: 0) to send as fast as the service answers".into(),
        );
    }
    let arrival_given = f.enum_of(
        cx,
        "arrival",
        &[
            ("constant", Arrival::Constant),
            ("poisson", Arrival::Poisson),
            ("closed", Arrival::Closed),
        ],
    );
    let arrival = match arrival_given {
        Some(a) => a,
        None if rate == 0.0 => Arrival::Closed,
        None => Arrival::Constant,
    };
    if rate == 0.0 && matches!(arrival, Arrival::Constant | Arrival::Poisson) {
        cx.error_help(
            rate_pos,
            &f.p("requests_per_second"),
            "an open-loop arrival needs `requests_per_second` > 0",
            "requests_per_second: 0 means closed loop, unthrottled (`arrival: closed`)".into(),
        );
    }
    (arrival, rate)
}

/// Each client node runs at least one client: fewer clients than nodes would inflate the load
/// the recipe asks for.
fn check_client_nodes(cx: &mut Ctx, node: &Node, f: &Fields, slurm: &SlurmSpec, clients: u32) {
    if slurm.client_nodes <= clients {
        return;
    }
    let explicit = f.get("slurm").and_then(|s| s.get("client_nodes"));
    let from_nodes = f
        .get("slurm")
        .and_then(|s| s.get("nodes"))
        .filter(|_| explicit.is_none());
    let pos = explicit
        .or(from_nodes)
        .or(f.get("client_count"))
        .map_or(node.pos, |n| n.pos);
    if from_nodes.is_some() || explicit.is_none() {
        // `nodes: N` without `client_nodes`: clients on the other N-1 nodes.
        cx.error_help(
            pos,
            &f.p("slurm.nodes"),
            format!(
                "`nodes: {}` runs the clients on the other {} nodes, more than `client_count: {clients}` (each client node runs at least one client)",
                slurm.nodes, slurm.client_nodes
            ),
            format!(
                "raise `client_count` to at least {}, or write `nodes: 1` to run the clients beside the service",
                slurm.client_nodes
            ),
        );
    } else {
        cx.error_help(
            pos,
            &f.p("slurm.client_nodes"),
            format!(
                "`client_nodes: {}` is more than `client_count: {clients}` (each client node runs at least one client)",
                slurm.client_nodes
            ),
            format!("raise `client_count` to at least {} or lower `client_nodes`", slurm.client_nodes),
        );
    }
}

/// One CPU for a service and its load generator: the measurement is the generator's.
fn check_shared_cpu(cx: &mut Ctx, f: &Fields, slurm: &SlurmSpec, runtime: Runtime) {
    if slurm.cpus_per_task == Some(1)
        && slurm.client_nodes == 0
        && matches!(
            runtime,
            Runtime::Apptainer | Runtime::Podman | Runtime::Host
        )
    {
        let n = f
            .get("slurm")
            .and_then(|s| s.get("cpus_per_task").or(s.get("cpus-per-task")));
        cx.warn(
            n.map_or(f.pos(), |n| n.pos),
            &f.p("slurm.cpus_per_task"),
            "the service and the load generator share this job's one CPU: the results measure their contention",
            Some(format!("leave `cpus_per_task` out (default {SHARED_NODE_CPUS} for a job that runs both), raise it, or run the clients on other nodes (`client_nodes`)")),
        );
    }
}

/// `sweep`, with the warning for a GPU job array whose client nodes would get GPUs too.
fn decode_service_sweep(
    cx: &mut Ctx,
    f: &Fields,
    slurm: &SlurmSpec,
    kind: Option<ServiceKind>,
) -> Option<Sweep> {
    let sweep = f
        .get("sweep")
        .and_then(|n| decode_sweep(cx, n, &f.p("sweep"), kind));
    if sweep.is_some() && slurm.client_nodes > 0 {
        let gpu = slurm
            .gres
            .as_deref()
            .is_some_and(|g| g.split(',').any(|g| g.trim_start().starts_with("gpu")));
        if gpu {
            cx.warn(
                f.get("sweep").map_or(f.pos(), |n| n.pos),
                &f.p("sweep"),
                "a sweep is a job array, and SLURM has no arrays of heterogeneous jobs: with `gres` and client nodes every node of each task gets the GPUs (GRES count per node), the client nodes' stay idle",
                Some("submit one service per sweep value to give only the service its GPU, or run the clients beside the service (no client_nodes)".into()),
            );
        }
    }
    sweep
}

/// `client_threads` where nothing reads it: a kind whose clients run on the shared runtime
/// ([`crate::kinds::Kind::client_threads`]), or an open loop. A warning.
fn check_client_threads(cx: &mut Ctx, f: &Fields, kind: ServiceKind, load: &Load) {
    if load.client_threads.is_none() {
        return;
    }
    let why = if !kind.spec().client_threads() {
        format!("`{}` clients run on the shared runtime", kind.as_str())
    } else if load.arrival != Arrival::Closed {
        "an open loop's requests run on the shared runtime".to_string()
    } else {
        return;
    };
    let kinds: Vec<&str> = ServiceKind::ALL
        .iter()
        .filter(|k| k.spec().client_threads())
        .map(|k| k.as_str())
        .collect();
    cx.warn(
        f.get("client_threads").map_or(f.pos(), |n| n.pos),
        &f.p("client_threads"),
        format!(
            "`client_threads` is ignored: {why} (it sets the threads of a closed loop of {})",
            kinds.join(" or ")
        ),
        None,
    );
}

/// Linux's default ephemeral port range (`net.ipv4.ip_local_port_range`): the local ports the
/// kernel hands to outgoing connections.
const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 32_768..=60_999;

/// A service the job starts on a port in the ephemeral range: any outgoing connection on the
/// node (a runner's, slurmd's, another job's) can hold that port, and the service then fails to
/// bind ("Address already in use") now and then. A warning; the recipe stays valid.
fn check_ephemeral_port(cx: &mut Ctx, f: &Fields, port: Option<u16>) {
    let Some(port) = port.filter(|p| EPHEMERAL_PORTS.contains(p)) else {
        return;
    };
    let key = if f.get("port").is_some() {
        "port"
    } else {
        "service_url"
    };
    cx.warn(
        f.get(key).map_or(f.pos(), |n| n.pos),
        &f.p(key),
        format!(
            "port {port} is in Linux's default ephemeral range ({}–{}): an outgoing connection on the node can hold it, and the service then fails to start with \"Address already in use\" now and then",
            EPHEMERAL_PORTS.start(),
            EPHEMERAL_PORTS.end()
        ),
        Some("pick a port below 32768 (check `sysctl net.ipv4.ip_local_port_range` on the nodes)".into()),
    );
}

/// The kind's checks across keys ([`crate::kinds::Kind::checks`]).
fn run_checks(
    cx: &mut Ctx,
    f: &Fields,
    kind: ServiceKind,
    runtime: Runtime,
    service_url: Option<&str>,
    container: &mut ContainerSpec,
    workload: &mut Workload,
) {
    for check in kind.spec().checks() {
        match check {
            Check::ReconcileDatabase => {
                consistency::reconcile_database(cx, f, runtime, service_url, container, workload)
            }
            Check::TritonRepository => {
                consistency::check_triton(cx, f, runtime, container, workload)
            }
            Check::FaissIndex => consistency::check_faiss(cx, f, workload),
            Check::OllamaModelStore => {
                consistency::check_ollama_store(cx, f, runtime, container, workload)
            }
        }
    }
}

/// The kind's ambient secrets ([`crate::kinds::Kind::ambient_secrets`], e.g. `HF_TOKEN`) that
/// are set where the recipe is read and not in its `environment`: secrets of the container's
/// environment, whose value the campaign's 0600 secrets file carries to the job (never the
/// script, and redacted wherever the plan is shown).
fn add_ambient_secrets(container: &mut ContainerSpec, kind: ServiceKind) {
    for a in kind.spec().ambient_secrets() {
        if container.env.iter().any(|e| e.name == a.name) {
            continue;
        }
        if let Some(v) = std::env::var(a.name).ok().filter(|v| !v.is_empty()) {
            container.env.push(EnvVar {
                name: a.name.to_string(),
                value: EnvValue::Secret(Secret::Plain(v)),
            });
        }
    }
}

/// `compare_min_change: {METRIC: AMOUNT}` (absolute floors as on `compare --min-change`).
pub(super) fn decode_compare_min_change(
    cx: &mut Ctx,
    f: &Fields,
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let Some(n) = f.get("compare_min_change") else {
        return out;
    };
    let path = f.p("compare_min_change");
    let Some(m) = n.as_map() else {
        cx.error(
            n.pos,
            &path,
            "`compare_min_change` must be a mapping of METRIC: AMOUNT, e.g. `latency_p50_ms: 0.1ms`",
        );
        return out;
    };
    for (k, v) in m {
        let metric = k.as_scalar().unwrap_or_default();
        let amount = v.as_scalar().unwrap_or_default();
        match crate::recipe::threshold::parse_floor(&format!("{metric}={amount}")) {
            Ok((name, _)) => {
                out.insert(name.to_string(), amount.to_string());
            }
            Err(e) => cx.error(v.pos, &format!("{path}.{metric}"), e.to_string()),
        }
    }
    out
}

/// `compare_thresholds: {METRIC: LIMIT}` (limits as on `compare --threshold`).
pub(super) fn decode_compare_thresholds(
    cx: &mut Ctx,
    f: &Fields,
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let Some(n) = f.get("compare_thresholds") else {
        return out;
    };
    let path = f.p("compare_thresholds");
    let Some(m) = n.as_map() else {
        cx.error(
            n.pos,
            &path,
            "`compare_thresholds` must be a mapping of METRIC: LIMIT, e.g. `latency_p99_ms: 10%`",
        );
        return out;
    };
    for (k, v) in m {
        let metric = k.as_scalar().unwrap_or_default();
        let limit = v.as_scalar().unwrap_or_default();
        match crate::recipe::threshold::parse_threshold(&format!("{metric}={limit}")) {
            Ok((name, _)) => {
                out.insert(name.to_string(), limit.to_string());
            }
            Err(e) => cx.error(v.pos, &format!("{path}.{metric}"), e.to_string()),
        }
    }
    out
}

pub(super) fn decode_sweep(
    cx: &mut Ctx,
    n: &Node,
    path: &str,
    kind: Option<ServiceKind>,
) -> Option<Sweep> {
    let keys = ["client_count", "requests_per_second", "model", "batch_size"];
    cx.check_keys(n, path, &keys, "`sweep`");
    let Some(m) = n.as_map() else {
        cx.error(
            n.pos,
            path,
            "`sweep` must be a mapping with one parameter: a list of values",
        );
        return None;
    };
    if m.is_empty() || m.len() > 3 {
        cx.error(
            n.pos,
            path,
            "`sweep` takes one to three parameters (several run their cartesian product as one SLURM job array)",
        );
        return None;
    }
    let mut axes = Vec::new();
    for (k, v) in m {
        let Some(param) = k.as_scalar().and_then(SweepParam::parse) else {
            continue;
        };
        if param == SweepParam::Grid {
            cx.error(k.pos, path, "unknown sweep parameter `grid`");
            continue;
        }
        if let Some(values) = decode_sweep_axis(cx, k, v, path, param, kind) {
            axes.push((param, values));
        }
    }
    if axes.len() != m.len() {
        return None;
    }
    if axes.len() == 1 {
        let (param, values) = axes.pop().expect("one axis");
        return Some(Sweep {
            param,
            values,
            axes: Vec::new(),
        });
    }
    let tasks: usize = axes.iter().map(|(_, v)| v.len()).product();
    if tasks > 1000 {
        cx.error(
            n.pos,
            path,
            format!(
                "the sweep's cartesian product has {tasks} tasks ({}); at most 1000 (SLURM's default MaxArraySize is 1001)",
                axes.iter()
                    .map(|(p, v)| format!("{} {}", v.len(), p.as_str()))
                    .collect::<Vec<_>>()
                    .join(" × ")
            ),
        );
        return None;
    }
    Some(Sweep {
        param: SweepParam::Grid,
        values: Sweep::grid_labels(&axes),
        axes,
    })
}

fn decode_sweep_axis(
    cx: &mut Ctx,
    k: &Node,
    v: &Node,
    path: &str,
    param: SweepParam,
    kind: Option<ServiceKind>,
) -> Option<Vec<String>> {
    if param == SweepParam::Model && !kind.is_some_and(|k| k.is_llm()) {
        cx.error(k.pos, path, "a `model` sweep needs an LLM service");
    }
    let p = format!("{path}.{}", param.as_str());
    let Some(items) = v.as_seq() else {
        cx.error(v.pos, &p, "sweep values must be a list");
        return None;
    };
    if items.is_empty() || items.len() > 1000 {
        cx.error(
            v.pos,
            &p,
            "a sweep needs 1 to 1000 values (SLURM's default MaxArraySize is 1001)",
        );
        return None;
    }
    let mut values = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let s = it.as_scalar().unwrap_or_default().to_string();
        let ok = match param {
            SweepParam::ClientCount | SweepParam::BatchSize => {
                s.parse::<u32>().is_ok_and(|v| v >= 1)
            }
            SweepParam::RequestsPerSecond => s.parse::<f64>().is_ok_and(|v| {
                (0.0..=crate::recipe::decode::fields::range::MAX_RATE_PER_CLIENT_PER_S).contains(&v)
            }),
            // `,` and `=` separate a grid task's label.
            SweepParam::Model => !s.is_empty() && !s.contains([',', '=']),
            SweepParam::Grid => false,
        };
        if !ok {
            cx.error(
                it.pos,
                &format!("{p}[{i}]"),
                format!("invalid sweep value `{}`", s.escape_debug()),
            );
        }
        values.push(s);
    }
    Some(values)
}

/// An environment value equal to one of the service's plain secrets is a secret too
/// (e.g. `MINIO_ROOT_USER: minioadmin` when `secret_key: minioadmin`): nothing leaks by
/// coincidence into scripts, logs or reports.
pub(super) fn promote_secret_lookalikes(container: &mut ContainerSpec, workload: &Workload) {
    let mut values: Vec<String> = Vec::new();
    for (_, s) in workload.secrets() {
        if let Secret::Plain(v) = s {
            values.push(v.clone());
        }
    }
    for e in &container.env {
        if let EnvValue::Secret(Secret::Plain(v)) = &e.value {
            values.push(v.clone());
        }
    }
    for e in &mut container.env {
        if let EnvValue::Plain(v) = &e.value {
            if !v.is_empty() && values.contains(v) {
                e.value = EnvValue::Secret(Secret::Plain(v.clone()));
            }
        }
    }
}

/// The job's time limit against what one job (one array task) has to do: readiness, warmup
/// and the measured duration, with `signal_grace` before the limit where the run is stopped.
/// Both are warnings with the time that fits: a limit that cannot hold warmup + duration cuts
/// every run short (unless a `requests` budget ends it first), one that leaves less than the
/// readiness budget on top may.
fn check_time_limit(cx: &mut Ctx, f: &Fields, slurm: &SlurmSpec, load: &Load, readiness_s: u32) {
    let Some(limit_s) = slurm.time_limit_s else {
        return;
    };
    let pos = f
        .get("slurm")
        .and_then(|s| s.get("time"))
        .map_or(f.pos(), |n| n.pos);
    let usable_s = limit_s.saturating_sub(u64::from(slurm.signal_grace_s)) as f64;
    let measured_s = load.warmup_s + load.duration_s;
    let with_ready_s = measured_s + f64::from(readiness_s);
    let path = f.p("slurm.time");
    if usable_s < measured_s {
        let msg = format!(
            "time limit {limit_s} s leaves {usable_s:.0} s before the stop signal (signal_grace {} s), less than warmup + duration ({measured_s:.0} s)",
            slurm.signal_grace_s
        );
        let help = format!(
            "raise `time` to at least {} s (readiness {readiness_s} s + warmup + duration + signal_grace), or shorten `duration`",
            (with_ready_s + f64::from(slurm.signal_grace_s)).ceil()
        );
        // A warning, not an error: a limit shorter than the run is also how a run is capped
        // on purpose (the signal stops it and keeps a partial run).
        let what = if load.requests.is_some() {
            "the run ends at the stop signal unless its `requests` budget is reached first"
        } else {
            "every run will be cut short at the stop signal (kept as partial)"
        };
        cx.warn(pos, &path, format!("{msg}: {what}"), Some(help));
    } else if usable_s < with_ready_s {
        cx.warn(
            pos,
            &path,
            format!(
                "time limit {limit_s} s may not hold readiness ({readiness_s} s budget) + warmup + duration ({measured_s:.0} s) + signal_grace ({} s)",
                slurm.signal_grace_s
            ),
            Some(format!(
                "raise `time` to {} s, or lower `readiness_timeout` if the service starts faster",
                (with_ready_s + f64::from(slurm.signal_grace_s)).ceil()
            )),
        );
    }
}
