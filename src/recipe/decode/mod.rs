//! Raw spanned YAML → validated [`Plan`], collecting every problem with its location.

use super::diag::{did_you_mean, Severity};
use super::plan::*;
use super::yaml::{Node, Pos};
use crate::compat::CompatNames;
use crate::kinds::Decoder;
use std::path::PathBuf;

pub const TOP_KEYS: &[&str] = &["benchmark", "global", "monitoring", "services"];
/// Keys of the optional top-level `monitoring` section.
pub const MONITORING_KEYS: &[&str] = &["compat_metrics", "expect_stress"];
pub const BENCHMARK_KEYS: &[&str] = &["name", "description", "duration"];
pub const GLOBAL_KEYS: &[&str] = &[
    "log_level",
    "metrics_db",
    "reports_dir",
    "logs_dir",
    "pushgateway_url",
    "push_interval",
    "runtime",
    "seed",
    "slurm",
];
pub const SLURM_KEYS: &[&str] = &[
    "partition",
    "account",
    "time",
    "nodes",
    "ntasks",
    "ntasks_per_node",
    "ntasks-per-node",
    "client_nodes",
    "client_partition",
    "cpus_per_task",
    "cpus-per-task",
    "mem",
    "qos",
    "gres",
    "constraint",
    "extra",
    "modules",
    "signal_grace",
];

pub use crate::kinds::{
    COMMON_SERVICE_KEYS, DATABASE_KEYS, FILE_KEYS, HTTP_KEYS, LLM_KEYS, S3_KEYS, VECTORDB_KEYS,
};
pub use consistency::{bind_covers, triton_model_repository};
pub use fields::{is_env_name, looks_secret, valid_service_name, Ctx};

/// `NAME` when `v` is exactly `${NAME}`.
pub fn env_ref_name(v: &str) -> Option<&str> {
    fields::env_ref(v)
}

mod capacity;
mod consistency;
mod container;
mod database;
mod fields;
mod file_storage;
mod http;
mod llm;
mod s3;
mod service;
mod tensor;
mod vector;

use fields::Fields;
use service::decode_service;

/// What a kind's decoder gets besides the diagnostics.
pub(super) struct KindCx<'a, 'n> {
    /// The service's mapping.
    pub f: &'a Fields<'n>,
    pub kind: ServiceKind,
    /// The batch script starts the service (so secrets may be generated).
    pub starts_service: bool,
    /// `service_url` as written.
    pub service_url: Option<&'a str>,
    /// `port` as written.
    pub port: Option<u16>,
}

/// The workload of a service of `k.kind`: the decoder its entry in [`crate::kinds`] names.
pub(super) fn decode_workload(cx: &mut Ctx, k: &KindCx) -> Option<Workload> {
    match k.kind.spec().decoder() {
        Decoder::LlmOrTensor if tensor::wanted(k.f) => tensor::decode(cx, k),
        Decoder::Llm | Decoder::LlmOrTensor => llm::decode(cx, k),
        Decoder::Vector => vector::decode(cx, k),
        Decoder::Database => database::decode(cx, k),
        Decoder::S3 => s3::decode(cx, k),
        Decoder::FileStorage => file_storage::decode(cx, k),
        Decoder::Http => http::decode(cx, k),
    }
}

/// Decode the whole document.
pub fn decode(
    root: &Node,
    source_path: PathBuf,
    source_sha256: String,
    cx: &mut Ctx,
) -> Option<Plan> {
    if root.is_null() {
        cx.error(
            Pos { line: 1, col: 1 },
            "",
            "the recipe is empty; expected `benchmark`, `global` and `services`",
        );
        return None;
    }
    if root.as_map().is_none() {
        cx.error(
            root.pos,
            "",
            format!(
                "a recipe is a mapping with `benchmark`, `global` and `services`, found a {}",
                root.type_name()
            ),
        );
        return None;
    }
    cx.check_keys(root, "", TOP_KEYS, "the recipe's top level");
    let top = Fields::new(Some(root), "");

    let benchmark = decode_benchmark(cx, &top, &source_path);
    let global_node = top.get("global");
    if let Some(g) = global_node {
        if g.as_map().is_none() {
            cx.error(g.pos, "global", "`global` must be a mapping");
        }
        cx.check_keys(g, "global", GLOBAL_KEYS, "`global`");
    }
    let gf = Fields::new(global_node, "global");
    let global = decode_global(cx, &gf);
    let monitoring = monitoring_section(cx, top.get("monitoring"));
    let defaults = ServiceDefaults {
        runtime: runtime_field(cx, &gf),
        seed: gf.u64(cx, "seed"),
        slurm: gf.get("slurm"),
    };
    if let Some(s) = defaults.slurm {
        cx.check_keys(s, "global.slurm", SLURM_KEYS, "`slurm`");
    }
    let services = match top.get("services") {
        None => {
            cx.error(root.pos, "services", "missing required key `services`");
            Vec::new()
        }
        Some(n) => decode_services(cx, n, &defaults),
    };
    if has_cycle(&services) {
        cx.error(root.pos, "services", "depends_on forms a cycle");
    }
    if cx.diags.iter().any(|d| d.blocks_recipe()) {
        return None;
    }
    Some(Plan {
        source_path,
        source_sha256,
        benchmark,
        global,
        monitoring,
        services,
    })
}

/// What `global` gives every service that does not say otherwise.
struct ServiceDefaults<'n> {
    runtime: Option<Runtime>,
    seed: Option<u64>,
    slurm: Option<&'n Node>,
}

/// The `benchmark` section (its name defaults to the recipe file's stem).
fn decode_benchmark(cx: &mut Ctx, top: &Fields, source_path: &std::path::Path) -> Benchmark {
    let stem = source_path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "benchmark".into());
    let bench_node = top.get("benchmark");
    if let Some(b) = bench_node {
        if b.as_map().is_none() {
            cx.error(b.pos, "benchmark", "`benchmark` must be a mapping");
        }
        cx.check_keys(b, "benchmark", BENCHMARK_KEYS, "`benchmark`");
    }
    let bf = Fields::new(bench_node, "benchmark");
    Benchmark {
        name: bf.nonempty_string(cx, "name").unwrap_or(stem),
        description: bf.string(cx, "description").unwrap_or_default(),
        duration_s: bf.duration_s(cx, "duration", fields::range::MAX_DURATION_S),
    }
}

/// The `global` section's own settings (its service defaults are read by [`decode`]).
fn decode_global(cx: &mut Ctx, gf: &Fields) -> Global {
    let log_level = gf
        .enum_of(
            cx,
            "log_level",
            &[
                ("DEBUG", LogLevel::Debug),
                ("INFO", LogLevel::Info),
                ("WARNING", LogLevel::Warning),
                ("WARN", LogLevel::Warning),
                ("ERROR", LogLevel::Error),
            ],
        )
        .unwrap_or(LogLevel::Info);
    let pushgateway_url = gf.string(cx, "pushgateway_url");
    if let (Some(u), Some(n)) = (&pushgateway_url, gf.get("pushgateway_url")) {
        check_url(cx, n.pos, "global.pushgateway_url", u, &["http", "https"]);
        if crate::recipe::endpoint::is_loopback_url(u) {
            cx.warn(
                n.pos,
                "global.pushgateway_url",
                "a loopback Pushgateway: under SLURM every compute node pushes to its own \
                 localhost, and no live metrics reach you (fine for `factorybench run` here)",
                Some(
                    "use the monitoring node's name or address (`factorybench monitor up` prints \
                     it), or set PUSHGATEWAY_URL when submitting; it takes precedence"
                        .into(),
                ),
            );
        }
    }
    let push_interval_s = gf
        .duration_s(cx, "push_interval", fields::range::MAX_PUSH_INTERVAL_S)
        .unwrap_or(5.0);
    if push_interval_s < 0.5 {
        cx.error(
            gf.get("push_interval").map(|n| n.pos).unwrap_or_default(),
            "global.push_interval",
            "`push_interval` must be at least 0.5 seconds",
        );
    }
    Global {
        log_level,
        metrics_db: PathBuf::from(
            gf.nonempty_string(cx, "metrics_db")
                .unwrap_or_else(|| "metrics.db".into()),
        ),
        reports_dir: PathBuf::from(
            gf.nonempty_string(cx, "reports_dir")
                .unwrap_or_else(|| "reports".into()),
        ),
        logs_dir: PathBuf::from(
            gf.nonempty_string(cx, "logs_dir")
                .unwrap_or_else(|| "logs".into()),
        ),
        pushgateway_url,
        push_interval_s,
    }
}

/// The `services` list: each service, unique names, known `depends_on`, shared ports.
fn decode_services(cx: &mut Ctx, n: &Node, defaults: &ServiceDefaults) -> Vec<Service> {
    let items = match n.as_seq() {
        None => {
            cx.error(
                n.pos,
                "services",
                format!("`services` must be a list, found a {}", n.type_name()),
            );
            return Vec::new();
        }
        Some([]) => {
            cx.error(
                n.pos,
                "services",
                "`services` is empty: a recipe needs at least one service",
            );
            return Vec::new();
        }
        Some(items) => items,
    };
    let names = unique_service_names(cx, items);
    let mut services = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("services[{i}]");
        if let Some(svc) = decode_service(
            cx,
            item,
            &path,
            defaults.runtime,
            defaults.seed,
            defaults.slurm,
            i,
        ) {
            services.push((svc, item.pos, path));
        }
    }
    let all: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    for (svc, pos, path) in &services {
        for d in &svc.depends_on {
            if d == &svc.name {
                cx.error(
                    *pos,
                    &format!("{path}.depends_on"),
                    "a service cannot depend on itself",
                );
            } else if !all.contains(&d.as_str()) {
                let help = did_you_mean(d, &all).map(|m| format!("did you mean `{m}`?"));
                cx.push(
                    Severity::Error,
                    *pos,
                    &format!("{path}.depends_on"),
                    format!("depends_on names unknown service `{d}`"),
                    help,
                );
            }
        }
    }
    check_shared_ports(cx, items, &services);
    services.into_iter().map(|(s, _, _)| s).collect()
}

/// The services' names, each once (a second one is an error at it).
fn unique_service_names(cx: &mut Ctx, items: &[Node]) -> Vec<(String, Pos)> {
    let mut names: Vec<(String, Pos)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(name_node) = item.get("service_name") else {
            continue;
        };
        let Some(name) = name_node.as_scalar() else {
            continue;
        };
        if let Some((_, first)) = names.iter().find(|(n, _)| n == name) {
            cx.error(
                name_node.pos,
                &format!("services[{i}].service_name"),
                format!(
                    "duplicate service_name `{name}` (first defined at line {})",
                    first.line
                ),
            );
        } else {
            names.push((name.to_string(), name_node.pos));
        }
    }
    names
}

/// The optional top-level `monitoring` section: `compat_metrics: seed` also exports the
/// earlier tool's metric names in the live pushes; `expect_stress: true` makes each run silence
/// its own stress alerts.
fn monitoring_section(cx: &mut Ctx, node: Option<&Node>) -> Monitoring {
    if let Some(m) = node {
        if m.as_map().is_none() {
            cx.error(m.pos, "monitoring", "`monitoring` must be a mapping");
        }
        cx.check_keys(m, "monitoring", MONITORING_KEYS, "`monitoring`");
    }
    let mf = Fields::new(node, "monitoring");
    Monitoring {
        compat_metrics: mf.enum_of(
            cx,
            "compat_metrics",
            &[(CompatNames::Seed.as_str(), CompatNames::Seed)],
        ),
        expect_stress: mf.bool(cx, "expect_stress").unwrap_or(false),
    }
}

fn has_cycle(services: &[Service]) -> bool {
    fn visit(name: &str, services: &[Service], stack: &mut Vec<String>) -> bool {
        if stack.iter().any(|s| s == name) {
            return true;
        }
        let Some(s) = services.iter().find(|s| s.name == name) else {
            return false;
        };
        stack.push(name.to_string());
        let c = s
            .depends_on
            .iter()
            .any(|d| d != name && visit(d, services, stack));
        stack.pop();
        c
    }
    services
        .iter()
        .any(|s| visit(&s.name, services, &mut Vec::new()))
}

pub(super) fn runtime_field(cx: &mut Ctx, f: &Fields) -> Option<Runtime> {
    f.enum_of(
        cx,
        "runtime",
        &[
            ("apptainer", Runtime::Apptainer),
            ("singularity", Runtime::Apptainer),
            ("podman", Runtime::Podman),
            ("host", Runtime::Host),
            ("external", Runtime::External),
            ("none", Runtime::External),
        ],
    )
}

pub(super) fn check_url(cx: &mut Ctx, pos: Pos, path: &str, url: &str, schemes: &[&str]) {
    let ok =
        url::Url::parse(url).is_ok_and(|u| schemes.contains(&u.scheme()) && u.host().is_some());
    let blank = url.chars().any(|c| c.is_whitespace() || c.is_control());
    // A blank inside is said once, below.
    if !ok && !blank {
        cx.error_help(
            pos,
            path,
            format!("`{url}` is not a valid URL"),
            format!("expected {}://host:port", schemes.join("|")),
        );
    }
    warn_url_credentials(cx, pos, path, url);
    if blank {
        cx.error(
            pos,
            path,
            "URLs must not contain whitespace or control characters",
        );
    }
}

/// A credential inside a URL (`user:pw@`, `?token=`) is a plain-text secret: warned about
/// once, without echoing it (plan.json, the campaign file and reports show the URL redacted).
pub(super) fn warn_url_credentials(cx: &mut Ctx, pos: Pos, path: &str, url: &str) {
    let creds = crate::recipe::redact::url_credentials(url);
    if creds.is_empty() || creds.iter().all(|c| fields::env_ref(c).is_some()) {
        return;
    }
    cx.warn_secret_all(
        pos,
        path,
        &creds,
        "plain-text credential in a URL",
        Some("it is shown redacted in plans, campaign files and reports; prefer a secret key (`password_env`, `api_key_env`, ...) or `${VAR}`".into()),
    );
}

/// Two started services on one port whose jobs may run at the same time: SLURM may place them
/// on one node (jobs share nodes unless `--exclusive`), where the second finds the port taken
/// and fails its setup after the queue wait (doctor's port check runs on the login node and
/// cannot see it). A warning that `submit` refuses, at the later service's `port`.
fn check_shared_ports(cx: &mut Ctx, items: &[Node], services: &[(Service, Pos, String)]) {
    let started = |s: &Service| s.runtime != Runtime::External;
    let exclusive = |s: &Service| s.slurm.extra.iter().any(|e| e.starts_with("--exclusive"));
    // Whether `a` runs only after `b` ended (depends_on, transitively; a visited set keeps a
    // cyclic or dense graph linear).
    fn after(a: &str, b: &str, services: &[(Service, Pos, String)]) -> bool {
        let mut seen: Vec<&str> = vec![a];
        let mut todo: Vec<&str> = vec![a];
        while let Some(x) = todo.pop() {
            let Some((s, _, _)) = services.iter().find(|(s, _, _)| s.name == x) else {
                continue;
            };
            for d in &s.depends_on {
                if d == b {
                    return true;
                }
                if !seen.contains(&d.as_str()) {
                    seen.push(d);
                    todo.push(d);
                }
            }
        }
        false
    }
    for (j, (b, bpos, bpath)) in services.iter().enumerate() {
        let Some(port) = b.endpoint.port else {
            continue;
        };
        if !started(b) || exclusive(b) {
            continue;
        }
        let clash = services[..j].iter().find(|(a, _, _)| {
            a.endpoint.port == Some(port)
                && started(a)
                && !exclusive(a)
                && !after(&a.name, &b.name, services)
                && !after(&b.name, &a.name, services)
        });
        if let Some((a, apos, _)) = clash {
            let item = items
                .iter()
                .find(|n| n.pos == *bpos)
                .and_then(|n| n.get("port"));
            cx.warn_stops_submit(
                item.map_or(*bpos, |n| n.pos),
                &format!("{bpath}.port"),
                format!(
                    "port {port} is also the port of service `{}` (line {}): their jobs may run at the same time on one node, where the second finds the port taken and fails its setup",
                    a.name, apos.line
                ),
                Some(format!(
                    "give `{}` another `port`, order the two with `depends_on`, or add `--exclusive` to `slurm.extra`",
                    b.name
                )),
            );
        }
    }
}
