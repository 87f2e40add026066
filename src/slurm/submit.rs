//! Submitting a compiled campaign: services in dependency order, one batch job each, ordering
//! expressed with SLURM dependencies (`depends_on` → `afterok`, `--sequential` → `afterany`
//! chain, the report job → `afterany` on every service job), each job recorded in
//! `campaign.db`.

use super::campaign::{self, Campaign, JobRecord, JobRole};
use super::memory::{self, MemRaise};
use super::{DependencyKind, SubmitOptions};
use crate::recipe::Plan;
use std::collections::HashMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// What to submit of a compiled campaign (the command's flags).
#[derive(Debug, Clone, Default)]
pub struct SubmitRequest {
    /// Only this service.
    pub service: Option<String>,
    /// Print the sbatch commands without submitting.
    pub dry_run: bool,
    /// Each service after the previous one ended.
    pub sequential: bool,
    /// No report job.
    pub no_report: bool,
    /// Submit the capacity-search job of each service with `capacity_search`
    /// (`scripts/<service>.capacity.sbatch`) instead of its run job.
    pub capacity: bool,
    /// Partition of the report job instead of the one [`report_placement`] picks.
    pub report_partition: Option<String>,
    /// Time limit of the report job (default [`REPORT_TIME`]).
    pub report_time: Option<String>,
}

/// The report job's default time limit: it reads the campaign's files and writes one HTML
/// file; without a limit it would take the partition's maximum and wait behind long jobs.
pub const REPORT_TIME: &str = "00:10:00";

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub use crate::shell::quote as shell_quote;

/// Services to submit, parents before children (depends_on is validated acyclic).
pub fn submission_order<'a>(plan: &'a Plan, only: Option<&str>) -> Vec<&'a crate::recipe::Service> {
    let selected: Vec<&crate::recipe::Service> = plan
        .services
        .iter()
        .filter(|s| only.map_or(true, |o| s.name == o))
        .collect();
    let mut done: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    while out.len() < selected.len() {
        let before = out.len();
        for s in &selected {
            if done.contains(&s.name.as_str()) {
                continue;
            }
            let ready = s
                .depends_on
                .iter()
                .all(|d| done.contains(&d.as_str()) || !selected.iter().any(|x| &x.name == d));
            if ready {
                done.push(&s.name);
                out.push(*s);
            }
        }
        if out.len() == before {
            // Unreachable for a validated plan; keep the rest in recipe order.
            for s in &selected {
                if !done.contains(&s.name.as_str()) {
                    done.push(&s.name);
                    out.push(*s);
                }
            }
        }
    }
    out
}

/// One job `submit` handed to sbatch (or, in a dry run, would have).
pub struct Submitted {
    pub record: JobRecord,
    /// The sbatch arguments.
    pub args: Vec<String>,
    /// The `--mem` that `submit` added to this service job, and why
    /// ([`super::memory::mem_raise`]).
    pub mem_raise: Option<MemRaise>,
}

pub fn submit_jobs(
    a: &SubmitRequest,
    plan: &Plan,
    camp: &Campaign,
    submitted: &mut Vec<Submitted>,
    ids: &mut HashMap<String, String>,
) -> anyhow::Result<()> {
    let dir = &camp.dir;
    let mut sub = |service: &str,
                   role: JobRole,
                   script: Option<&Path>,
                   opts: SubmitOptions,
                   array_size: Option<u32>,
                   mem_raise: Option<MemRaise>|
     -> anyhow::Result<String> {
        let args = opts.args(script);
        let job_id = if a.dry_run {
            format!("<{service}>")
        } else {
            super::sbatch(script, &opts, Some(dir))?
        };
        let record = JobRecord {
            job_id: job_id.clone(),
            service: service.to_string(),
            role,
            array_size,
            script_path: script
                .map(|s| s.strip_prefix(dir).unwrap_or(s).display().to_string())
                .unwrap_or_else(|| "(wrap)".into()),
            submitted_ns: now_ns(),
            depends_on: opts.dependency.job_ids(),
        };
        if !a.dry_run {
            camp.record_job(&record)?;
        }
        submitted.push(Submitted {
            record,
            args,
            mem_raise,
        });
        Ok(job_id)
    };

    let monitor = dir.join("scripts/monitor.sbatch");
    if monitor.is_file() && a.service.is_none() {
        sub(
            "monitor",
            JobRole::Monitor,
            Some(&monitor),
            SubmitOptions::default(),
            None,
            None,
        )?;
    }
    let mut previous: Option<String> = None;
    let mut service_ids = Vec::new();
    let services: Vec<_> = submission_order(plan, a.service.as_deref())
        .into_iter()
        .filter(|s| !a.capacity || s.capacity_search.is_some())
        .collect();
    // The cluster's default job memory, asked only when a job could need more than it gives.
    let mem_default = memory::may_raise(services.iter().copied())
        .then(memory::mem_default)
        .flatten();
    for s in services {
        let script = dir.join("scripts").join(if a.capacity {
            format!("{}.capacity.sbatch", s.name)
        } else {
            format!("{}.sbatch", s.name)
        });
        if !script.is_file() {
            anyhow::bail!(
                "compile wrote no batch script for service `{}` ({} is missing)",
                s.name,
                script.display()
            );
        }
        let mem_raise = memory::mem_raise(s, mem_default);
        let mut opts = SubmitOptions {
            mem: mem_raise.as_ref().map(MemRaise::mem_value),
            ..Default::default()
        };
        let parents: Vec<String> = s
            .depends_on
            .iter()
            .filter_map(|d| ids.get(d).cloned())
            .collect();
        opts.dependency.add(DependencyKind::AfterOk, &parents);
        if a.sequential {
            if let Some(p) = &previous {
                opts.dependency
                    .add(DependencyKind::AfterAny, std::slice::from_ref(p));
            }
        }
        let array_size = s
            .sweep
            .as_ref()
            .filter(|_| !a.capacity)
            .map(|w| w.values.len() as u32);
        let id = sub(
            &s.name,
            JobRole::Service,
            Some(&script),
            opts,
            array_size,
            mem_raise,
        )?;
        ids.insert(s.name.clone(), id.clone());
        previous = Some(id.clone());
        service_ids.push(id);
    }
    if !a.no_report && !service_ids.is_empty() {
        let exe = super::factorybench_bin()?;
        let d = dir.display().to_string();
        let wrap = format!(
            "{} report {} --format html --out {} --verdict-in-report",
            shell_quote(&exe.display().to_string()),
            shell_quote(&d),
            shell_quote(&format!("{d}/report.html")),
        );
        let placement = report_placement(plan, a.service.as_deref());
        let mut opts = SubmitOptions {
            wrap: Some(wrap),
            account: placement.account,
            partition: a.report_partition.clone().or(placement.partition),
            qos: placement.qos,
            time: Some(
                a.report_time
                    .clone()
                    .unwrap_or_else(|| REPORT_TIME.to_string()),
            ),
            job_name: Some(format!(
                "fb-report-{}",
                campaign::slug(&plan.benchmark.name)
            )),
            output: Some(format!("{d}/logs/report-%j.out")),
            ..Default::default()
        };
        opts.dependency.add(DependencyKind::AfterAny, &service_ids);
        sub("report", JobRole::Report, None, opts, None, None)?;
    }
    Ok(())
}

/// Where the report job runs: the account and QOS of the campaign's first service, and the
/// partition of the first service that asks for no GPU and whose partition is not a GPU one
/// (a name containing `gpu`), so that the report never holds a GPU node; when every service is
/// on a GPU partition, none (the cluster's default partition). A site that requires an account
/// refuses a job without one, and `submit` would roll back.
pub fn report_placement(plan: &Plan, only: Option<&str>) -> ReportPlacement {
    let services = submission_order(plan, only);
    let first = services.first().expect("report job only with services");
    let cpu = services.iter().find(|s| {
        !s.wants_gpu()
            && !s
                .slurm
                .partition
                .as_deref()
                .is_some_and(|p| p.to_ascii_lowercase().contains("gpu"))
    });
    let pick = cpu.unwrap_or(first);
    ReportPlacement {
        account: pick.slurm.account.clone().or(first.slurm.account.clone()),
        partition: cpu.and_then(|s| s.slurm.partition.clone()),
        qos: pick.slurm.qos.clone().or(first.slurm.qos.clone()),
    }
}

/// The account, partition and QOS of the report job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPlacement {
    pub account: Option<String>,
    pub partition: Option<String>,
    pub qos: Option<String>,
}

/// A recipe's plan to submit as a new campaign (the options of `factorybench submit`).
#[derive(Debug, Clone, Default)]
pub struct PlanSubmission {
    /// The recipe file (named in messages).
    pub recipe: std::path::PathBuf,
    /// The directory that holds the campaign directories.
    pub campaigns_dir: std::path::PathBuf,
    /// What to submit.
    pub request: SubmitRequest,
}

/// A submitted (or, in a dry run, compiled) campaign.
pub struct SubmittedCampaign {
    /// The campaign directory (absolute).
    pub dir: std::path::PathBuf,
    /// Its jobs in submission order.
    pub jobs: Vec<Submitted>,
}

/// Check the selection, compile `loaded` into a fresh campaign directory and submit its jobs.
/// The recipe's warnings are printed to stderr (the ones that stop a submission as errors).
/// When a job is refused part way, the jobs already submitted are cancelled (`scancel`) before
/// the error is returned.
pub fn submit_plan(
    loaded: &crate::recipe::Loaded,
    sub: &PlanSubmission,
) -> anyhow::Result<SubmittedCampaign> {
    check_selection(loaded, sub)?;
    let plan = &loaded.plan;
    let unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = campaign::create_dir(&sub.campaigns_dir, &plan.benchmark.name, unix_s)?;
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    // compile fills the (empty) directory; nothing was submitted yet if it fails, so leave no
    // half-made campaign behind.
    if let Err(e) = compile_into(sub.request.service.as_deref(), loaded, &dir) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    for s in ["logs", "runs", "endpoints"] {
        anyhow::Context::with_context(std::fs::create_dir_all(dir.join(s)), || {
            format!("creating {}", dir.join(s).display())
        })?;
    }
    let camp = Campaign::init(&dir)?;
    let mut jobs: Vec<Submitted> = Vec::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    if let Err(e) = submit_jobs(&sub.request, plan, &camp, &mut jobs, &mut ids) {
        if !sub.request.dry_run && !jobs.is_empty() {
            roll_back(&jobs);
        }
        return Err(e);
    }
    Ok(SubmittedCampaign { dir, jobs })
}

/// Cancel the jobs a failed submission already made.
fn roll_back(jobs: &[Submitted]) {
    let ids: Vec<String> = jobs.iter().map(|s| s.record.job_id.clone()).collect();
    eprintln!(
        "submission failed part way: cancelling the {} job(s) already submitted ({})",
        ids.len(),
        ids.join(", ")
    );
    if let Err(ce) = super::scancel(&ids) {
        eprintln!("warning: {ce}");
    }
}

/// Refuse a selection that cannot be submitted (an unknown service, `--capacity` without a
/// capacity search, a warning that means the job could not start on the node); print the
/// other warnings.
fn check_selection(loaded: &crate::recipe::Loaded, sub: &PlanSubmission) -> anyhow::Result<()> {
    use crate::exit::Failure;
    let plan = &loaded.plan;
    let only = sub.request.service.as_ref();
    if let Some(s) = only {
        if plan.service(s).is_none() {
            let names: Vec<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
            return Err(Failure::invalid_input(format!(
                "no service `{s}` in {} (services: {})",
                sub.recipe.display(),
                names.join(", ")
            ))
            .into());
        }
    }
    if sub.request.capacity
        && !plan
            .services
            .iter()
            .filter(|s| only.map_or(true, |n| &s.name == n))
            .any(|s| s.capacity_search.is_some())
    {
        return Err(Failure::invalid_input(format!(
            "--capacity: no {} of {} has `capacity_search` (docs/capacity.md)",
            match only {
                Some(n) => format!("service `{n}`"),
                None => "service".to_string(),
            },
            sub.recipe.display()
        ))
        .into());
    }
    // Warnings that mean the job could not start on the node (a Triton container without its
    // model repository): `validate` and `compile` print them; `submit` refuses the service.
    let stops = |d: &crate::recipe::Diagnostic| {
        d.stops_submit
            && match only {
                None => true,
                Some(name) => plan
                    .services
                    .iter()
                    .position(|s| &s.name == name)
                    .is_some_and(|i| {
                        let p = format!("services[{i}]");
                        d.path == p || d.path.starts_with(&format!("{p}."))
                    }),
            }
    };
    for d in loaded.warnings.iter().filter(|d| !stops(d)) {
        eprint!(
            "{}",
            crate::recipe::diag::render(d, &plan.source_path, &loaded.source_text)
        );
    }
    let stopping: Vec<String> = loaded
        .warnings
        .iter()
        .filter(|d| stops(d))
        .map(|d| {
            let mut e = d.clone();
            e.severity = crate::recipe::Severity::Error;
            crate::recipe::diag::render(&e, &plan.source_path, &loaded.source_text)
        })
        .collect();
    if !stopping.is_empty() {
        eprint!("{}", stopping.concat());
        return Err(Failure::invalid_input(format!(
            "{}: {} service{} could not start on the node (see above); nothing was submitted",
            sub.recipe.display(),
            stopping.len(),
            if stopping.len() == 1 { "" } else { "s" }
        ))
        .into());
    }
    Ok(())
}

/// Compile the recipe into the (empty) campaign directory: the same layout `compile --out`
/// writes (render's campaign writer).
fn compile_into(
    service: Option<&str>,
    loaded: &crate::recipe::Loaded,
    dir: &Path,
) -> anyhow::Result<()> {
    use crate::render::campaign::{write_campaign, CampaignSpec};
    let spec = CampaignSpec {
        out: dir.to_path_buf(),
        service: service.map(str::to_string),
        force: false,
        fb_bin: super::factorybench_bin()?.display().to_string(),
    };
    write_campaign(loaded, &crate::render::Renderer::new(), &spec)
        .map(drop)
        .map_err(crate::render::campaign::CampaignError::into_error)
}

/// What `submit` prints: the campaign directory (`rel`), then the sbatch commands of a dry
/// run, or the jobs with their dependencies and the commands to follow them.
pub fn render_submitted(rel: &str, submitted: &[Submitted], dry_run: bool) -> String {
    use std::fmt::Write as _;
    let mut out = format!("campaign: {rel}\n");
    for r in submitted.iter().filter_map(|s| s.mem_raise.as_ref()) {
        let _ = writeln!(out, "{}", r.note());
    }
    if dry_run {
        out += "dry run: nothing submitted; these are the sbatch commands:\n";
        for s in submitted {
            let args: Vec<String> = s.args.iter().map(|x| shell_quote(x)).collect();
            let _ = writeln!(out, "  sbatch {}", args.join(" "));
        }
        return out;
    }
    let _ = writeln!(
        out,
        "{:<24} {:<10} {:<8} {:<7} AFTER",
        "SERVICE", "JOB ID", "ROLE", "ARRAY"
    );
    for s in submitted {
        let r = &s.record;
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:<8} {:<7} {}",
            r.service,
            r.job_id,
            r.role.as_str(),
            r.array_size
                .map(|n| format!("0-{}", n.saturating_sub(1)))
                .unwrap_or_else(|| "-".into()),
            if r.depends_on.is_empty() {
                "-".to_string()
            } else {
                r.depends_on.join(",")
            }
        );
    }
    let _ = write!(
        out,
        "next:\n  factorybench status {rel}\n  factorybench logs {rel} --follow\n  factorybench cancel {rel}\n  factorybench report {rel} --format html --out {rel}/report.html\n"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn order_puts_parents_first() {
        let text = r#"
benchmark: {name: t}
services:
  - service_name: client
    service_type: http
    runtime: external
    service_url: http://127.0.0.1:1
    url: /
    depends_on: [server]
  - service_name: server
    service_type: http
    runtime: external
    service_url: http://127.0.0.1:1
    url: /
"#;
        let l = crate::recipe::parse_str(text, Path::new("t.yml")).unwrap();
        let names: Vec<&str> = submission_order(&l.plan, None)
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, vec!["server", "client"]);
        let only: Vec<&str> = submission_order(&l.plan, Some("client"))
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(only, vec!["client"]);
    }
}
