//! Submitting a compiled campaign: services in dependency order, one batch job each, ordering
//! expressed with SLURM dependencies (`depends_on` → `afterok`, `--sequential` → `afterany`
//! chain, the report job → `afterany` on every service job), each job recorded in
//! `campaign.db`.

use super::campaign::{self, Campaign, JobRecord, JobRole};
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
                   array_size: Option<u32>|
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
        submitted.push(Submitted { record, args });
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
        )?;
    }
    let mut previous: Option<String> = None;
    let mut service_ids = Vec::new();
    for s in submission_order(plan, a.service.as_deref()) {
        if a.capacity && s.capacity_search.is_none() {
            continue;
        }
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
        let mut opts = SubmitOptions::default();
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
        let id = sub(&s.name, JobRole::Service, Some(&script), opts, array_size)?;
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
        sub("report", JobRole::Report, None, opts, None)?;
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
