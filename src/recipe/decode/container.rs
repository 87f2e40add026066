//! The `slurm` and container keys of a service (`environment`, `binds`, `container_args`).

use super::fields::*;
use super::SLURM_KEYS;
use crate::recipe::plan::*;
use crate::recipe::units::parse_slurm_time_s;
use crate::recipe::yaml::{Node, NodeKind};
use std::collections::HashSet;

pub(super) fn decode_slurm(
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
    let (time, time_limit_s) = slurm_time(cx, &f, &d, path);
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
    // sbatch spells it `--ntasks-per-node`; recipes written for sbatch use that key.
    let per_node_key = if f.get("ntasks-per-node").is_some() || d.get("ntasks-per-node").is_some() {
        "ntasks-per-node"
    } else {
        "ntasks_per_node"
    };
    let ntasks_per_node = if f.get(per_node_key).is_some() {
        f.u32_range(cx, per_node_key, 1, 1_000_000)
    } else {
        d.u32_range(&mut Ctx::default(), per_node_key, 1, 1_000_000)
    };
    let (nodes, client_nodes) = slurm_client_nodes(cx, &f, &d, path, nodes);
    // sbatch spells it `--cpus-per-task`.
    let cpus_key = if f.get("cpus-per-task").is_some() || d.get("cpus-per-task").is_some() {
        "cpus-per-task"
    } else {
        "cpus_per_task"
    };
    let cpus = if f.get(cpus_key).is_some() {
        f.u32_range(cx, cpus_key, 1, 100_000)
    } else {
        d.u32_range(&mut Ctx::default(), cpus_key, 1, 100_000)
    };
    let grace = if f.get("signal_grace").is_some() {
        f.u32_range(cx, "signal_grace", 10, 3600)
    } else {
        d.u32_range(&mut Ctx::default(), "signal_grace", 10, 3600)
    };
    let extra = slurm_extra(cx, &f, &d, path);
    let mut modules = d.string_list(&mut Ctx::default(), "modules");
    modules.extend(f.string_list(cx, "modules"));
    let spec = SlurmSpec {
        partition: pick!(nonempty_string, "partition"),
        account: pick!(nonempty_string, "account"),
        time,
        time_limit_s,
        nodes: nodes.unwrap_or(1),
        ntasks: ntasks.unwrap_or(1),
        ntasks_per_node,
        client_nodes,
        client_partition: pick!(nonempty_string, "client_partition"),
        cpus_per_task: cpus,
        mem: pick!(nonempty_string, "mem"),
        qos: pick!(nonempty_string, "qos"),
        gres: pick!(nonempty_string, "gres"),
        constraint: pick!(nonempty_string, "constraint"),
        extra,
        modules,
        signal_grace_s: grace.unwrap_or(60),
    };
    check_slurm_spec(cx, &f, &d, path, &spec);
    spec
}

/// `time` (service first, then `global.slurm`) and the limit in seconds.
fn slurm_time(cx: &mut Ctx, f: &Fields, d: &Fields, path: &str) -> (Option<String>, Option<u64>) {
    let time = if f.get("time").is_some() {
        f.nonempty_string(cx, "time")
    } else {
        d.nonempty_string(&mut Ctx::default(), "time")
    };
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
    (time, time_limit_s)
}

/// `client_nodes` with `nodes`: the job's nodes and those that run the clients.
fn slurm_client_nodes(
    cx: &mut Ctx,
    f: &Fields,
    d: &Fields,
    path: &str,
    nodes: Option<u32>,
) -> (Option<u32>, u32) {
    let explicit_client_nodes = if f.get("client_nodes").is_some() {
        f.u32_range(cx, "client_nodes", 0, 10_000)
    } else {
        d.u32_range(&mut Ctx::default(), "client_nodes", 0, 10_000)
    };
    // The seed's multi-node form, `nodes: N` (with `ntasks-per-node`), and no `client_nodes`:
    // the service takes the job's first node and the clients run on the other N-1. Without
    // this rule the job asked for N nodes and one task, and SLURM shrank it to one node.
    let client_nodes = match (explicit_client_nodes, nodes) {
        (Some(c), _) => c,
        (None, Some(n)) if n > 1 => n - 1,
        _ => 0,
    };
    let nodes = if client_nodes > 0 {
        match nodes {
            Some(n) if n != client_nodes + 1 && f.get("nodes").is_some() => {
                cx.error_help(
                    f.get("nodes").map(|n| n.pos).unwrap_or_default(),
                    &format!("{path}.nodes"),
                    format!(
                        "`nodes: {n}` does not match `client_nodes: {client_nodes}` (the service takes one node, each client node one more)"
                    ),
                    format!("write `nodes: {}` or leave `nodes` out", client_nodes + 1),
                );
                Some(n)
            }
            _ => Some(client_nodes + 1),
        }
    } else {
        nodes
    };
    (nodes, client_nodes)
}

/// `extra` #SBATCH options: `global.slurm`'s, then the service's; each one long option.
fn slurm_extra(cx: &mut Ctx, f: &Fields, d: &Fields, path: &str) -> Vec<String> {
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
    extra
}

/// Values SLURM would misread, a GPU partition without a GPU, a limit inside the grace.
fn check_slurm_spec(cx: &mut Ctx, f: &Fields, d: &Fields, path: &str, spec: &SlurmSpec) {
    for (key, v) in [
        ("partition", &spec.partition),
        ("client_partition", &spec.client_partition),
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
    if let Some(m) = spec.mem.as_deref() {
        if !m.chars().any(char::is_whitespace) && crate::recipe::plan::mem_mib(m).is_none() {
            let pos = f
                .get("mem")
                .or(d.get("mem"))
                .map(|n| n.pos)
                .unwrap_or_default();
            cx.error_help(
                pos,
                &format!("{path}.mem"),
                format!("`mem: {m}` is not a memory size as sbatch spells it"),
                "a whole number with an optional unit K, M (the default), G or T, e.g. `mem: 16G`; \
                 `0` asks for all of a node's memory"
                    .into(),
            );
        }
    }
    // A GPU partition without a GPU request: SLURM gives the job no GPU and the container gets
    // no --nv / CDI device, so an LLM server falls back to CPU (or fails) silently.
    if let Some(part) = &spec.partition {
        let gpu_partition = part.to_ascii_lowercase().contains("gpu");
        let wants_gpu = spec
            .gres
            .as_deref()
            .is_some_and(|g| g.split(',').any(|g| g.trim_start().starts_with("gpu")));
        if gpu_partition && !wants_gpu {
            let pos = f
                .get("partition")
                .or(d.get("partition"))
                .map(|n| n.pos)
                .unwrap_or_default();
            cx.warn(
                pos,
                &format!("{path}.partition"),
                format!("partition `{part}` looks like a GPU partition but no GPU is requested: the job gets no GPU and the container no GPU flag"),
                Some("add `gres: gpu:1` (renders --gres=gpu:1 and --nv / the CDI device), or use a CPU partition".into()),
            );
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
}

pub(super) fn decode_container(cx: &mut Ctx, f: &Fields) -> ContainerSpec {
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
