//! `render`: validated [`Plan`] → one SLURM batch script per service. Pure: no I/O, no clock,
//! no randomness; the same plan and options give the same bytes.
//!
//! Templates live in `templates/slurm/` and are embedded in the binary; a site can override any
//! of them (same file name) with `--templates DIR`. The environment is strict (an undefined
//! variable is an error) and has a `shell_quote` filter: every recipe value that reaches the shell
//! goes through it. [`campaign`] writes the campaign directory (the one impure part).

pub mod campaign;
pub mod explain;
pub mod launch;

use crate::recipe::decode::is_env_name;
use crate::recipe::{EnvValue, Plan, Runtime, Secret, Service, SweepParam};
use launch::{Launch, Word, BIND_HOST};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The built-in templates (file name under `templates/slurm/`, source).
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    (
        "service.sbatch.j2",
        include_str!("../../templates/slurm/service.sbatch.j2"),
    ),
    (
        "runtime/apptainer.sh.j2",
        include_str!("../../templates/slurm/runtime/apptainer.sh.j2"),
    ),
    (
        "runtime/podman.sh.j2",
        include_str!("../../templates/slurm/runtime/podman.sh.j2"),
    ),
    (
        "runtime/host.sh.j2",
        include_str!("../../templates/slurm/runtime/host.sh.j2"),
    ),
    (
        "runtime/external.sh.j2",
        include_str!("../../templates/slurm/runtime/external.sh.j2"),
    ),
];

/// The entry template for a service's batch script.
pub const SERVICE_TEMPLATE: &str = "service.sbatch.j2";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read site template {path}: {source}")]
    TemplateIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template error: {0}")]
    Template(String),
    #[error("service `{service}`: `{var}` is not a valid environment variable name (letters, digits, _)")]
    InvalidEnvName { service: String, var: String },
    #[error("campaign directory `{0}` must be an absolute path of the characters A-Z a-z 0-9 . _ - / + @ , : (it is written into #SBATCH lines)")]
    UnsafeCampaignDir(String),
}

/// The shell quoter, here for the templates' `shell_quote` filter and render's callers.
pub use crate::shell::quote as shell_quote;

/// Whether `dir` can be written into `#SBATCH --output=` lines and quoted safely.
pub fn campaign_dir_ok(dir: &str) -> bool {
    dir.starts_with('/')
        && dir.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'_' | b'-' | b'.' | b'/' | b'+' | b'@' | b',' | b':')
        })
}

/// Host environment variables that cross Apptainer's `--cleanenv` (and reach a Podman container)
/// when they are set in the job's environment and the recipe does not set them: proxies, and
/// the GPUs SLURM assigned. Passed by name, never written into the script. Tokens are not here:
/// the ones a kind's server reads (`HF_TOKEN`, NIM's `NGC_API_KEY`: `Kind::ambient_secrets`)
/// become secrets of the service when set where the recipe is compiled, and travel through the
/// campaign's 0600 secrets file.
pub const PASS_THROUGH_ENV: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "CUDA_VISIBLE_DEVICES",
];

/// Where the model caches of a containerised LLM server go by default: `<campaign>/cache`,
/// bound at this path, with the server's cache variable pointing into it (Apptainer binds
/// `$HOME`, so without it Ollama's and Hugging Face's caches fill the user's home).
pub const MODEL_CACHE_MOUNT: &str = "/fb-cache";

/// Everything outside the plan that a script depends on.
#[derive(Debug, Clone, Serialize)]
pub struct RenderOptions {
    /// Absolute path of the campaign directory on the cluster's shared filesystem.
    pub campaign_dir: String,
    /// The factorybench binary the script runs (absolute path of the binary that compiled it,
    /// or `FACTORYBENCH_BIN`); `FB_BIN` in the job's environment still overrides it.
    pub fb_bin: String,
}

/// The template engine with the built-in templates, optionally overridden by a site directory.
pub struct Renderer {
    env: Environment<'static>,
}

impl Renderer {
    /// Built-in templates only.
    pub fn new() -> Renderer {
        Self::with_overrides(BTreeMap::new())
    }

    /// Built-in templates, with every `*.j2` file under `dir` (relative name, e.g.
    /// `runtime/apptainer.sh.j2`) replacing or adding to them.
    pub fn with_site_templates(dir: &Path) -> Result<Renderer, RenderError> {
        let mut files = BTreeMap::new();
        collect_templates(dir, dir, &mut files)?;
        Ok(Self::with_overrides(files))
    }

    fn with_overrides(overrides: BTreeMap<String, String>) -> Renderer {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("shell_quote", |s: String| shell_quote(&s));
        env.set_loader(move |name| {
            if let Some(src) = overrides.get(name) {
                return Ok(Some(src.clone()));
            }
            Ok(BUILTIN_TEMPLATES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| s.to_string()))
        });
        Renderer { env }
    }

    /// The batch script of one service.
    pub fn render_service(
        &self,
        plan: &Plan,
        svc: &Service,
        opts: &RenderOptions,
    ) -> Result<String, RenderError> {
        self.render_script(plan, svc, opts, false)
    }

    /// The capacity-search batch script of a service with `capacity_search`
    /// (`scripts/<service>.capacity.sbatch`, submitted by `submit --capacity`): the same
    /// lifecycle as [`Renderer::render_service`], with `factorybench capacity` as the measured
    /// step. One job on one node (a sweep and client nodes do not apply: the search varies the
    /// rate itself). None for a service without `capacity_search`.
    pub fn render_capacity(
        &self,
        plan: &Plan,
        svc: &Service,
        opts: &RenderOptions,
    ) -> Result<Option<String>, RenderError> {
        if svc.capacity_search.is_none() {
            return Ok(None);
        }
        let mut one = svc.clone();
        one.sweep = None;
        one.slurm.client_nodes = 0;
        one.slurm.nodes = 1;
        self.render_script(plan, &one, opts, true).map(Some)
    }

    fn render_script(
        &self,
        plan: &Plan,
        svc: &Service,
        opts: &RenderOptions,
        capacity: bool,
    ) -> Result<String, RenderError> {
        if !campaign_dir_ok(&opts.campaign_dir) {
            return Err(RenderError::UnsafeCampaignDir(opts.campaign_dir.clone()));
        }
        let mut ctx = ScriptCtx::new(plan, svc, opts)?;
        ctx.capacity = capacity;
        let tmpl = self.env.get_template(SERVICE_TEMPLATE)?;
        Ok(tmpl.render(&ctx)?)
    }
}

impl From<minijinja::Error> for RenderError {
    fn from(e: minijinja::Error) -> Self {
        // The error, its causes (an error inside an included template is a cause), and the
        // template excerpt minijinja keeps for debugging.
        use std::error::Error;
        let mut msg = e.to_string();
        let mut src = e.source();
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        RenderError::Template(format!("{msg}\n{}", e.display_debug_info()))
    }
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

fn collect_templates(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, String>,
) -> Result<(), RenderError> {
    let io = |source| RenderError::TemplateIo {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        if path.is_dir() {
            collect_templates(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "j2") {
            let text =
                std::fs::read_to_string(&path).map_err(|source| RenderError::TemplateIo {
                    path: path.clone(),
                    source,
                })?;
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.insert(rel.to_string_lossy().replace('\\', "/"), text);
        }
    }
    Ok(())
}

/// Render every service of the plan (name, script), in recipe order.
pub fn render_all(
    r: &Renderer,
    plan: &Plan,
    opts: &RenderOptions,
) -> Result<Vec<(String, String)>, RenderError> {
    plan.services
        .iter()
        .map(|s| Ok((s.name.clone(), r.render_service(plan, s, opts)?)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The template context.

#[derive(Debug, Serialize)]
struct ScriptCtx {
    factorybench_version: &'static str,
    benchmark_name: String,
    recipe_sha256: String,
    campaign_dir: String,
    fb_bin: String,
    service: SvcCtx,
    slurm: SlurmCtx,
    sweep: Option<SweepCtx>,
    readiness_timeout_s: u32,
    secrets: SecretsCtx,
    container: ContainerCtx,
    /// `{"host":...,"port":...,"url":...}` members of the endpoint file (JSON text).
    endpoint_json: String,
    /// The capacity-search job (`factorybench capacity` instead of `run`).
    capacity: bool,
    /// Client nodes: seconds from the batch step's start of the srun step to the common
    /// instant at which every node starts measuring (the warmup, and at least
    /// [`MIN_CLIENT_LEAD_S`] for srun to launch the runners and their connections to open).
    client_lead_s: u64,
}

/// The least lead, seconds, from starting the client nodes' srun step to their common
/// measuring instant: launching a step on every node and opening connections takes seconds.
pub const MIN_CLIENT_LEAD_S: u64 = 5;

#[derive(Debug, Serialize)]
struct SvcCtx {
    name: String,
    kind: String,
    runtime: String,
    image: Option<String>,
    port: Option<u16>,
    url: Option<String>,
    gpu: bool,
    /// Shell expression of the address the service binds (`127.0.0.1`, or `$FB_BIND_ADDR`, the
    /// node's own address, when clients run on other nodes).
    bind_host: &'static str,
    start_command: Vec<Word>,
    /// The service started by this job (not `external`).
    started: bool,
}

#[derive(Debug, Serialize)]
struct SlurmCtx {
    partition: Option<String>,
    account: Option<String>,
    time: Option<String>,
    nodes: u32,
    ntasks: u32,
    ntasks_per_node: Option<u32>,
    /// Client nodes (one runner each, `srun`); 0: the runner runs in the batch step.
    client_nodes: u32,
    cpus_per_task: Option<u32>,
    mem: Option<String>,
    qos: Option<String>,
    gres: Option<String>,
    constraint: Option<String>,
    extra: Vec<String>,
    modules: Vec<String>,
    signal_grace_s: u32,
    /// A heterogeneous job (GPU service, clients on other nodes): the clients' component.
    het_clients: Option<HetClientsCtx>,
}

/// The clients' component of a heterogeneous job (`#SBATCH hetjob`): CPU nodes, one task each.
#[derive(Debug, Serialize)]
struct HetClientsCtx {
    partition: Option<String>,
    nodes: u32,
}

#[derive(Debug, Serialize)]
struct SweepCtx {
    param: &'static str,
    last_index: usize,
    values: Vec<String>,
    /// Shell variable holding the swept model (model sweeps only).
    model_var: Option<&'static str>,
}

#[derive(Debug, Default, Serialize)]
struct SecretsCtx {
    /// Names stored in `secrets/<service>.env` (values never rendered).
    file_names: Vec<String>,
    /// `NAME` takes the value of environment variable `var` (checked, never printed).
    from_env: Vec<FromEnv>,
    /// `NAME` takes the first line of file `path` on the node.
    from_file: Vec<FromFile>,
    /// `NAME` takes the value of another secret variable `from` of the script.
    aliases: Vec<Alias>,
}

#[derive(Debug, Serialize)]
struct FromEnv {
    name: String,
    var: String,
}

#[derive(Debug, Serialize)]
struct FromFile {
    name: String,
    path: String,
}

#[derive(Debug, Serialize)]
struct Alias {
    name: String,
    from: String,
}

#[derive(Debug, Serialize)]
struct ContainerCtx {
    /// Non-secret environment: [name, value].
    env: Vec<(String, String)>,
    /// Names of secret variables passed into the container (values come from the script's
    /// environment, never from its text).
    secret_names: Vec<String>,
    binds: Vec<BindCtx>,
    extra_args: Vec<String>,
    args: Vec<Word>,
    scratch: Vec<(String, String)>,
    writable_tmpfs: bool,
    /// `<campaign>/cache`, created before the start: the default model cache (bound at
    /// [`MODEL_CACHE_MOUNT`]), when the service has one.
    cache_dir: Option<String>,
    /// [`PASS_THROUGH_ENV`] names the container gets from the job's environment when set
    /// (those the recipe sets are left out).
    passthrough: Vec<String>,
    /// Environment that names the bind address (clients on other nodes): set in the script
    /// from `$FB_BIND_ADDR` and passed by name (its name is also in `secret_names`).
    bound_env: Vec<BoundEnv>,
}

#[derive(Debug, Serialize)]
struct BoundEnv {
    name: String,
    value: Word,
}

#[derive(Debug, Serialize)]
struct BindCtx {
    src: String,
    dst: String,
    ro: bool,
    /// `src:dst[:ro]` as Apptainer and Podman write it.
    spec: String,
}

impl ScriptCtx {
    fn new(plan: &Plan, svc: &Service, opts: &RenderOptions) -> Result<ScriptCtx, RenderError> {
        let model_sweep = svc.sweep.as_ref().is_some_and(|s| {
            s.param == SweepParam::Model || s.axes.iter().any(|(p, _)| *p == SweepParam::Model)
        });
        let model_var = model_sweep.then_some("FB_MODEL");
        let started = svc.runtime != Runtime::External;
        let l: Launch = match svc.runtime {
            Runtime::Apptainer | Runtime::Podman | Runtime::Host => launch::launch(svc, model_var),
            Runtime::External => Launch::default(),
        };
        let port = svc.endpoint.port;
        let multi_node = svc.slurm.client_nodes > 0 && started;
        let het = svc.heterogeneous();

        let mut secrets = secrets_ctx(svc);
        let mut container_secret_names = Vec::new();
        let mut plain_env = Vec::new();
        for e in &svc.container.env {
            match &e.value {
                EnvValue::Secret(_) => container_secret_names.push(e.name.clone()),
                EnvValue::Plain(_) if secrets.file_names.contains(&e.name) => {
                    container_secret_names.push(e.name.clone())
                }
                EnvValue::Plain(v) => plain_env.push((e.name.clone(), v.clone())),
            }
        }
        let mut env = l.env.clone();
        env.extend(plain_env);
        let (binds, cache_dir) = binds_and_model_cache(svc, opts, &mut env);
        // With clients on other nodes a bind address carried in the environment (Ollama's
        // `OLLAMA_HOST=127.0.0.1:PORT`, or the recipe's own) must name the node's address too,
        // as the arguments do: such a variable is set in the script from `$FB_BIND_ADDR` and
        // passed into the container by name.
        let mut bound_env = Vec::new();
        if multi_node {
            env.retain(|(name, value)| {
                if value.contains(BIND_HOST) {
                    bound_env.push(BoundEnv {
                        name: name.clone(),
                        value: bind_word(Word::lit(value.clone()), true),
                    });
                    false
                } else {
                    true
                }
            });
        }
        for (name, from) in &l.secret_env {
            secrets.aliases.push(Alias {
                name: name.clone(),
                from: from.clone(),
            });
            container_secret_names.push(name.clone());
        }
        container_secret_names.extend(bound_env.iter().map(|b| b.name.clone()));
        let passthrough: Vec<String> = PASS_THROUGH_ENV
            .iter()
            .filter(|n| {
                !env.iter().any(|(k, _)| k == *n) && !container_secret_names.iter().any(|e| e == *n)
            })
            .map(|n| n.to_string())
            .collect();

        let (url, endpoint_json) = endpoint_members(svc, started);
        // The validator rejects these already; a Plan built in code gets the same guarantee.
        if let Some(bad) = secrets.from_env.iter().find(|s| !is_env_name(&s.var)) {
            return Err(RenderError::InvalidEnvName {
                service: svc.name.clone(),
                var: bad.var.clone(),
            });
        }
        Ok(ScriptCtx {
            capacity: false,
            client_lead_s: (svc.load.warmup_s.ceil() as u64).max(MIN_CLIENT_LEAD_S),
            factorybench_version: env!("CARGO_PKG_VERSION"),
            benchmark_name: plan.benchmark.name.clone(),
            recipe_sha256: plan.source_sha256.clone(),
            campaign_dir: opts.campaign_dir.clone(),
            fb_bin: opts.fb_bin.clone(),
            service: SvcCtx {
                name: svc.name.clone(),
                kind: svc.kind.to_string(),
                runtime: svc.runtime.as_str().into(),
                image: svc.container_image.clone(),
                port,
                url,
                gpu: svc.wants_gpu(),
                bind_host: if multi_node {
                    "$FB_BIND_ADDR"
                } else {
                    BIND_HOST
                },
                start_command: svc
                    .start_command
                    .iter()
                    .map(|c| bind_word(Word::lit(c.clone()), multi_node))
                    .collect(),
                started,
            },
            slurm: slurm_ctx(svc, het),
            sweep: sweep_ctx(svc, model_var),
            readiness_timeout_s: svc.readiness.timeout_s,
            secrets,
            container: ContainerCtx {
                env,
                secret_names: container_secret_names,
                binds,
                cache_dir,
                passthrough,
                extra_args: svc.container.extra_args.clone(),
                args: l
                    .args
                    .into_iter()
                    .map(|w| bind_word(w, multi_node))
                    .collect(),
                scratch: l.scratch,
                writable_tmpfs: l.writable_tmpfs,
                bound_env,
            },
            endpoint_json,
        })
    }
}

/// Where the script reads each secret from (the submitting environment, a file) and the
/// names in the service's secrets file.
fn secrets_ctx(svc: &Service) -> SecretsCtx {
    let mut secrets = SecretsCtx::default();
    for (name, s) in svc.secrets() {
        match s {
            Secret::Plain(_) | Secret::Generated => {}
            Secret::Env(var) => secrets.from_env.push(FromEnv {
                name: name.to_string(),
                var: var.clone(),
            }),
            Secret::File(p) => secrets.from_file.push(FromFile {
                name: name.to_string(),
                path: p.display().to_string(),
            }),
        }
    }
    secrets.file_names = secret_file_entries(svc)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    secrets
}

/// The recipe's binds, and the model cache under the campaign directory (bound, its variable
/// added to `env`) unless the recipe binds a cache or sets the variable itself.
fn binds_and_model_cache(
    svc: &Service,
    opts: &RenderOptions,
    env: &mut Vec<(String, String)>,
) -> (Vec<BindCtx>, Option<String>) {
    // Model cache under the campaign directory, unless the recipe binds a cache or sets
    // the variable itself.
    let mut binds: Vec<BindCtx> = svc
        .container
        .binds
        .iter()
        .map(|b| BindCtx {
            src: b.src.clone(),
            dst: b.dst.clone(),
            ro: b.read_only,
            spec: format!(
                "{}:{}{}",
                b.src,
                b.dst,
                if b.read_only { ":ro" } else { "" }
            ),
        })
        .collect();
    let mut cache_dir = None;
    let containerised = matches!(svc.runtime, Runtime::Apptainer | Runtime::Podman);
    // The kind's cache variable and its directory under [`MODEL_CACHE_MOUNT`].
    let cache = svc.kind.spec().model_cache().filter(|_| containerised);
    if let Some(&crate::kinds::ModelCache {
        var,
        dir: sub,
        own_cache_paths,
    }) = cache
    {
        let recipe_cache = svc.container.binds.iter().any(|b| {
            own_cache_paths.iter().chain([&MODEL_CACHE_MOUNT]).any(|p| {
                crate::recipe::decode::bind_covers(p, &b.dst)
                    || crate::recipe::decode::bind_covers(&b.dst, p)
            })
        }) || env.iter().any(|(k, _)| k == var)
            || svc.container.env.iter().any(|e| e.name == var);
        if !recipe_cache {
            let src = format!("{}/cache", opts.campaign_dir);
            binds.push(BindCtx {
                spec: format!("{src}:{MODEL_CACHE_MOUNT}"),
                src: src.clone(),
                dst: MODEL_CACHE_MOUNT.into(),
                ro: false,
            });
            env.push((var.to_string(), format!("{MODEL_CACHE_MOUNT}/{sub}")));
            cache_dir = Some(src);
        }
    }
    (binds, cache_dir)
}

/// The service's URL without credentials (scripts are 0755 and endpoint files are read by
/// others), and the members of its endpoint file: where a started service listens (the
/// node's loopback), or where an external one's URL says.
fn endpoint_members(svc: &Service, started: bool) -> (Option<String>, String) {
    let port = svc.endpoint.port;
    let url = svc.endpoint.url.as_deref().map(crate::recipe::redact::url);
    // A started service listens on the node's loopback; an external one where its URL says.
    let host = if started {
        BIND_HOST.to_string()
    } else {
        url.as_deref()
            .and_then(crate::recipe::endpoint::url_host)
            .unwrap_or_else(|| BIND_HOST.to_string())
    };
    let endpoint = serde_json::json!({
        "host": host,
        "port": port,
        "url": url,
    });
    let endpoint_json = endpoint.to_string();
    // Strip the braces: the script adds job_id/node/written_ns around these members.
    let endpoint_json = endpoint_json[1..endpoint_json.len() - 1].to_string();

    (url, endpoint_json)
}

/// The job's `#SBATCH` settings.
fn slurm_ctx(svc: &Service, het: bool) -> SlurmCtx {
    SlurmCtx {
        partition: svc.slurm.partition.clone(),
        account: svc.slurm.account.clone(),
        time: svc.slurm.time.clone(),
        // A heterogeneous job's first component is the service's one node.
        nodes: if het { 1 } else { svc.slurm.nodes },
        // srun starts one runner per client node inside the allocation: it needs a task
        // slot on each node.
        ntasks: if het {
            svc.slurm.ntasks
        } else if svc.slurm.client_nodes > 0 {
            svc.slurm.ntasks.max(svc.slurm.nodes)
        } else {
            svc.slurm.ntasks
        },
        ntasks_per_node: if het { None } else { svc.slurm.ntasks_per_node },
        het_clients: het.then(|| HetClientsCtx {
            partition: svc.slurm.client_partition.clone(),
            nodes: svc.slurm.client_nodes,
        }),
        client_nodes: svc.slurm.client_nodes,
        cpus_per_task: svc.cpus_per_task(),
        mem: svc.slurm.mem.clone(),
        qos: svc.slurm.qos.clone(),
        gres: svc.slurm.gres.clone(),
        constraint: svc.slurm.constraint.clone(),
        extra: svc.slurm.extra.clone(),
        modules: svc.slurm.modules.clone(),
        signal_grace_s: svc.slurm.signal_grace_s,
    }
}

/// A swept service's array: the parameter, its values, and the model variable.
fn sweep_ctx(svc: &Service, model_var: Option<&'static str>) -> Option<SweepCtx> {
    svc.sweep.as_ref().map(|s| SweepCtx {
        param: s.param.as_str(),
        last_index: s.values.len().saturating_sub(1),
        // The template exports values[task] as the model of a model sweep: for a grid,
        // the model of each task.
        values: if s.param == SweepParam::Grid {
            (0..s.values.len())
                .map(|i| {
                    s.assignments(i)
                        .unwrap_or_default()
                        .into_iter()
                        .find(|(p, _)| *p == SweepParam::Model)
                        .map(|(_, v)| v)
                        .unwrap_or_default()
                })
                .collect()
        } else {
            s.values.clone()
        },
        model_var,
    })
}

/// With clients on other nodes a started service must listen on the node's own address, not
/// on loopback: `127.0.0.1` in its arguments becomes the script's `$FB_BIND_ADDR`.
fn bind_word(w: Word, multi_node: bool) -> Word {
    if multi_node {
        w.with_var_for(BIND_HOST, "FB_BIND_ADDR")
    } else {
        w
    }
}

/// What `secrets/<service>.env` holds for a service.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretFileValue {
    /// Written in the recipe.
    Plain(String),
    /// Generated at compile time.
    Generated,
}

/// The entries of a service's secrets file, in order: its `Plain` and `Generated` secrets, plus
/// plain `environment` values equal to one of its secrets (e.g. `MINIO_ROOT_USER` repeating the
/// access key), which are then treated as secrets too.
pub fn secret_file_entries(svc: &Service) -> Vec<(String, SecretFileValue)> {
    let own = svc.secrets();
    let mut out: Vec<(String, SecretFileValue)> = Vec::new();
    for (name, s) in &own {
        let v = match s {
            Secret::Plain(v) => SecretFileValue::Plain(v.clone()),
            Secret::Generated => SecretFileValue::Generated,
            _ => continue,
        };
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), v));
        }
    }
    let plain_values: Vec<&str> = own
        .iter()
        .filter_map(|(_, s)| match s {
            Secret::Plain(v) => Some(v.as_str()),
            _ => None,
        })
        .collect();
    for e in &svc.container.env {
        if let EnvValue::Plain(v) = &e.value {
            if plain_values.contains(&v.as_str()) && !out.iter().any(|(n, _)| *n == e.name) {
                out.push((e.name.clone(), SecretFileValue::Plain(v.clone())));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::endpoint::url_host;

    #[test]
    fn url_host_parts() {
        assert_eq!(
            url_host("http://10.0.0.5:8080/x").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(
            url_host("postgresql://u:p@db.local/x").as_deref(),
            Some("db.local")
        );
        assert_eq!(url_host("http://[::1]:80").as_deref(), Some("::1"));
        assert_eq!(url_host("nonsense"), None);
    }

    #[test]
    fn campaign_dir_must_be_absolute_and_plain() {
        assert!(campaign_dir_ok("/shared/campaigns/x-20260101-000000"));
        assert!(!campaign_dir_ok("relative/dir"));
        assert!(!campaign_dir_ok("/with space"));
        assert!(!campaign_dir_ok("/percent%j"));
        assert!(!campaign_dir_ok("/quote'"));
    }
}
