//! Raw spanned YAML → validated [`Plan`], collecting every problem with its location.

use super::diag::{did_you_mean, Diagnostic, Severity};
use super::plan::*;
use super::units::{parse_duration_s, parse_size_bytes, parse_slurm_time_s};
use super::yaml::{Node, NodeKind, Pos};
use std::collections::HashSet;
use std::path::PathBuf;

pub const TOP_KEYS: &[&str] = &["benchmark", "global", "services"];
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
    "cpus_per_task",
    "mem",
    "qos",
    "gres",
    "constraint",
    "extra",
    "modules",
    "signal_grace",
];
pub const COMMON_SERVICE_KEYS: &[&str] = &[
    "service_name",
    "service_type",
    "runtime",
    "container_image",
    "start_command",
    "port",
    "service_url",
    "client_count",
    "requests_per_second",
    "duration",
    "arrival",
    "warmup",
    "requests",
    "seed",
    "max_error_rate",
    "timeout",
    "max_in_flight",
    "slurm",
    "environment",
    "binds",
    "container_args",
    "readiness_timeout",
    "depends_on",
    "sweep",
    "compare_thresholds",
];
pub const LLM_KEYS: &[&str] = &[
    "model",
    "api",
    "prompt",
    "output_tokens",
    "max_tokens",
    "ignore_eos",
    "temperature",
    "slo",
    "pull_model",
    "api_key",
    "api_key_env",
    "api_key_file",
];
pub const VECTORDB_KEYS: &[&str] = &[
    "backend",
    "host",
    "collection_name",
    "dimension",
    "operation_mix",
    "batch_size",
    "search_k",
    "vectors",
    "dataset_size",
    "recall_queries",
    "index",
];
pub const DATABASE_KEYS: &[&str] = &[
    "backend",
    "host",
    "database",
    "user",
    "password",
    "password_env",
    "password_file",
    "operation_mix",
    "batch_size",
    "table_name",
    "seed_rows",
    "keep_table",
];
pub const S3_KEYS: &[&str] = &[
    "endpoint_url",
    "access_key",
    "access_key_env",
    "access_key_file",
    "secret_key",
    "secret_key_env",
    "secret_key_file",
    "bucket_name",
    "region",
    "operation_mix",
    "object_sizes",
    "addressing",
    "cleanup",
];
pub const FILE_KEYS: &[&str] = &[
    "base_path",
    "operation_mix",
    "file_sizes",
    "use_direct_io",
    "sync_mode",
    "working_set_files",
    "io_size",
    "io_engine",
];
pub const HTTP_KEYS: &[&str] = &["url", "method", "headers", "body", "expect_status"];

fn kind_keys(kind: ServiceKind) -> &'static [&'static str] {
    match kind {
        ServiceKind::Ollama | ServiceKind::Vllm | ServiceKind::Triton => LLM_KEYS,
        ServiceKind::Vectordb => VECTORDB_KEYS,
        ServiceKind::Database => DATABASE_KEYS,
        ServiceKind::S3 => S3_KEYS,
        ServiceKind::FileStorage => FILE_KEYS,
        ServiceKind::Http => HTTP_KEYS,
    }
}

const SERVICE_TYPES: &[&str] = &[
    "ollama",
    "vllm",
    "triton",
    "vectordb",
    "database",
    "s3",
    "file_storage",
    "http",
];

/// Collects diagnostics while decoding.
#[derive(Default)]
pub struct Ctx {
    pub diags: Vec<Diagnostic>,
}

impl Ctx {
    pub fn error_count(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub fn error(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.push(Severity::Error, pos, path, message.into(), None);
    }

    pub fn error_help(&mut self, pos: Pos, path: &str, message: impl Into<String>, help: String) {
        self.push(Severity::Error, pos, path, message.into(), Some(help));
    }

    pub fn warn(&mut self, pos: Pos, path: &str, message: impl Into<String>, help: Option<String>) {
        self.push(Severity::Warning, pos, path, message.into(), help);
    }

    fn push(
        &mut self,
        severity: Severity,
        pos: Pos,
        path: &str,
        message: String,
        help: Option<String>,
    ) {
        self.diags.push(Diagnostic {
            severity,
            path: path.to_string(),
            pos,
            message,
            help,
        });
    }

    /// Check a mapping's keys: unknown keys (with a suggestion) and duplicates.
    /// `elsewhere` names keys that are valid in another context, for a better message.
    fn check_keys(&mut self, node: &Node, path: &str, allowed: &[&str], context: &str) {
        let Some(map) = node.as_map() else { return };
        let mut seen: HashSet<&str> = HashSet::new();
        for (k, _) in map {
            let Some(key) = k.as_scalar() else {
                self.error(k.pos, path, format!("keys in {context} must be strings"));
                continue;
            };
            if !seen.insert(key) {
                self.error(
                    k.pos,
                    &join(path, key),
                    format!("duplicate key `{key}` in {context}"),
                );
                continue;
            }
            if allowed.contains(&key) {
                continue;
            }
            // `x-...` keys at the top level hold YAML anchors (as in docker-compose files).
            if path.is_empty() && key.starts_with("x-") {
                continue;
            }
            let mut msg = format!("unknown key `{key}` in {context}");
            if let Some(other) = other_kind_with_key(key) {
                if context.starts_with("service") {
                    msg = format!(
                        "`{key}` is not a key of {context} (it belongs to `service_type: {other}`)"
                    );
                }
            }
            match did_you_mean(key, allowed) {
                Some(s) => {
                    self.error_help(k.pos, &join(path, key), msg, format!("did you mean `{s}`?"))
                }
                None => self.error_help(
                    k.pos,
                    &join(path, key),
                    msg,
                    format!("valid keys here: {}", allowed.join(", ")),
                ),
            }
        }
    }
}

fn other_kind_with_key(key: &str) -> Option<&'static str> {
    for (name, keys) in [
        ("ollama|vllm|triton", LLM_KEYS),
        ("vectordb", VECTORDB_KEYS),
        ("database", DATABASE_KEYS),
        ("s3", S3_KEYS),
        ("file_storage", FILE_KEYS),
        ("http", HTTP_KEYS),
    ] {
        if keys.contains(&key) {
            return Some(name);
        }
    }
    None
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Typed access to one mapping's fields with error collection.
struct Fields<'n> {
    node: Option<&'n Node>,
    path: String,
}

impl<'n> Fields<'n> {
    fn new(node: Option<&'n Node>, path: impl Into<String>) -> Self {
        Fields {
            node,
            path: path.into(),
        }
    }

    fn get(&self, key: &str) -> Option<&'n Node> {
        self.node?.get(key).filter(|n| !n.is_null())
    }

    fn pos(&self) -> Pos {
        self.node.map(|n| n.pos).unwrap_or_default()
    }

    fn p(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn string(&self, cx: &mut Ctx, key: &str) -> Option<String> {
        let n = self.get(key)?;
        match &n.kind {
            NodeKind::Scalar { value, .. } => Some(value.clone()),
            _ => {
                cx.error(
                    n.pos,
                    &self.p(key),
                    format!("`{key}` must be a string, found a {}", n.type_name()),
                );
                None
            }
        }
    }

    fn nonempty_string(&self, cx: &mut Ctx, key: &str) -> Option<String> {
        let s = self.string(cx, key)?;
        if s.trim().is_empty() {
            cx.error(
                self.get(key).unwrap().pos,
                &self.p(key),
                format!("`{key}` must not be empty"),
            );
            return None;
        }
        Some(s)
    }

    fn f64(&self, cx: &mut Ctx, key: &str) -> Option<f64> {
        let n = self.get(key)?;
        match &n.kind {
            NodeKind::Scalar { value, plain: true } => match value.parse::<f64>() {
                Ok(v) if v.is_finite() => Some(v),
                _ => {
                    cx.error(
                        n.pos,
                        &self.p(key),
                        format!("`{key}` must be a number, found `{value}`"),
                    );
                    None
                }
            },
            _ => {
                cx.error(
                    n.pos,
                    &self.p(key),
                    format!("`{key}` must be a number, found a {}", n.type_name()),
                );
                None
            }
        }
    }

    fn nonneg_f64(&self, cx: &mut Ctx, key: &str) -> Option<f64> {
        let v = self.f64(cx, key)?;
        if v < 0.0 {
            cx.error(
                self.get(key).unwrap().pos,
                &self.p(key),
                format!("`{key}` must not be negative, found {v}"),
            );
            return None;
        }
        Some(v)
    }

    fn u64(&self, cx: &mut Ctx, key: &str) -> Option<u64> {
        let n = self.get(key)?;
        match &n.kind {
            NodeKind::Scalar { value, plain: true } => match value.parse::<i128>() {
                Ok(v) if v < 0 => {
                    cx.error(
                        n.pos,
                        &self.p(key),
                        format!("`{key}` must not be negative, found {v}"),
                    );
                    None
                }
                Ok(v) if v > u64::MAX as i128 => {
                    cx.error(n.pos, &self.p(key), format!("`{key}` is too large"));
                    None
                }
                Ok(v) => Some(v as u64),
                Err(_) => {
                    cx.error(
                        n.pos,
                        &self.p(key),
                        format!("`{key}` must be a whole number, found `{value}`"),
                    );
                    None
                }
            },
            _ => {
                cx.error(
                    n.pos,
                    &self.p(key),
                    format!("`{key}` must be a whole number, found a {}", n.type_name()),
                );
                None
            }
        }
    }

    fn u32_range(&self, cx: &mut Ctx, key: &str, min: u32, max: u32) -> Option<u32> {
        let v = self.u64(cx, key)?;
        if v < min as u64 || v > max as u64 {
            cx.error(
                self.get(key).unwrap().pos,
                &self.p(key),
                format!("`{key}` must be between {min} and {max}, found {v}"),
            );
            return None;
        }
        Some(v as u32)
    }

    fn port(&self, cx: &mut Ctx, key: &str) -> Option<u16> {
        let n = self.get(key)?;
        let v = self.u64(cx, key)?;
        if !(1..=65535).contains(&v) {
            cx.error(
                n.pos,
                &self.p(key),
                format!("`{key}` must be a TCP port between 1 and 65535, found {v}"),
            );
            return None;
        }
        Some(v as u16)
    }

    fn bool(&self, cx: &mut Ctx, key: &str) -> Option<bool> {
        let n = self.get(key)?;
        match n.as_scalar() {
            Some("true" | "True" | "TRUE" | "yes" | "on") => Some(true),
            Some("false" | "False" | "FALSE" | "no" | "off") => Some(false),
            _ => {
                cx.error(
                    n.pos,
                    &self.p(key),
                    format!("`{key}` must be true or false, found a {}", n.type_name()),
                );
                None
            }
        }
    }

    /// Seconds: a number, or a string like `90s`, `10m`, `1h`.
    fn duration_s(&self, cx: &mut Ctx, key: &str) -> Option<f64> {
        let n = self.get(key)?;
        let s = n.as_scalar().unwrap_or_default();
        match parse_duration_s(s) {
            Ok(v) if v < 0.0 => {
                cx.error(
                    n.pos,
                    &self.p(key),
                    format!("`{key}` must not be negative, found {s}"),
                );
                None
            }
            Ok(v) => Some(v),
            Err(e) => {
                cx.error(n.pos, &self.p(key), format!("`{key}`: {e}"));
                None
            }
        }
    }

    fn enum_of<T: Copy>(&self, cx: &mut Ctx, key: &str, options: &[(&str, T)]) -> Option<T> {
        let n = self.get(key)?;
        let s = n.as_scalar().unwrap_or_default();
        if let Some((_, v)) = options
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
        {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let help = match did_you_mean(s, &names) {
            Some(m) => format!("did you mean `{m}`?"),
            None => format!("expected one of: {}", names.join(", ")),
        };
        cx.error_help(n.pos, &self.p(key), format!("invalid `{key}`: `{s}`"), help);
        None
    }

    fn string_list(&self, cx: &mut Ctx, key: &str) -> Vec<String> {
        let Some(n) = self.get(key) else {
            return vec![];
        };
        match &n.kind {
            NodeKind::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, it)| match it.as_scalar() {
                    Some(s) => Some(s.to_string()),
                    None => {
                        cx.error(
                            it.pos,
                            &format!("{}[{i}]", self.p(key)),
                            format!("items of `{key}` must be strings"),
                        );
                        None
                    }
                })
                .collect(),
            NodeKind::Scalar { value, .. } => vec![value.clone()],
            _ => {
                cx.error(
                    n.pos,
                    &self.p(key),
                    format!("`{key}` must be a list of strings"),
                );
                vec![]
            }
        }
    }

    /// A secret field: `key` (plain or `${VAR}`), `key_env`, or `key_file`.
    fn secret(&self, cx: &mut Ctx, key: &str) -> Option<Secret> {
        let env_key = format!("{key}_env");
        let file_key = format!("{key}_file");
        let given: Vec<&str> = [key, env_key.as_str(), file_key.as_str()]
            .into_iter()
            .filter(|k| self.get(k).is_some())
            .collect();
        if given.len() > 1 {
            cx.error(
                self.get(given[1]).unwrap().pos,
                &self.p(given[1]),
                format!("give only one of `{}`", given.join("`, `")),
            );
        }
        if let Some(v) = self.string(cx, &env_key) {
            let pos = self.get(&env_key).unwrap().pos;
            return env_var_name(cx, pos, &self.p(&env_key), v).map(Secret::Env);
        }
        if let Some(v) = self.string(cx, &file_key) {
            return Some(Secret::File(PathBuf::from(v)));
        }
        let v = self.string(cx, key)?;
        let n = self.get(key).unwrap();
        Some(secret_from_value(cx, n.pos, &self.p(key), &v))
    }
}

fn env_ref(v: &str) -> Option<&str> {
    let inner = v.strip_prefix("${")?.strip_suffix('}')?;
    is_env_name(inner).then_some(inner)
}

/// A portable environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The name given to a `*_env` key or `from_env:`; an error at `pos` when it is not a portable
/// variable name (it reaches the batch script as `${NAME}`).
fn env_var_name(cx: &mut Ctx, pos: Pos, path: &str, v: String) -> Option<String> {
    if is_env_name(&v) {
        return Some(v);
    }
    cx.error(
        pos,
        path,
        format!("`{v}` is not an environment variable name (letters, digits and `_`, not starting with a digit)"),
    );
    None
}

const WELL_KNOWN_DEFAULTS: &[&str] = &[
    "minioadmin",
    "postgres",
    "password",
    "admin",
    "changeme",
    "secret",
];

fn secret_from_value(cx: &mut Ctx, pos: Pos, path: &str, v: &str) -> Secret {
    if let Some(var) = env_ref(v) {
        return Secret::Env(var.to_string());
    }
    if WELL_KNOWN_DEFAULTS.contains(&v) {
        cx.warn(
            pos,
            path,
            "a well-known default credential is used; anyone on the cluster can guess it",
            Some(
                "omit it to have factorybench generate one, or take it from `${VAR}` / a `_file`"
                    .into(),
            ),
        );
    } else {
        cx.warn(
            pos,
            path,
            "plain-text secret in the recipe",
            Some("write `${VAR}` to read it from the environment, or use the `_env` / `_file` form; it is kept out of scripts either way".into()),
        );
    }
    Secret::Plain(v.to_string())
}

pub fn looks_secret(name: &str) -> bool {
    let up = name.to_ascii_uppercase();
    ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL"]
        .iter()
        .any(|w| up.contains(w))
}

pub fn valid_service_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
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
    let benchmark = Benchmark {
        name: bf.nonempty_string(cx, "name").unwrap_or(stem),
        description: bf.string(cx, "description").unwrap_or_default(),
        duration_s: bf.duration_s(cx, "duration"),
    };

    let global_node = top.get("global");
    if let Some(g) = global_node {
        if g.as_map().is_none() {
            cx.error(g.pos, "global", "`global` must be a mapping");
        }
        cx.check_keys(g, "global", GLOBAL_KEYS, "`global`");
    }
    let gf = Fields::new(global_node, "global");
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
    }
    let push_interval_s = gf.duration_s(cx, "push_interval").unwrap_or(5.0);
    if push_interval_s < 0.5 {
        cx.error(
            gf.get("push_interval").map(|n| n.pos).unwrap_or_default(),
            "global.push_interval",
            "`push_interval` must be at least 0.5 seconds",
        );
    }
    let global = Global {
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
    };
    let default_runtime = runtime_field(cx, &gf);
    let default_seed = gf.u64(cx, "seed");
    let default_slurm = gf.get("slurm");
    if let Some(s) = default_slurm {
        cx.check_keys(s, "global.slurm", SLURM_KEYS, "`slurm`");
    }

    let mut services = Vec::new();
    match top.get("services") {
        None => {
            cx.error(root.pos, "services", "missing required key `services`");
        }
        Some(n) => match n.as_seq() {
            None => cx.error(
                n.pos,
                "services",
                format!("`services` must be a list, found a {}", n.type_name()),
            ),
            Some([]) => cx.error(
                n.pos,
                "services",
                "`services` is empty: a recipe needs at least one service",
            ),
            Some(items) => {
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
                for (i, item) in items.iter().enumerate() {
                    let path = format!("services[{i}]");
                    if let Some(svc) = decode_service(
                        cx,
                        item,
                        &path,
                        default_runtime,
                        default_seed,
                        default_slurm,
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
                            let help =
                                did_you_mean(d, &all).map(|m| format!("did you mean `{m}`?"));
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
            }
        },
    }
    let services: Vec<Service> = services.into_iter().map(|(s, _, _)| s).collect();
    if has_cycle(&services) {
        cx.error(root.pos, "services", "depends_on forms a cycle");
    }
    if cx.diags.iter().any(|d| d.severity == Severity::Error) {
        return None;
    }
    Some(Plan {
        source_path,
        source_sha256,
        benchmark,
        global,
        services,
    })
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

fn runtime_field(cx: &mut Ctx, f: &Fields) -> Option<Runtime> {
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

fn check_url(cx: &mut Ctx, pos: Pos, path: &str, url: &str, schemes: &[&str]) {
    let ok = url.split_once("://").is_some_and(|(scheme, rest)| {
        schemes.contains(&scheme.to_ascii_lowercase().as_str()) && !rest.is_empty()
    });
    if !ok {
        cx.error_help(
            pos,
            path,
            format!("`{url}` is not a valid URL"),
            format!("expected {}://host:port", schemes.join("|")),
        );
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        cx.error(
            pos,
            path,
            "URLs must not contain whitespace or control characters",
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn decode_service(
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
    let errors_before = cx
        .diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();

    let name = match f.get("service_name") {
        None => {
            cx.error(
                node.pos,
                &f.p("service_name"),
                "missing required key `service_name`",
            );
            None
        }
        Some(n) => {
            let v = f.string(cx, "service_name");
            match v {
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
    };
    let kind = match f.get("service_type") {
        None => {
            cx.error(
                node.pos,
                &f.p("service_type"),
                "missing required key `service_type`",
            );
            None
        }
        Some(_) => f.enum_of(
            cx,
            "service_type",
            &[
                ("ollama", ServiceKind::Ollama),
                ("vllm", ServiceKind::Vllm),
                ("openai", ServiceKind::Vllm),
                ("triton", ServiceKind::Triton),
                ("vectordb", ServiceKind::Vectordb),
                ("database", ServiceKind::Database),
                ("s3", ServiceKind::S3),
                ("file_storage", ServiceKind::FileStorage),
                ("http", ServiceKind::Http),
            ],
        ),
    };
    let _ = SERVICE_TYPES;
    let ctx_name = match kind {
        Some(k) => format!(
            "service `{}` (service_type {k})",
            name.as_deref().unwrap_or("?")
        ),
        None => "a service".to_string(),
    };
    let mut allowed: Vec<&str> = COMMON_SERVICE_KEYS.to_vec();
    match kind {
        Some(k) => allowed.extend_from_slice(kind_keys(k)),
        None => {
            // Without a known type, accept any type's keys rather than pile up noise.
            for k in ServiceKind::ALL {
                allowed.extend_from_slice(kind_keys(k));
            }
        }
    }
    cx.check_keys(node, path, &allowed, &ctx_name);

    let container_image = f.nonempty_string(cx, "container_image");
    let start_command = f.string_list(cx, "start_command");
    let explicit_runtime = runtime_field(cx, &f).or(default_runtime);
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
        _ => {}
    }

    let port = f.port(cx, "port");
    let service_url = f.nonempty_string(cx, "service_url");
    if let (Some(u), Some(n)) = (&service_url, f.get("service_url")) {
        let schemes: &[&str] = if kind == Some(ServiceKind::Database) {
            &["postgresql", "postgres"]
        } else {
            &["http", "https"]
        };
        check_url(cx, n.pos, &f.p("service_url"), u, schemes);
    }

    // ---- load ----
    let clients = f.u32_range(cx, "client_count", 1, 100_000).unwrap_or(1);
    let rate = f.nonneg_f64(cx, "requests_per_second").unwrap_or(10.0);
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
            f.get("requests_per_second")
                .map(|n| n.pos)
                .unwrap_or(node.pos),
            &f.p("requests_per_second"),
            "an open-loop arrival needs `requests_per_second` > 0",
            "requests_per_second: 0 means closed loop, unthrottled (`arrival: closed`)".into(),
        );
    }
    let duration_s = f.duration_s(cx, "duration").unwrap_or(60.0);
    if f.get("duration").is_some() && duration_s == 0.0 {
        cx.error(
            f.get("duration").unwrap().pos,
            &f.p("duration"),
            "`duration` must be greater than 0",
        );
    }
    let requests = f.u64(cx, "requests");
    if requests == Some(0) {
        cx.error(
            f.get("requests").unwrap().pos,
            &f.p("requests"),
            "`requests` must be at least 1",
        );
    }
    let warmup_s = f.duration_s(cx, "warmup").unwrap_or(0.0);
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
    let is_llm = kind.is_some_and(|k| k.is_llm());
    let timeout_s = f
        .duration_s(cx, "timeout")
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
    let load = Load {
        clients,
        arrival,
        rate_per_client: rate,
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
    };

    // ---- slurm ----
    let slurm = decode_slurm(cx, f.get("slurm"), default_slurm, &f.p("slurm"));

    // ---- container ----
    let container = decode_container(cx, &f);
    let readiness = Readiness {
        timeout_s: f
            .u32_range(cx, "readiness_timeout", 1, 86_400)
            .unwrap_or(if is_llm { 900 } else { 180 }),
        interval_s: 1.0,
    };
    let depends_on = f.string_list(cx, "depends_on");
    let starts_service = matches!(
        runtime,
        Runtime::Apptainer | Runtime::Podman | Runtime::Host
    );

    let workload = match kind {
        Some(k) => decode_workload(cx, &f, k, starts_service, service_url.as_deref(), port),
        None => None,
    };
    let sweep = f
        .get("sweep")
        .and_then(|n| decode_sweep(cx, n, &f.p("sweep"), kind));

    let errors_after = cx
        .diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    if errors_after > errors_before {
        return None;
    }
    let compare_thresholds = decode_compare_thresholds(cx, &f);
    let mut container = container;
    let workload = workload?;
    promote_secret_lookalikes(&mut container, &workload);
    Some(Service {
        name: name?,
        kind: kind?,
        runtime,
        container_image,
        start_command,
        port,
        service_url,
        load,
        workload,
        slurm,
        container,
        readiness,
        sweep,
        depends_on,
        compare_thresholds,
    })
}

/// `compare_thresholds: {METRIC: LIMIT}` (limits as on `compare --threshold`).
fn decode_compare_thresholds(
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
        match super::threshold::parse_threshold(&format!("{metric}={limit}")) {
            Ok((name, _)) => {
                out.insert(name.to_string(), limit.to_string());
            }
            Err(e) => cx.error(v.pos, &format!("{path}.{metric}"), e.to_string()),
        }
    }
    out
}

fn decode_slurm(
    cx: &mut Ctx,
    node: Option<&Node>,
    defaults: Option<&Node>,
    path: &str,
) -> SlurmSpec {
    if let Some(n) = node {
        if n.as_map().is_none() {
            cx.error(n.pos, path, "`slurm` must be a mapping");
        }
        cx.check_keys(n, path, SLURM_KEYS, "`slurm`");
    }
    let f = Fields::new(node, path);
    let d = Fields::new(defaults, "global.slurm");
    // Service values win; global.slurm fills the gaps. Defaults are validated once, with
    // their own path, but errors in them are only reported for the first service.
    macro_rules! pick {
        ($method:ident, $key:expr) => {
            if f.get($key).is_some() {
                f.$method(cx, $key)
            } else {
                d.$method(&mut Ctx::default(), $key)
            }
        };
    }
    let time = pick!(nonempty_string, "time");
    let time_limit_s = match &time {
        Some(t) => match parse_slurm_time_s(t) {
            Ok(s) => Some(s),
            Err(e) => {
                let pos = f
                    .get("time")
                    .or(d.get("time"))
                    .map(|n| n.pos)
                    .unwrap_or_default();
                cx.error_help(
                    pos,
                    &format!("{path}.time"),
                    format!("invalid SLURM time `{t}`: {e}"),
                    "use minutes, MM:SS, HH:MM:SS or D-HH:MM:SS".into(),
                );
                None
            }
        },
        None => None,
    };
    let nodes = if f.get("nodes").is_some() {
        f.u32_range(cx, "nodes", 1, 100_000)
    } else {
        d.u32_range(&mut Ctx::default(), "nodes", 1, 100_000)
    };
    let ntasks = if f.get("ntasks").is_some() {
        f.u32_range(cx, "ntasks", 1, 1_000_000)
    } else {
        d.u32_range(&mut Ctx::default(), "ntasks", 1, 1_000_000)
    };
    let cpus = if f.get("cpus_per_task").is_some() {
        f.u32_range(cx, "cpus_per_task", 1, 100_000)
    } else {
        d.u32_range(&mut Ctx::default(), "cpus_per_task", 1, 100_000)
    };
    let grace = if f.get("signal_grace").is_some() {
        f.u32_range(cx, "signal_grace", 10, 3600)
    } else {
        d.u32_range(&mut Ctx::default(), "signal_grace", 10, 3600)
    };
    let mut extra = d.string_list(&mut Ctx::default(), "extra");
    extra.extend(f.string_list(cx, "extra"));
    let extra_node = f.get("extra").or(d.get("extra"));
    for e in &extra {
        if !e.starts_with("--") || e.contains(['\n', '\r']) {
            cx.error_help(
                extra_node.map(|n| n.pos).unwrap_or_default(),
                &format!("{path}.extra"),
                format!("invalid extra #SBATCH option `{}`", e.escape_debug()),
                "each entry is one long option such as `--mail-type=END`".into(),
            );
        }
    }
    let mut modules = d.string_list(&mut Ctx::default(), "modules");
    modules.extend(f.string_list(cx, "modules"));
    let spec = SlurmSpec {
        partition: pick!(nonempty_string, "partition"),
        account: pick!(nonempty_string, "account"),
        time,
        time_limit_s,
        nodes: nodes.unwrap_or(1),
        ntasks: ntasks.unwrap_or(1),
        cpus_per_task: cpus,
        mem: pick!(nonempty_string, "mem"),
        qos: pick!(nonempty_string, "qos"),
        gres: pick!(nonempty_string, "gres"),
        constraint: pick!(nonempty_string, "constraint"),
        extra,
        modules,
        signal_grace_s: grace.unwrap_or(60),
    };
    for (key, v) in [
        ("partition", &spec.partition),
        ("account", &spec.account),
        ("qos", &spec.qos),
        ("gres", &spec.gres),
        ("mem", &spec.mem),
        ("constraint", &spec.constraint),
    ] {
        if let Some(v) = v {
            if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                let pos = f.get(key).or(d.get(key)).map(|n| n.pos).unwrap_or_default();
                cx.error(
                    pos,
                    &format!("{path}.{key}"),
                    format!("`{key}` must not contain whitespace"),
                );
            }
        }
    }
    if let (Some(limit), Some(n)) = (spec.time_limit_s, f.get("time")) {
        if limit <= spec.signal_grace_s as u64 {
            cx.error(
                n.pos,
                &format!("{path}.time"),
                format!(
                    "time limit ({limit} s) must be longer than signal_grace ({} s)",
                    spec.signal_grace_s
                ),
            );
        }
    }
    spec
}

fn decode_container(cx: &mut Ctx, f: &Fields) -> ContainerSpec {
    let mut env = Vec::new();
    if let Some(n) = f.get("environment") {
        match n.as_map() {
            None => cx.error(
                n.pos,
                &f.p("environment"),
                "`environment` must be a mapping of NAME: value",
            ),
            Some(m) => {
                let mut seen = HashSet::new();
                for (k, v) in m {
                    let name = k.as_scalar().unwrap_or_default().to_string();
                    let p = format!("{}.{name}", f.p("environment"));
                    let valid = name
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !valid {
                        cx.error(
                            k.pos,
                            &p,
                            format!(
                                "invalid environment variable name `{}`",
                                name.escape_debug()
                            ),
                        );
                        continue;
                    }
                    if !seen.insert(name.clone()) {
                        cx.error(
                            k.pos,
                            &p,
                            format!("duplicate environment variable `{name}`"),
                        );
                        continue;
                    }
                    let value = match &v.kind {
                        NodeKind::Scalar { value, .. } => value.clone(),
                        NodeKind::Null => String::new(),
                        NodeKind::Map(_) => {
                            // {from_env: VAR} or {from_file: PATH}
                            let vf = Fields::new(Some(v), p.clone());
                            cx.check_keys(
                                v,
                                &p,
                                &["from_env", "from_file"],
                                "an environment value",
                            );
                            if let Some(var) = vf.string(cx, "from_env") {
                                let pos = vf.get("from_env").unwrap().pos;
                                let path = vf.p("from_env");
                                if let Some(var) = env_var_name(cx, pos, &path, var) {
                                    env.push(EnvVar {
                                        name,
                                        value: EnvValue::Secret(Secret::Env(var)),
                                    });
                                }
                            } else if let Some(file) = vf.string(cx, "from_file") {
                                env.push(EnvVar {
                                    name,
                                    value: EnvValue::Secret(Secret::File(file.into())),
                                });
                            } else {
                                cx.error(v.pos, &p, "expected `from_env` or `from_file`");
                            }
                            continue;
                        }
                        NodeKind::Seq(_) => {
                            cx.error(v.pos, &p, "environment values must be strings");
                            continue;
                        }
                    };
                    let value = if looks_secret(&name) {
                        EnvValue::Secret(secret_from_value(cx, v.pos, &p, &value))
                    } else if let Some(var) = env_ref(&value) {
                        EnvValue::Secret(Secret::Env(var.to_string()))
                    } else {
                        EnvValue::Plain(value)
                    };
                    env.push(EnvVar { name, value });
                }
            }
        }
    }
    let mut binds = Vec::new();
    let bind_node = f.get("binds");
    for (i, b) in f.string_list(cx, "binds").into_iter().enumerate() {
        let parts: Vec<&str> = b.split(':').collect();
        let pos = bind_node.map(|n| n.pos).unwrap_or_default();
        let p = format!("{}[{i}]", f.p("binds"));
        let (src, dst, ro) = match parts.as_slice() {
            [s] => (*s, *s, false),
            [s, d] => (*s, *d, false),
            [s, d, "ro"] => (*s, *d, true),
            [s, d, "rw"] => (*s, *d, false),
            _ => {
                cx.error_help(
                    pos,
                    &p,
                    format!("invalid bind `{}`", b.escape_debug()),
                    "use SRC[:DST[:ro|rw]]".into(),
                );
                continue;
            }
        };
        if src.is_empty() || dst.is_empty() || b.contains(['\n', '\r', ',']) {
            cx.error_help(
                pos,
                &p,
                format!("invalid bind `{}`", b.escape_debug()),
                "use SRC[:DST[:ro|rw]]".into(),
            );
            continue;
        }
        binds.push(Bind {
            src: src.into(),
            dst: dst.into(),
            read_only: ro,
        });
    }
    ContainerSpec {
        binds,
        env,
        extra_args: f.string_list(cx, "container_args"),
    }
}

fn decode_mix<Op: Copy>(
    cx: &mut Ctx,
    f: &Fields,
    key: &str,
    ops: &[(&str, Op)],
    default: &[(Op, f64)],
) -> Mix<Op> {
    let Some(n) = f.get(key) else {
        return Mix {
            weights: default.to_vec(),
        };
    };
    let p = f.p(key);
    let Some(m) = n.as_map() else {
        cx.error(
            n.pos,
            &p,
            format!("`{key}` must be a mapping of operation: weight"),
        );
        return Mix {
            weights: default.to_vec(),
        };
    };
    if m.is_empty() {
        cx.error(
            n.pos,
            &p,
            format!("`{key}` is empty: give at least one operation with a weight > 0"),
        );
        return Mix {
            weights: default.to_vec(),
        };
    }
    let names: Vec<&str> = ops.iter().map(|(n, _)| *n).collect();
    let errors_before = cx.error_count();
    cx.check_keys(n, &p, &names, &format!("`{key}`"));
    // With an unknown operation the sum is meaningless: report the key, not the sum.
    let mut ok = cx.error_count() == errors_before;
    let mf = Fields::new(Some(n), p.clone());
    let mut weights = Vec::new();
    for (name, op) in ops {
        if mf.get(name).is_none() {
            continue;
        }
        match mf.nonneg_f64(cx, name) {
            Some(w) if w > 0.0 => weights.push((*op, w)),
            Some(_) => {}
            None => ok = false,
        }
    }
    let sum: f64 = weights.iter().map(|(_, w)| w).sum();
    if ok && weights.is_empty() {
        cx.error(
            n.pos,
            &p,
            format!("`{key}` has no operation with a weight > 0"),
        );
    } else if ok && (sum - 1.0).abs() > 1e-6 {
        cx.error_help(
            n.pos,
            &p,
            format!("`{key}` weights sum to {sum}, not 1"),
            "weights are shares of all operations and must add up to 1".into(),
        );
    }
    Mix { weights }
}

fn decode_sizes(cx: &mut Ctx, f: &Fields, key: &str, default: &[(u64, f64)]) -> SizeMix {
    let Some(n) = f.get(key) else {
        return SizeMix {
            weights: default.to_vec(),
        };
    };
    let p = f.p(key);
    let Some(m) = n.as_map() else {
        cx.error(
            n.pos,
            &p,
            format!(
                "`{key}` must be a mapping of size: weight, e.g. {{\"4KB\": 0.5, \"1MB\": 0.5}}"
            ),
        );
        return SizeMix {
            weights: default.to_vec(),
        };
    };
    if m.is_empty() {
        cx.error(n.pos, &p, format!("`{key}` is empty"));
        return SizeMix {
            weights: default.to_vec(),
        };
    }
    let mut weights = Vec::new();
    let mut ok = true;
    for (k, v) in m {
        let label = k.as_scalar().unwrap_or_default();
        let kp = format!("{p}.{label}");
        let size = match parse_size_bytes(label) {
            Ok(0) => {
                cx.error(k.pos, &kp, "size must be greater than 0");
                ok = false;
                continue;
            }
            Ok(s) => s,
            Err(e) => {
                cx.error_help(
                    k.pos,
                    &kp,
                    format!("invalid size `{label}`: {e}"),
                    "use e.g. 512B, 4KB, 4KiB, 10MB, 1GB (KB = KiB = 1024 bytes)".into(),
                );
                ok = false;
                continue;
            }
        };
        match v.as_scalar().and_then(|s| s.parse::<f64>().ok()) {
            Some(w) if w >= 0.0 && w.is_finite() => {
                if w > 0.0 {
                    weights.push((size, w))
                }
            }
            _ => {
                cx.error(
                    v.pos,
                    &kp,
                    format!("weight of `{label}` must be a number >= 0"),
                );
                ok = false;
            }
        }
    }
    let sum: f64 = weights.iter().map(|(_, w)| w).sum();
    if ok && weights.is_empty() {
        cx.error(n.pos, &p, format!("`{key}` has no size with a weight > 0"));
    } else if ok && (sum - 1.0).abs() > 1e-6 {
        cx.error_help(
            n.pos,
            &p,
            format!("`{key}` weights sum to {sum}, not 1"),
            "weights are shares and must add up to 1".into(),
        );
    }
    SizeMix { weights }
}

fn token_dist(cx: &mut Ctx, n: &Node, path: &str, what: &str) -> Option<TokenDist> {
    match &n.kind {
        NodeKind::Scalar { .. } => {
            let v = n.as_scalar()?.parse::<u32>().ok().filter(|v| *v > 0);
            if v.is_none() {
                cx.error(n.pos, path, format!("{what} must be a whole number > 0"));
            }
            v.map(|tokens| TokenDist::Fixed { tokens })
        }
        NodeKind::Map(_) => {
            let f = Fields::new(Some(n), path);
            cx.check_keys(n, path, &["min", "max", "mean", "stddev"], what);
            if f.get("min").is_some() || f.get("max").is_some() {
                let min = f.u32_range(cx, "min", 1, 1_000_000)?;
                let max = f.u32_range(cx, "max", 1, 1_000_000)?;
                if min > max {
                    cx.error(
                        n.pos,
                        path,
                        format!("{what}: min ({min}) is greater than max ({max})"),
                    );
                    return None;
                }
                Some(TokenDist::Uniform { min, max })
            } else {
                let mean = f.f64(cx, "mean");
                let stddev = f.nonneg_f64(cx, "stddev").unwrap_or(0.0);
                match mean {
                    Some(m) if m >= 1.0 => Some(TokenDist::Normal { mean: m, stddev }),
                    _ => {
                        cx.error(
                            n.pos,
                            path,
                            format!("{what} needs `min`+`max` or `mean` (>= 1) [+ `stddev`]"),
                        );
                        None
                    }
                }
            }
        }
        _ => {
            cx.error(n.pos, path, format!("{what} must be a number or a mapping"));
            None
        }
    }
}

fn host_of_url(url: Option<&str>) -> Option<(String, Option<u16>)> {
    let rest = url?.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority.rsplit('@').next()?;
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            Some((h.to_string(), p.parse().ok()))
        }
        _ => Some((authority.to_string(), None)),
    }
}

fn decode_workload(
    cx: &mut Ctx,
    f: &Fields,
    kind: ServiceKind,
    starts_service: bool,
    service_url: Option<&str>,
    port: Option<u16>,
) -> Option<Workload> {
    let pos = f.pos();
    Some(match kind {
        ServiceKind::Ollama | ServiceKind::Vllm | ServiceKind::Triton => {
            let model = f.nonempty_string(cx, "model");
            if model.is_none() && f.get("model").is_none() {
                cx.error(
                    pos,
                    &f.p("model"),
                    format!("service_type {kind} needs `model`"),
                );
            }
            let default_api = match kind {
                ServiceKind::Ollama => LlmApi::OllamaGenerate,
                ServiceKind::Vllm => LlmApi::Completions,
                _ => LlmApi::TritonGenerate,
            };
            let api = f
                .enum_of(
                    cx,
                    "api",
                    &[
                        (
                            "generate",
                            if kind == ServiceKind::Triton {
                                LlmApi::TritonGenerate
                            } else {
                                LlmApi::OllamaGenerate
                            },
                        ),
                        (
                            "chat",
                            if kind == ServiceKind::Ollama {
                                LlmApi::OllamaChat
                            } else {
                                LlmApi::ChatCompletions
                            },
                        ),
                        ("completions", LlmApi::Completions),
                        ("chat_completions", LlmApi::ChatCompletions),
                        ("infer", LlmApi::TritonInfer),
                    ],
                )
                .unwrap_or(default_api);
            let ok_api = match kind {
                ServiceKind::Ollama => matches!(
                    api,
                    LlmApi::OllamaGenerate
                        | LlmApi::OllamaChat
                        | LlmApi::Completions
                        | LlmApi::ChatCompletions
                ),
                ServiceKind::Vllm => matches!(api, LlmApi::Completions | LlmApi::ChatCompletions),
                _ => matches!(api, LlmApi::TritonGenerate | LlmApi::TritonInfer),
            };
            if !ok_api {
                cx.error(
                    f.get("api").map(|n| n.pos).unwrap_or(pos),
                    &f.p("api"),
                    format!("api {api:?} is not served by service_type {kind}"),
                );
            }
            let prompts = match f.get("prompt") {
                None => PromptSource::Synthetic {
                    input_tokens: TokenDist::Fixed { tokens: 128 },
                },
                Some(n) => {
                    let p = f.p("prompt");
                    cx.check_keys(n, &p, &["input_tokens", "file"], "`prompt`");
                    let pf = Fields::new(Some(n), p.clone());
                    if let Some(file) = pf.nonempty_string(cx, "file") {
                        PromptSource::File { path: file.into() }
                    } else {
                        let it = match pf.get("input_tokens") {
                            Some(n) => {
                                token_dist(cx, n, &format!("{p}.input_tokens"), "`input_tokens`")?
                            }
                            None => TokenDist::Fixed { tokens: 128 },
                        };
                        PromptSource::Synthetic { input_tokens: it }
                    }
                }
            };
            if f.get("output_tokens").is_some() && f.get("max_tokens").is_some() {
                cx.error(
                    f.get("max_tokens").unwrap().pos,
                    &f.p("max_tokens"),
                    "give `output_tokens` or `max_tokens`, not both",
                );
            }
            let output_tokens = match f.get("output_tokens").or(f.get("max_tokens")) {
                Some(n) => token_dist(cx, n, &f.p("output_tokens"), "`output_tokens`")?,
                None => TokenDist::Fixed { tokens: 128 },
            };
            let slo = match f.get("slo") {
                None => Slo::default(),
                Some(n) => {
                    let p = f.p("slo");
                    cx.check_keys(n, &p, &["ttft_ms", "tpot_ms", "e2el_ms"], "`slo`");
                    let sf = Fields::new(Some(n), p);
                    Slo {
                        ttft_ms: sf.nonneg_f64(cx, "ttft_ms"),
                        tpot_ms: sf.nonneg_f64(cx, "tpot_ms"),
                        e2el_ms: sf.nonneg_f64(cx, "e2el_ms"),
                    }
                }
            };
            let temperature = f.nonneg_f64(cx, "temperature").unwrap_or(0.0);
            Workload::Llm(LlmWorkload {
                api,
                model: model.unwrap_or_default(),
                prompts,
                output_tokens,
                ignore_eos: f.bool(cx, "ignore_eos").unwrap_or(false),
                temperature,
                slo,
                pull_model: f.bool(cx, "pull_model").unwrap_or(false),
                api_key: f.secret(cx, "api_key"),
            })
        }
        ServiceKind::Vectordb => {
            let backend = f
                .enum_of(
                    cx,
                    "backend",
                    &[
                        ("chromadb", VectorBackend::Chromadb),
                        ("chroma", VectorBackend::Chromadb),
                        ("faiss", VectorBackend::Faiss),
                        ("weaviate", VectorBackend::Weaviate),
                    ],
                )
                .unwrap_or(VectorBackend::Chromadb);
            let mix = decode_mix(
                cx,
                f,
                "operation_mix",
                &[
                    ("insert", VectorOp::Insert),
                    ("search", VectorOp::Search),
                    ("update", VectorOp::Update),
                    ("delete", VectorOp::Delete),
                ],
                &[
                    (VectorOp::Insert, 0.2),
                    (VectorOp::Search, 0.7),
                    (VectorOp::Update, 0.05),
                    (VectorOp::Delete, 0.05),
                ],
            );
            let vectors = match f.string(cx, "vectors") {
                None => VectorSource::Random,
                Some(v) if v == "random" => VectorSource::Random,
                Some(v) => VectorSource::File { path: v.into() },
            };
            let index = match f.get("index") {
                None => FaissIndex::Flat,
                Some(n) if n.as_scalar().is_some() => match n.as_scalar() {
                    Some("flat") => FaissIndex::Flat,
                    Some("hnsw") => FaissIndex::Hnsw { m: 32 },
                    Some(o) => {
                        cx.error_help(
                            n.pos,
                            &f.p("index"),
                            format!("unknown index `{o}`"),
                            "expected flat or hnsw".into(),
                        );
                        FaissIndex::Flat
                    }
                    None => unreachable!(),
                },
                Some(n) => {
                    let p = f.p("index");
                    cx.check_keys(n, &p, &["type", "m"], "`index`");
                    let inf = Fields::new(Some(n), p);
                    match inf.enum_of(cx, "type", &[("flat", 0u8), ("hnsw", 1u8)]) {
                        Some(1) => FaissIndex::Hnsw {
                            m: inf.u32_range(cx, "m", 2, 512).unwrap_or(32),
                        },
                        _ => FaissIndex::Flat,
                    }
                }
            };
            let (url_host, url_port) = host_of_url(service_url)
                .map(|(h, p)| (Some(h), p))
                .unwrap_or((None, None));
            Workload::Vectordb(VectorDbWorkload {
                backend,
                host: f
                    .nonempty_string(cx, "host")
                    .or(url_host)
                    .unwrap_or_else(|| "127.0.0.1".into()),
                port: port.or(url_port),
                collection_name: f
                    .nonempty_string(cx, "collection_name")
                    .unwrap_or_else(|| "factorybench".into()),
                dimension: f.u32_range(cx, "dimension", 1, 65_536).unwrap_or(384),
                mix,
                batch_size: f.u32_range(cx, "batch_size", 1, 100_000).unwrap_or(10),
                search_k: f.u32_range(cx, "search_k", 1, 10_000).unwrap_or(10),
                vectors,
                dataset_size: f.u64(cx, "dataset_size").unwrap_or(1000),
                recall_queries: f.u32_range(cx, "recall_queries", 0, 100_000).unwrap_or(100),
                index,
            })
        }
        ServiceKind::Database => {
            let backend = f
                .enum_of(
                    cx,
                    "backend",
                    &[
                        ("postgresql", DatabaseBackend::Postgresql),
                        ("postgres", DatabaseBackend::Postgresql),
                    ],
                )
                .unwrap_or(DatabaseBackend::Postgresql);
            let mix = decode_mix(
                cx,
                f,
                "operation_mix",
                &[
                    ("select", DbOp::Select),
                    ("insert", DbOp::Insert),
                    ("update", DbOp::Update),
                    ("delete", DbOp::Delete),
                ],
                &[
                    (DbOp::Select, 0.7),
                    (DbOp::Insert, 0.1),
                    (DbOp::Update, 0.15),
                    (DbOp::Delete, 0.05),
                ],
            );
            let (url_host, url_port) = host_of_url(service_url)
                .map(|(h, p)| (Some(h), p))
                .unwrap_or((None, None));
            let table_name = f
                .nonempty_string(cx, "table_name")
                .unwrap_or_else(|| "factorybench".into());
            let ident_ok = table_name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && table_name.len() <= 63
                && table_name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ident_ok {
                cx.error_help(
                    f.get("table_name").map(|n| n.pos).unwrap_or(pos),
                    &f.p("table_name"),
                    format!("invalid table_name `{}`", table_name.escape_debug()),
                    "use a plain SQL identifier: letters, digits, _ (max 63)".into(),
                );
            }
            let password = f
                .secret(cx, "password")
                .or(starts_service.then_some(Secret::Generated));
            Workload::Database(DatabaseWorkload {
                backend,
                host: f
                    .nonempty_string(cx, "host")
                    .or(url_host)
                    .unwrap_or_else(|| "127.0.0.1".into()),
                port: port.or(url_port).unwrap_or(5432),
                database: f
                    .nonempty_string(cx, "database")
                    .unwrap_or_else(|| "factorybench".into()),
                user: f
                    .nonempty_string(cx, "user")
                    .unwrap_or_else(|| "factorybench".into()),
                password,
                mix,
                batch_size: f.u32_range(cx, "batch_size", 1, 100_000).unwrap_or(1),
                table_name,
                seed_rows: f.u64(cx, "seed_rows").unwrap_or(10_000),
                keep_table: f.bool(cx, "keep_table").unwrap_or(false),
            })
        }
        ServiceKind::S3 => {
            let mix = decode_mix(
                cx,
                f,
                "operation_mix",
                &[
                    ("put", S3Op::Put),
                    ("get", S3Op::Get),
                    ("list", S3Op::List),
                    ("delete", S3Op::Delete),
                ],
                &[
                    (S3Op::Put, 0.3),
                    (S3Op::Get, 0.6),
                    (S3Op::List, 0.05),
                    (S3Op::Delete, 0.05),
                ],
            );
            let endpoint = f
                .nonempty_string(cx, "endpoint_url")
                .or(service_url.map(String::from))
                .or(port.map(|p| format!("http://127.0.0.1:{p}")));
            match (&endpoint, f.get("endpoint_url")) {
                (Some(u), Some(n)) => {
                    check_url(cx, n.pos, &f.p("endpoint_url"), u, &["http", "https"])
                }
                (None, _) => cx.error(
                    pos,
                    &f.p("endpoint_url"),
                    "service_type s3 needs `endpoint_url` (or `service_url` / `port`)",
                ),
                _ => {}
            }
            let key = |cx: &mut Ctx, name: &str| match f.secret(cx, name) {
                Some(s) => Some(s),
                None if starts_service => Some(Secret::Generated),
                None => {
                    cx.error_help(
                        pos,
                        &f.p(name),
                        format!("service_type s3 needs `{name}`"),
                        format!(
                            "write `{name}: ${{VAR}}`, `{name}_env: VAR` or `{name}_file: PATH`"
                        ),
                    );
                    None
                }
            };
            let access_key = key(cx, "access_key");
            let secret_key = key(cx, "secret_key");
            let bucket = f
                .nonempty_string(cx, "bucket_name")
                .unwrap_or_else(|| "factorybench".into());
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
                && bucket.starts_with(|c: char| c.is_ascii_alphanumeric());
            if !bucket_ok {
                cx.error_help(
                    f.get("bucket_name").map(|n| n.pos).unwrap_or(pos),
                    &f.p("bucket_name"),
                    format!("invalid S3 bucket name `{}`", bucket.escape_debug()),
                    "3-63 characters: lowercase letters, digits, '-' and '.'".into(),
                );
            }
            Workload::S3(S3Workload {
                endpoint_url: endpoint.unwrap_or_default(),
                access_key: access_key?,
                secret_key: secret_key?,
                bucket_name: bucket,
                region: f
                    .nonempty_string(cx, "region")
                    .unwrap_or_else(|| "us-east-1".into()),
                mix,
                object_sizes: decode_sizes(cx, f, "object_sizes", &[(4096, 0.5), (1 << 20, 0.5)]),
                addressing: f
                    .enum_of(
                        cx,
                        "addressing",
                        &[
                            ("path", S3Addressing::Path),
                            ("virtual_host", S3Addressing::VirtualHost),
                            ("virtual", S3Addressing::VirtualHost),
                        ],
                    )
                    .unwrap_or(S3Addressing::Path),
                cleanup: f.bool(cx, "cleanup").unwrap_or(true),
            })
        }
        ServiceKind::FileStorage => {
            let base_path = f.nonempty_string(cx, "base_path");
            if base_path.is_none() && f.get("base_path").is_none() {
                cx.error(
                    pos,
                    &f.p("base_path"),
                    "service_type file_storage needs `base_path`",
                );
            }
            let mix = decode_mix(
                cx,
                f,
                "operation_mix",
                &[
                    ("write", FileOp::Write),
                    ("read", FileOp::Read),
                    ("stat", FileOp::Stat),
                    ("delete", FileOp::Delete),
                ],
                &[
                    (FileOp::Write, 0.3),
                    (FileOp::Read, 0.5),
                    (FileOp::Stat, 0.15),
                    (FileOp::Delete, 0.05),
                ],
            );
            let sync_mode = match f.get("sync_mode") {
                None => SyncMode::None,
                Some(n) => match n.as_scalar() {
                    Some("true" | "True" | "yes") => SyncMode::Fsync,
                    Some("false" | "False" | "no") => SyncMode::None,
                    _ => f
                        .enum_of(
                            cx,
                            "sync_mode",
                            &[
                                ("none", SyncMode::None),
                                ("fsync", SyncMode::Fsync),
                                ("fdatasync", SyncMode::Fdatasync),
                                ("dsync", SyncMode::Dsync),
                                ("o_dsync", SyncMode::Dsync),
                            ],
                        )
                        .unwrap_or(SyncMode::None),
                },
            };
            let io_size_bytes = match f.get("io_size") {
                None => None,
                Some(n) => match parse_size_bytes(n.as_scalar().unwrap_or_default()) {
                    Ok(s) if s > 0 => Some(s),
                    Ok(_) => {
                        cx.error(n.pos, &f.p("io_size"), "`io_size` must be greater than 0");
                        None
                    }
                    Err(e) => {
                        cx.error(n.pos, &f.p("io_size"), format!("invalid `io_size`: {e}"));
                        None
                    }
                },
            };
            let use_direct_io = f.bool(cx, "use_direct_io").unwrap_or(false);
            if let (true, Some(io)) = (use_direct_io, io_size_bytes) {
                if io % 512 != 0 {
                    cx.error(f.get("io_size").unwrap().pos, &f.p("io_size"), format!("with use_direct_io, `io_size` must be a multiple of 512 bytes, found {io}"));
                }
            }
            Workload::FileStorage(FileStorageWorkload {
                base_path: base_path.unwrap_or_default().into(),
                mix,
                file_sizes: decode_sizes(cx, f, "file_sizes", &[(4096, 0.5), (1 << 20, 0.5)]),
                use_direct_io,
                sync_mode,
                working_set_files: f
                    .u32_range(cx, "working_set_files", 1, 1_000_000)
                    .unwrap_or(16),
                io_size_bytes,
                io_engine: f
                    .enum_of(
                        cx,
                        "io_engine",
                        &[
                            ("auto", IoEngine::Auto),
                            ("io_uring", IoEngine::IoUring),
                            ("threads", IoEngine::Threads),
                        ],
                    )
                    .unwrap_or(IoEngine::Auto),
            })
        }
        ServiceKind::Http => {
            let url = f
                .nonempty_string(cx, "url")
                .or(service_url.map(String::from))
                .or(port.map(|p| format!("http://127.0.0.1:{p}/")));
            if url.is_none() {
                cx.error(
                    pos,
                    &f.p("url"),
                    "service_type http needs `url` (or `service_url` / `port`)",
                );
            }
            let method = f
                .nonempty_string(cx, "method")
                .unwrap_or_else(|| "GET".into())
                .to_ascii_uppercase();
            if !["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]
                .contains(&method.as_str())
            {
                cx.error(
                    f.get("method").map(|n| n.pos).unwrap_or(pos),
                    &f.p("method"),
                    format!("unsupported HTTP method `{method}`"),
                );
            }
            let mut headers = Vec::new();
            if let Some(n) = f.get("headers") {
                match n.as_map() {
                    Some(m) => {
                        for (k, v) in m {
                            match (k.as_scalar(), v.as_scalar()) {
                                (Some(k), Some(v))
                                    if !k.contains([':', '\n', '\r'])
                                        && !v.contains(['\n', '\r']) =>
                                {
                                    headers.push((k.to_string(), v.to_string()))
                                }
                                _ => cx.error(
                                    k.pos,
                                    &f.p("headers"),
                                    "header names and values must be single-line strings",
                                ),
                            }
                        }
                    }
                    None => cx.error(n.pos, &f.p("headers"), "`headers` must be a mapping"),
                }
            }
            let expect_status = f
                .get("expect_status")
                .and_then(|_| f.u32_range(cx, "expect_status", 100, 599))
                .map(|v| v as u16);
            Workload::Http(HttpWorkload {
                method,
                url: url.unwrap_or_default(),
                headers,
                body: f.string(cx, "body"),
                expect_status,
            })
        }
    })
}

fn decode_sweep(cx: &mut Ctx, n: &Node, path: &str, kind: Option<ServiceKind>) -> Option<Sweep> {
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
    if m.len() != 1 {
        cx.error(
            n.pos,
            path,
            "`sweep` takes exactly one parameter (one SLURM job array per service)",
        );
        return None;
    }
    let (k, v) = &m[0];
    let param = match k.as_scalar()? {
        "client_count" => SweepParam::ClientCount,
        "requests_per_second" => SweepParam::RequestsPerSecond,
        "model" => SweepParam::Model,
        "batch_size" => SweepParam::BatchSize,
        _ => return None,
    };
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
            SweepParam::RequestsPerSecond => {
                s.parse::<f64>().is_ok_and(|v| v >= 0.0 && v.is_finite())
            }
            SweepParam::Model => !s.is_empty(),
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
    Some(Sweep { param, values })
}

/// An environment value equal to one of the service's plain secrets is a secret too
/// (e.g. `MINIO_ROOT_USER: minioadmin` when `secret_key: minioadmin`): nothing leaks by
/// coincidence into scripts, logs or reports.
fn promote_secret_lookalikes(container: &mut ContainerSpec, workload: &Workload) {
    let mut values: Vec<String> = Vec::new();
    let plain = |s: Option<&Secret>| match s {
        Some(Secret::Plain(v)) => Some(v.clone()),
        _ => None,
    };
    match workload {
        Workload::Database(d) => values.extend(plain(d.password.as_ref())),
        Workload::S3(s) => {
            values.extend(plain(Some(&s.access_key)));
            values.extend(plain(Some(&s.secret_key)));
        }
        Workload::Llm(l) => values.extend(plain(l.api_key.as_ref())),
        _ => {}
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
