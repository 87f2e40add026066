//! `factorybench doctor`: everything that can be checked on the login node before submitting,
//! so that what would fail on the compute node hours later in the queue fails now.
//!
//! Each [`Check`] is one line: a status (ok / warn / fail), why, and how to fix it. Without a
//! recipe the site is checked (container runtimes, SLURM, accounting, the binary, monitoring);
//! with one, every service too (image, account / partition / QOS / GRES, GPU, ports, paths,
//! free space). Nothing here prints: `commands::doctor` does.

pub use crate::fsinfo as fs;
pub mod sys;
mod view;

use crate::kinds::{DoctorRule, GpuNeed};
use crate::recipe::{Plan, Runtime, Service, Workload};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// How a check came out. Ordered: the worst of a report is its maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One line of the doctor's report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked, e.g. `runtime`, `image[pg]`, `slurm.account[pg]`.
    pub name: String,
    pub status: Status,
    /// What was found (and why it matters when not ok).
    pub why: String,
    /// How to fix it (absent when ok).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: impl Into<String>, why: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            why: why.into(),
            fix: None,
        }
    }
    fn warn(name: impl Into<String>, why: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Warn,
            why: why.into(),
            fix: Some(fix.into()),
        }
    }
    fn fail(name: impl Into<String>, why: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Fail,
            why: why.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every check, in order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub recipe: Option<PathBuf>,
    pub checks: Vec<Check>,
}

impl Report {
    /// The worst status (ok for an empty report).
    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Ok)
    }
    pub fn count(&self, s: Status) -> usize {
        self.checks.iter().filter(|c| c.status == s).count()
    }
}

/// What the site offers, probed once: runtimes, SLURM, accounting.
#[derive(Debug, Default)]
pub struct Site {
    pub apptainer: Option<String>,
    pub podman: Option<String>,
    /// `sinfo` answered: partition → (available, GRES of its nodes).
    pub partitions: Option<Vec<sys::Partition>>,
    /// Why sinfo did not answer.
    pub slurm_error: Option<String>,
    /// The user's associations (`sacctmgr show assoc`), when accounting answers.
    pub associations: Option<Vec<sys::Assoc>>,
    pub accounting_error: Option<String>,
    /// QOS names that exist.
    pub qos: Option<Vec<String>>,
    /// The memory a job without `--mem` gets (DefMemPerNode / DefMemPerCPU).
    pub mem_default: Option<crate::slurm::memory::MemDefault>,
    pub user: String,
}

impl Site {
    /// Probe this machine.
    pub fn probe() -> Site {
        let user = sys::user_name();
        let apptainer = sys::version_of("apptainer").or_else(|| sys::version_of("singularity"));
        let podman = sys::version_of("podman");
        let (partitions, slurm_error) = match sys::partitions() {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        };
        let (associations, accounting_error) = match sys::associations(&user) {
            Ok(a) => (Some(a), None),
            Err(e) => (None, Some(e)),
        };
        let qos = sys::qos_names().ok();
        let mem_default = partitions
            .as_ref()
            .and_then(|_| crate::slurm::memory::mem_default());
        Site {
            mem_default,
            apptainer,
            podman,
            partitions,
            slurm_error,
            associations,
            accounting_error,
            qos,
            user,
        }
    }
}

/// Where a run pushes live metrics: already decided by the caller (flag, env, recipe, stack).
#[derive(Debug, Clone)]
pub struct Monitoring {
    /// The Pushgateway URL and where it came from (`PUSHGATEWAY_URL`, the recipe, the stack).
    pub pushgateway: Option<(String, &'static str)>,
}

/// Check the site only.
pub fn check_site(site: &Site, monitoring: &Monitoring, binary: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(match (&site.apptainer, &site.podman) {
        (None, None) => Check::warn(
            "runtime",
            "neither apptainer (singularity) nor podman is on PATH: only `runtime: host` and \
             `external` services can start",
            "load the module that provides Apptainer (`module load Apptainer`) or install Podman",
        ),
        (a, p) => Check::ok(
            "runtime",
            [
                a.as_ref().map(|v| format!("apptainer: {v}")),
                p.as_ref().map(|v| format!("podman: {v}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; "),
        ),
    });
    out.push(match (&site.partitions, &site.slurm_error) {
        (Some(p), _) => Check::ok(
            "slurm",
            format!(
                "sinfo answers: partitions {}",
                p.iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        (None, e) => Check::warn(
            "slurm",
            format!(
                "SLURM does not answer ({}): `submit` will fail; `run` works locally",
                e.as_deref().unwrap_or("sinfo failed")
            ),
            "run doctor on the cluster's login node (or load the slurm module)",
        ),
    });
    out.push(match (&site.associations, &site.accounting_error) {
        (Some(a), _) if a.is_empty() => Check::fail(
            "slurm.accounting",
            format!("user {} has no SLURM account association", site.user),
            "ask your project's PI or the support desk to add you to an account",
        ),
        (Some(a), _) => {
            let mut accts: Vec<&str> = a.iter().map(|a| a.account.as_str()).collect();
            accts.dedup();
            Check::ok(
                "slurm.accounting",
                format!("user {} may charge: {}", site.user, accts.join(", ")),
            )
        }
        (None, e) => Check::warn(
            "slurm.accounting",
            format!(
                "accounting does not answer ({}): accounts and QOS cannot be verified here",
                e.as_deref().unwrap_or("sacctmgr failed")
            ),
            "check them with your site's documentation (or `sacctmgr show assoc user=$USER`)",
        ),
    });
    out.push(check_binary(binary));
    out.push(check_monitoring(monitoring, site.partitions.is_some()));
    out
}

fn check_binary(binary: &Path) -> Check {
    let meta = std::fs::metadata(binary);
    let exec = meta
        .as_ref()
        .is_ok_and(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0);
    if !exec {
        return Check::fail(
            "binary",
            format!(
                "the jobs run {}, which is not an executable file",
                binary.display()
            ),
            "install factorybench on a filesystem the compute nodes mount",
        );
    }
    let fs = fs::fs_type(binary);
    match fs {
        Some(t) if !t.is_shared() => Check::warn(
            "binary",
            format!(
                "the jobs run {} ({}), on {}, not a shared filesystem: compute nodes may not see it",
                binary.display(),
                crate::version_string(),
                t.name()
            ),
            "install the binary under $HOME or the project directory (a shared filesystem)",
        ),
        _ => Check::ok(
            "binary",
            format!(
                "the jobs run {} ({}{})",
                binary.display(),
                crate::version_string(),
                fs.map(|t| format!(", {}", t.name())).unwrap_or_default()
            ),
        ),
    }
}

fn check_monitoring(m: &Monitoring, under_slurm: bool) -> Check {
    let Some((url, from)) = &m.pushgateway else {
        return Check::warn(
            "monitoring",
            "no Pushgateway (no PUSHGATEWAY_URL, no global.pushgateway_url, no running \
             `monitor up` stack): runs record to SQLite but push no live metrics",
            "start the stack with `factorybench monitor up`",
        );
    };
    let host = url_host(url);
    if under_slurm && host.as_deref().is_some_and(is_loopback) {
        return Check::warn(
            "monitoring",
            format!(
                "the Pushgateway {url} (from {from}) is a loopback address: every compute node \
                 would push to its own localhost"
            ),
            "use the node name or address of the monitoring job (`factorybench monitor up` \
             prints it)",
        );
    }
    match sys::http_reachable(url) {
        Ok(()) => Check::ok(
            "monitoring",
            format!("Pushgateway {url} (from {from}) answers"),
        ),
        Err(e) => Check::fail(
            "monitoring",
            format!("the Pushgateway {url} (from {from}) does not answer: {e}"),
            "start it (`factorybench monitor up`) or fix the URL",
        ),
    }
}

use crate::recipe::endpoint::url_host;

/// `localhost`, 127.0.0.0/8 or ::1.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Check a recipe's services against the site.
pub fn check_recipe(site: &Site, plan: &Plan) -> Vec<Check> {
    let mut out = Vec::new();
    for svc in &plan.services {
        let n = &svc.name;
        out.extend(check_image(site, svc));
        out.extend(check_slurm(site, svc));
        out.extend(check_memory(site, svc));
        out.extend(check_gpu(svc));
        out.extend(check_binds(svc));
        out.extend(check_port(svc));
        out.extend(check_faiss(svc));
        out.extend(check_kind_rules(svc));
        if let Workload::FileStorage(f) = &svc.workload {
            out.push(check_dir(&format!("base_path[{n}]"), &f.base_path, true));
            out.push(check_fs_meaning(n, &f.base_path));
            let need = file_storage_bytes(svc);
            out.push(check_space(&format!("space[{n}]"), &f.base_path, need));
        }
    }
    // The campaign files: the metrics database and the campaign directory next to it.
    let db = &plan.global.metrics_db;
    let db_dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    out.push(check_dir("campaign_dir", db_dir, false));
    out.push(check_run_files(db));
    let need: u64 = plan.services.iter().map(metrics_bytes).sum();
    out.push(check_space("space[campaign]", db_dir, need));
    out
}

/// A Faiss service needs Faiss's C library, loaded at run time: is it loadable here, and does it
/// have the GPU C API when the job asks for a GPU?
fn check_faiss(svc: &Service) -> Option<Check> {
    use crate::kinds::vector::VectorBackend;
    use crate::runner::clients::vector::faiss_lib;
    let Workload::Vectordb(v) = &svc.workload else {
        return None;
    };
    if v.backend != VectorBackend::Faiss {
        return None;
    }
    let name = format!("faiss[{}]", svc.name);
    Some(match faiss_lib::get() {
        Err(e) => Check::fail(
            name,
            format!("{e} (the batch job loads it on the compute node: give the job the same environment)"),
            faiss_lib::HOW_TO_GET,
        ),
        Ok(lib) if svc.wants_gpu() && lib.gpu.is_none() => Check::warn(
            name,
            format!(
                "{} loads, but has no GPU C API: the index runs on the CPU although the job asks for a GPU",
                lib.path
            ),
            "load a Faiss built with GPU support and the C API (e.g. conda `faiss-gpu`), or drop the GPU request",
        ),
        Ok(lib) => Check::ok(
            name,
            format!(
                "{} loads ({}; {} GPU{} seen)",
                lib.path,
                if lib.gpu.is_some() { "GPU C API" } else { "CPU only" },
                lib.gpu_count(),
                if lib.gpu_count() == 1 { "" } else { "s" }
            ),
        ),
    })
}

/// Where jobs will write their run files (issue 26: SQLite WAL needs one host).
fn check_run_files(db: &Path) -> Check {
    use fs::RunFileMode;
    let (mode, fsk) = fs::run_file_mode(db);
    let on = fsk
        .map(fs::FsType::name)
        .unwrap_or_else(|| "an unknown filesystem".into());
    match mode {
        RunFileMode::Direct if fsk.is_some_and(fs::FsType::is_shared) => Check::warn(
            "run_files",
            format!("{} is on {on} and FB_RUN_FILES=direct: run files are written in place in WAL mode, which is unsafe when status/report read them from another host", db.display()),
            "unset FB_RUN_FILES (auto writes node-local and publishes)",
        ),
        RunFileMode::Direct => Check::ok(
            "run_files",
            format!("{} is on {on}: run files are written in place (SQLite WAL)", db.display()),
        ),
        RunFileMode::LocalPublished => Check::ok(
            "run_files",
            format!("{} is on {on}: each job writes its run file on node-local storage ($SLURM_TMPDIR, $TMPDIR or /tmp) and publishes a consistent copy into the campaign directory every 5 s and at the end (status reads that copy; it lags by up to one interval)", db.display()),
        ),
    }
}

fn check_image(site: &Site, svc: &Service) -> Vec<Check> {
    let n = &svc.name;
    let name = format!("image[{n}]");
    let Some(image) = &svc.container_image else {
        return Vec::new();
    };
    match svc.runtime {
        Runtime::Apptainer => {
            if site.apptainer.is_none() {
                return vec![Check::fail(
                    format!("runtime[{n}]"),
                    "the service runs under Apptainer, which is not on PATH here",
                    "`module load Apptainer` (compute nodes need it too), or `runtime: podman`",
                )];
            }
            if let Some((scheme, _)) = image.split_once("://") {
                return vec![Check::warn(
                    name,
                    format!(
                        "{image} is pulled ({scheme}) when the job starts: not checked here, and \
                         compute nodes often have no internet access"
                    ),
                    format!(
                        "pull it once on the login node: `apptainer build /shared/images/{n}.sif {image}` and name the .sif"
                    ),
                )];
            }
            let p = Path::new(image);
            match std::fs::File::open(p) {
                Ok(_) => vec![Check::ok(name, format!("{image} is present and readable"))],
                Err(e) => vec![Check::fail(
                    name,
                    format!("{image}: {e}"),
                    "build the image (`apptainer build FILE.sif containers/KIND.def`) on a \
                     shared filesystem, or fix the path",
                )],
            }
        }
        Runtime::Podman => {
            if site.podman.is_none() {
                return vec![Check::fail(
                    format!("runtime[{n}]"),
                    "the service runs under Podman, which is not on PATH here",
                    "install Podman on the nodes, or `runtime: apptainer`",
                )];
            }
            match sys::podman_image_exists(image) {
                Ok(true) => match sys::podman_can_start(image) {
                    Ok(()) => vec![Check::ok(
                        name,
                        format!("{image} is present locally and a throwaway container of it started"),
                    )],
                    Err(e) => vec![Check::fail(
                        name,
                        format!(
                            "{image} is present, but Podman cannot start a container of it on this host (the job would fail the same way): {e}"
                        ),
                        "fix the runtime's setup on the nodes: `error setting rlimit` wants `default_ulimits` within the hard limits in containers.conf; cgroup errors want `cgroup_manager = \"cgroupfs\"` (see containers/README.md)",
                    )],
                },
                Ok(false) => vec![Check::fail(
                    name,
                    format!(
                        "{image} is not present locally; the job starts it with `--pull never`"
                    ),
                    format!("`podman pull {image}` (or build it) on the node before submitting"),
                )],
                Err(e) => vec![Check::warn(
                    name,
                    format!("cannot ask podman about {image}: {e}"),
                    "check `podman image exists IMAGE` by hand",
                )],
            }
        }
        _ => Vec::new(),
    }
}

/// The account (and its QOS) the job charges: may this user charge it?
fn check_account(site: &Site, svc: &Service) -> Vec<Check> {
    let n = &svc.name;
    let s = &svc.slurm;
    let mut out = Vec::new();
    if let Some(assocs) = &site.associations {
        match &s.account {
            Some(a) => {
                let mine: Vec<&sys::Assoc> = assocs.iter().filter(|x| &x.account == a).collect();
                if mine.is_empty() {
                    let mut known: Vec<&str> = assocs.iter().map(|x| x.account.as_str()).collect();
                    known.dedup();
                    out.push(Check::fail(
                        format!("slurm.account[{n}]"),
                        format!(
                            "user {} may not charge account {a} (accounts: {})",
                            site.user,
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        ),
                        "set `slurm.account` (or `global.slurm.account`) to one of them",
                    ));
                } else {
                    out.push(Check::ok(
                        format!("slurm.account[{n}]"),
                        format!("user {} may charge {a}", site.user),
                    ));
                    // QOS of that association.
                    if let Some(q) = &s.qos {
                        let allowed: Vec<&str> = mine
                            .iter()
                            .flat_map(|x| x.qos.iter().map(String::as_str))
                            .collect();
                        if !allowed.is_empty() && !allowed.contains(&q.as_str()) {
                            out.push(Check::fail(
                                format!("slurm.qos[{n}]"),
                                format!(
                                    "QOS {q} is not allowed for account {a} (allowed: {})",
                                    allowed.join(", ")
                                ),
                                "set `slurm.qos` to an allowed one",
                            ));
                        } else {
                            out.push(Check::ok(
                                format!("slurm.qos[{n}]"),
                                format!("QOS {q} allowed"),
                            ));
                        }
                    }
                }
            }
            None => {
                if sys::accounts_enforced() {
                    out.push(Check::fail(
                        format!("slurm.account[{n}]"),
                        "this cluster requires an account on every job and none is given",
                        "set `global.slurm.account` (your project, e.g. p200981)",
                    ));
                }
            }
        }
    } else if let Some(a) = &s.account {
        out.push(Check::warn(
            format!("slurm.account[{n}]"),
            format!("account {a} cannot be verified: accounting does not answer"),
            "check it with `sacctmgr show assoc user=$USER`",
        ));
    }
    out
}

fn check_slurm(site: &Site, svc: &Service) -> Vec<Check> {
    let n = &svc.name;
    let s = &svc.slurm;
    let mut out = Vec::new();
    let Some(parts) = &site.partitions else {
        return out;
    };
    // Partition.
    let part = match &s.partition {
        Some(p) => match parts.iter().find(|x| &x.name == p) {
            Some(x) if x.available => {
                out.push(Check::ok(
                    format!("slurm.partition[{n}]"),
                    format!("{p} is up"),
                ));
                Some(x)
            }
            Some(_) => {
                out.push(Check::warn(
                    format!("slurm.partition[{n}]"),
                    format!("partition {p} exists but is not up: jobs wait"),
                    "pick another partition (`sinfo`)",
                ));
                parts.iter().find(|x| &x.name == p)
            }
            None => {
                out.push(Check::fail(
                    format!("slurm.partition[{n}]"),
                    format!(
                        "partition {p} does not exist here (partitions: {})",
                        parts
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    "set `slurm.partition` to one of them",
                ));
                None
            }
        },
        None => parts.iter().find(|p| p.default),
    };
    out.extend(check_account(site, svc));
    if let (Some(q), Some(all)) = (&s.qos, &site.qos) {
        if !all.contains(q) {
            out.push(Check::fail(
                format!("slurm.qos[{n}]"),
                format!("QOS {q} does not exist (QOS: {})", all.join(", ")),
                "set `slurm.qos` to one of them",
            ));
        }
    }
    // GRES offered by the partition's nodes.
    if let (Some(g), Some(p)) = (&s.gres, part) {
        for want in g.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            let kind = want.split(':').next().unwrap_or(want);
            if p.gres
                .iter()
                .any(|have| have.split(':').next() == Some(kind))
            {
                out.push(Check::ok(
                    format!("slurm.gres[{n}]"),
                    format!("partition {} offers {kind} ({})", p.name, p.gres.join(",")),
                ));
            } else {
                out.push(Check::fail(
                    format!("slurm.gres[{n}]"),
                    format!(
                        "partition {} has no {kind} GRES (it offers: {})",
                        p.name,
                        if p.gres.is_empty() {
                            "none".into()
                        } else {
                            p.gres.join(",")
                        }
                    ),
                    "pick the GPU partition (`slurm.partition`) or drop the GRES",
                ));
            }
        }
    }
    // Finally the controller's own verdict on the whole request.
    let args = sys::sbatch_test_args(s);
    match sys::sbatch_test_only(&args) {
        Ok(()) => out.push(Check::ok(
            format!("slurm.submit[{n}]"),
            "sbatch --test-only accepts the request",
        )),
        Err(e) => out.push(Check::fail(
            format!("slurm.submit[{n}]"),
            format!("sbatch --test-only {} refuses it: {e}", args.join(" ")),
            "fix the service's `slurm:` block",
        )),
    }
    out
}

/// What memory the service's job gets: its `slurm.mem`, else the cluster's default; a
/// warning when a server the job starts would get less than its kind's floor. Without
/// `slurm.mem`, `submit` then adds `--mem=<floor>` on the sbatch command line
/// (`slurm::memory::mem_raise`); a script submitted by hand gets the default.
fn check_memory(site: &Site, svc: &Service) -> Vec<Check> {
    use crate::slurm::memory;
    let n = &svc.name;
    let cpus = memory::job_cpus(svc);
    let (mib, how) = match (svc.slurm.mem.as_deref(), site.mem_default) {
        (Some(m), _) => match crate::recipe::plan::mem_mib(m) {
            Some(0) | None => (None, format!("slurm.mem {m}: all of the node's memory")),
            Some(x) => (Some(x), format!("slurm.mem {m} (--mem)")),
        },
        (None, Some(d)) => (
            d.job_mib(cpus),
            format!("no slurm.mem: {}", d.describe(cpus)),
        ),
        (None, None) => return Vec::new(),
    };
    match (mib, memory::started_floor_mib(svc)) {
        (Some(have), Some(floor)) if have < floor => {
            let submit = if svc.slurm.mem.is_none() {
                format!(
                    "; `factorybench submit` adds --mem={floor}M on the sbatch command line, a \
                     script submitted by hand gets the default"
                )
            } else {
                String::new()
            };
            vec![Check::warn(
                format!("slurm.mem[{n}]"),
                format!(
                    "{how}: less than the {} GiB a started {} server should have (it may be \
                     OOM-killed while loading){submit}",
                    floor / 1024,
                    svc.kind.as_str()
                ),
                format!("set `slurm.mem` (e.g. `mem: {}G`) on `{n}`", floor / 1024),
            )]
        }
        _ => vec![Check::ok(format!("slurm.mem[{n}]"), how)],
    }
}

/// Bind sources must exist on the shared filesystem (a kind's own binds: `check_kind_rules`).
fn check_binds(svc: &Service) -> Vec<Check> {
    let n = &svc.name;
    let mut out = Vec::new();
    if !matches!(svc.runtime, Runtime::Apptainer | Runtime::Podman) {
        return out;
    }
    for b in &svc.container.binds {
        if !Path::new(&b.src).exists() {
            out.push(Check::fail(
                format!("bind[{n}]"),
                format!(
                    "bind source {} does not exist: the container cannot start",
                    b.src
                ),
                "create it on the shared filesystem or fix `binds`",
            ));
        }
    }
    out
}

/// The kind's own checks ([`crate::kinds::Kind::doctor`]).
fn check_kind_rules(svc: &Service) -> Vec<Check> {
    let mut out = Vec::new();
    for rule in svc.kind.spec().doctor() {
        match rule {
            DoctorRule::TritonModelRepository => out.extend(check_triton_repository(svc)),
            DoctorRule::OllamaModel => out.extend(check_ollama_model(svc)),
            DoctorRule::AmbientSecrets => out.extend(check_ambient_secrets(svc)),
        }
    }
    out
}

/// Triton needs its model repository bound.
fn check_triton_repository(svc: &Service) -> Option<Check> {
    let n = &svc.name;
    if !matches!(svc.runtime, Runtime::Apptainer | Runtime::Podman) {
        return None;
    }
    let repo = crate::recipe::decode::triton_model_repository(&svc.container.extra_args);
    let bound = svc
        .container
        .binds
        .iter()
        .any(|b| crate::recipe::decode::bind_covers(&b.dst, &repo));
    Some(if bound {
        Check::ok(
            format!("models[{n}]"),
            format!("model repository {repo} is bound"),
        )
    } else {
        Check::fail(
            format!("models[{n}]"),
            format!("Triton's model repository {repo} is not bound: the server cannot start"),
            format!("add `binds: [\"/path/to/model_repository:{repo}:ro\"]`"),
        )
    })
}

/// The kind's expected ambient secrets (NIM's `NGC_API_KEY`): set here (they travel through
/// the campaign's secrets file) or given in `environment`.
fn check_ambient_secrets(svc: &Service) -> Vec<Check> {
    let n = &svc.name;
    if svc.runtime == Runtime::External {
        return Vec::new();
    }
    svc.kind
        .spec()
        .ambient_secrets()
        .iter()
        .filter(|a| a.expected)
        .map(|a| {
            if svc.container.env.iter().any(|e| e.name == a.name) {
                Check::ok(
                    format!("secret[{n}]"),
                    format!("{} is given (it travels through the secrets file)", a.name),
                )
            } else {
                Check::warn(
                    format!("secret[{n}]"),
                    format!(
                        "{} is not set: a {} server that must download its model cannot",
                        a.name, svc.kind
                    ),
                    format!(
                        "export {} before `factorybench compile`, or set it in `environment` with `from_env` / `from_file`",
                        a.name
                    ),
                )
            }
        })
        .collect()
}

/// The manifest Ollama keeps for `model` (`name[:tag]`, tag `latest` by default) under a
/// model store directory (`~/.ollama` or `OLLAMA_MODELS`).
pub fn ollama_manifest(store: &Path, model: &str) -> std::path::PathBuf {
    let (name, tag) = model.split_once(':').unwrap_or((model, "latest"));
    let (ns, name) = name.split_once('/').unwrap_or(("library", name));
    store
        .join("models/manifests/registry.ollama.ai")
        .join(ns)
        .join(name)
        .join(tag)
}

/// An Ollama server the job starts without `pull_model` serves only models already in its
/// store: a missing one fails the job at setup, after the queue wait. With a bound store
/// (`/root/.ollama`), look for the model's manifest there.
fn check_ollama_model(svc: &Service) -> Option<Check> {
    let Workload::Llm(l) = &svc.workload else {
        return None;
    };
    if svc.runtime == Runtime::External || l.pull_model {
        return None;
    }
    let n = &svc.name;
    let store = svc
        .container
        .binds
        .iter()
        .find(|b| b.dst.trim_end_matches('/') == "/root/.ollama")
        .map(|b| std::path::PathBuf::from(&b.src));
    let fix = "set `pull_model: true` (the job pulls it before measuring), or pull it into the bound store first (`OLLAMA_MODELS=<store>/models ollama pull MODEL`)";
    Some(match store {
        Some(store) => {
            let manifest = ollama_manifest(&store, &l.model);
            if manifest.is_file() {
                Check::ok(
                    format!("model[{n}]"),
                    format!("{} is in the bound store {}", l.model, store.display()),
                )
            } else {
                Check::fail(
                    format!("model[{n}]"),
                    format!(
                        "{} is not in the bound store {} (no {}) and pull_model is false: the job would fail at setup",
                        l.model,
                        store.display(),
                        manifest.display()
                    ),
                    fix,
                )
            }
        }
        None => Check::fail(
            format!("model[{n}]"),
            format!(
                "{} must be pulled: the server starts with an empty model store and pull_model is false",
                l.model
            ),
            fix,
        ),
    })
}

/// A started server without the GPU its kind needs ([`crate::kinds::Kind::gpu`]).
fn check_gpu(svc: &Service) -> Option<Check> {
    let n = &svc.name;
    if svc.runtime != Runtime::External && !svc.wants_gpu() {
        match svc.kind.spec().gpu() {
            GpuNeed::Required => {
                return Some(Check::fail(
                    format!("gpu[{n}]"),
                    format!("{} needs a GPU, and the job requests none", svc.kind),
                    "add `slurm: {gres: \"gpu:1\"}` (and a GPU partition)",
                ))
            }
            GpuNeed::Recommended => {
                return Some(Check::warn(
                    format!("gpu[{n}]"),
                    format!(
                        "{} without a GPU runs on the CPU: tokens/s will not be representative",
                        svc.kind
                    ),
                    "add `slurm: {gres: \"gpu:1\"}`",
                ))
            }
            GpuNeed::None => {}
        }
    }
    svc.wants_gpu()
        .then(|| Check::ok(format!("gpu[{n}]"), "a GPU is requested"))
}

fn check_port(svc: &Service) -> Option<Check> {
    let port = svc.endpoint.port?;
    let n = &svc.name;
    if svc.runtime == Runtime::External {
        // The service must already run: is it reachable from here?
        let addr = format!("{}:{port}", svc.endpoint.host);
        return Some(match sys::tcp_reachable(&addr) {
            Ok(()) => Check::ok(format!("port[{n}]"), format!("{addr} accepts connections")),
            Err(e) => Check::warn(
                format!("port[{n}]"),
                format!("{addr} does not accept connections from here ({e}); the service must run when the job starts"),
                "start the service, or check it from a compute node",
            ),
        });
    }
    if port < 1024 {
        return Some(Check::fail(
            format!("port[{n}]"),
            format!("port {port} is privileged: an unprivileged service cannot bind it"),
            "use a port above 1024",
        ));
    }
    Some(match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Check::ok(format!("port[{n}]"), format!("port {port} is free here")),
        Err(e) => Check::warn(
            format!("port[{n}]"),
            format!("port {port} is taken on this machine ({e}); if nodes are shared the service may not bind it"),
            "pick another `port`",
        ),
    })
}

/// A directory the job writes: writable (created when missing)?
fn check_dir(name: &str, dir: &Path, create: bool) -> Check {
    match fs::probe_writable(dir, create) {
        Ok(fs::Writable::Yes) => Check::ok(name, format!("{} is writable", dir.display())),
        Ok(fs::Writable::WillCreate(parent)) => Check::ok(
            name,
            format!(
                "{} will be created under {}",
                dir.display(),
                parent.display()
            ),
        ),
        Err(e) => Check::fail(
            name,
            format!("{} is not writable: {e}", dir.display()),
            "choose a directory you own on the shared filesystem (project or scratch)",
        ),
    }
}

/// What the filesystem under a storage benchmark's base_path means for its numbers.
fn check_fs_meaning(svc: &str, dir: &Path) -> Check {
    let name = format!("filesystem[{svc}]");
    match fs::fs_type(dir) {
        None => Check::warn(
            name,
            format!("cannot tell the filesystem of {}", dir.display()),
            "check `df -T`",
        ),
        Some(t) => {
            let meaning = t.meaning();
            if t.is_shared() {
                Check::ok(name, format!("{}: {} — {meaning}", dir.display(), t.name()))
            } else {
                Check::warn(
                    name,
                    format!("{}: {} — {meaning}", dir.display(), t.name()),
                    "point base_path at the parallel filesystem (e.g. /project/scratch) to measure it",
                )
            }
        }
    }
}

fn check_space(name: &str, dir: &Path, need_bytes: u64) -> Check {
    match fs::free_bytes(dir) {
        None => Check::warn(
            name,
            format!("cannot tell the free space of {}", dir.display()),
            "check `df -h`",
        ),
        Some(free) if free < need_bytes => Check::fail(
            name,
            format!(
                "{} has {} free, the campaign needs about {}",
                dir.display(),
                human(free),
                human(need_bytes)
            ),
            "free space or choose another directory",
        ),
        Some(free) if free < need_bytes.saturating_mul(2) => Check::warn(
            name,
            format!(
                "{} has {} free, the campaign needs about {}",
                dir.display(),
                human(free),
                human(need_bytes)
            ),
            "leave headroom: free space or choose another directory",
        ),
        Some(free) => Check::ok(
            name,
            format!("{} free, about {} needed", human(free), human(need_bytes)),
        ),
    }
}

fn human(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", U[i])
}

/// Requests a service will make (a bound: `requests`, else rate × clients × duration; a closed
/// loop is estimated at 1000 requests per client-second).
fn expected_requests(svc: &Service) -> u64 {
    let l = &svc.load;
    if let Some(r) = l.requests {
        return r;
    }
    let rate = if l.target_rate_per_client_per_s > 0.0 {
        l.target_rate_per_client_per_s
    } else {
        1000.0
    };
    (rate * f64::from(l.clients) * (l.duration_s + l.warmup_s)).ceil() as u64
}

/// About 300 bytes per recorded request in the campaign file, plus 1 MiB.
fn metrics_bytes(svc: &Service) -> u64 {
    expected_requests(svc).saturating_mul(300) + (1 << 20)
}

/// A file storage benchmark's working set: working_set_files per size class.
fn file_storage_bytes(svc: &Service) -> u64 {
    let Workload::FileStorage(f) = &svc.workload else {
        return 0;
    };
    let per_class: u64 = f.file_sizes.weights.iter().map(|(b, _)| *b).sum();
    per_class.saturating_mul(u64::from(f.working_set_files.max(1)))
}

/// The Pushgateway a run will push to, with its source, in the stated precedence:
/// `PUSHGATEWAY_URL` > `global.pushgateway_url` > the running `monitor up` stack.
pub fn pushgateway(plan: Option<&Plan>, state_dir: &Path) -> Option<(String, &'static str)> {
    crate::monitor::stack::pushgateway_with_source(
        plan.and_then(|p| p.global.pushgateway_url.as_deref()),
        state_dir,
    )
}

/// Run every check: the site, then the recipe's services when given.
pub fn diagnose(plan: Option<&Plan>, state_dir: &Path, binary: &Path) -> Report {
    let site = Site::probe();
    let monitoring = Monitoring {
        pushgateway: pushgateway(plan, state_dir),
    };
    let mut checks = check_site(&site, &monitoring, binary);
    if let Some(p) = plan {
        // A runtime the recipe needs must exist: make a missing one a failure.
        let needs = |r: Runtime| p.services.iter().any(|s| s.runtime == r);
        if site.apptainer.is_none()
            && site.podman.is_none()
            && (needs(Runtime::Apptainer) || needs(Runtime::Podman))
        {
            checks[0].status = Status::Fail;
        }
        checks.extend(check_recipe(&site, p));
    }
    Report {
        recipe: plan.map(|p| p.source_path.clone()),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 23, case 9: doctor says when an Ollama model must be pulled, and looks for it in a
    /// bound model store.
    #[test]
    fn memory_is_the_recipes_or_the_clusters_default_and_an_llm_gets_a_floor() {
        use crate::slurm::memory::MemDefault;
        let svc = |extra: &str| {
            crate::recipe::parse_str(
                &format!(
                    "benchmark: {{name: x}}\nservices:\n  - service_name: o\n    service_type: ollama\n    container_image: docker://ollama/ollama\n    model: m\n    pull_model: true\n{extra}"
                ),
                Path::new("r.yml"),
            )
            .unwrap()
            .plan
            .services[0]
            .clone()
        };
        let site = |d: Option<MemDefault>| Site {
            mem_default: d,
            ..Site::default()
        };
        // The service and its load generator on one node: 2 CPUs by default.
        let c = &check_memory(&site(Some(MemDefault::PerCpu(2048))), &svc(""))[0];
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(
            c.why
                .contains("DefMemPerCPU=2048 MiB x 2 CPU(s) gives the job 4096 MiB"),
            "{c:?}"
        );
        assert!(
            c.fix.as_deref().unwrap_or_default().contains("mem: 16G"),
            "{c:?}"
        );
        assert!(
            c.why
                .contains("`factorybench submit` adds --mem=16384M on the sbatch command line"),
            "{c:?}"
        );
        let c = &check_memory(&site(Some(MemDefault::PerNode(None))), &svc(""))[0];
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.why.contains("all of the node's memory"), "{c:?}");
        let c = &check_memory(
            &site(Some(MemDefault::PerCpu(2048))),
            &svc("    slurm: {mem: 32G}\n"),
        )[0];
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.why.contains("slurm.mem 32G"), "{c:?}");
        // Nothing known about the cluster, nothing asked: no line.
        assert!(check_memory(&site(None), &svc("")).is_empty());
    }

    #[test]
    fn ollama_model_must_be_in_the_store_or_pulled() {
        let store = tempfile::tempdir().unwrap();
        let recipe = |pull: bool| {
            format!(
                "benchmark: {{name: x}}\nservices:\n  - service_name: o\n    service_type: ollama\n    container_image: docker://ollama/ollama\n    model: smollm2:135m\n    pull_model: {pull}\n    binds: [\"{}:/root/.ollama\"]\n",
                store.path().display()
            )
        };
        let svc = |text: &str| {
            crate::recipe::parse_str(text, Path::new("r.yml"))
                .unwrap()
                .plan
                .services[0]
                .clone()
        };
        let c = check_ollama_model(&svc(&recipe(false))).unwrap();
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(
            c.why.contains("smollm2:135m is not in the bound store"),
            "{c:?}"
        );
        let m = ollama_manifest(store.path(), "smollm2:135m");
        assert!(m.ends_with("models/manifests/registry.ollama.ai/library/smollm2/135m"));
        std::fs::create_dir_all(m.parent().unwrap()).unwrap();
        std::fs::write(&m, "{}").unwrap();
        assert_eq!(
            check_ollama_model(&svc(&recipe(false))).unwrap().status,
            Status::Ok
        );
        assert!(check_ollama_model(&svc(&recipe(true))).is_none());
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.2"));
        assert!(is_loopback("::1"));
        assert!(!is_loopback("mel0001"));
        assert_eq!(url_host("http://[::1]:9091/x").as_deref(), Some("::1"));
    }

    #[test]
    fn worst_of_a_report() {
        let r = Report {
            recipe: None,
            checks: vec![Check::ok("a", "x"), Check::warn("b", "y", "z")],
        };
        assert_eq!(r.worst(), Status::Warn);
        assert_eq!(human(1536), "1.5 KiB");
    }
}
