//! The report commands' operations without the command line: write a campaign's report with
//! its verdict as the exit code ([`write_report`]), load one side of a comparison
//! ([`compare_side`]), list the campaigns of `history` paths ([`campaigns_of`]) and push a
//! campaign's final figures ([`push_campaign`]). Errors carry their exit code
//! ([`crate::exit::Failure`]): a bad input is exit 2.

use super::analysis::AnalysisError;
use super::compare::{self, CompareError};
use super::format::{render, ReportFormat};
use super::{document::ReportDocument, integrity};
use crate::compat::CompatNames;
use crate::exit::{self, Failure};
use std::path::{Path, PathBuf};

/// What `report` writes.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// Campaign file (.db) or campaign directory.
    pub campaign: PathBuf,
    /// The format (default: from `out`'s extension, else text on a terminal, else JSON).
    pub format: Option<ReportFormat>,
    /// Write here instead of stdout.
    pub out: Option<PathBuf>,
    /// The earlier tool's JSON layout.
    pub compat: Option<CompatNames>,
    /// Exit 0 once the report is written, whatever the verdict.
    pub verdict_in_report: bool,
}

/// An analysis error as the error a command returns: bad input (exit 2) or a failure.
pub fn input_err(e: AnalysisError) -> anyhow::Error {
    if e.is_input_error() {
        Failure::invalid_input(e.to_string()).into()
    } else {
        e.into()
    }
}

pub fn write_out(out: Option<&Path>, content: &str) -> anyhow::Result<()> {
    match out {
        Some(p) => {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(p, content)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))
        }
        None => {
            use std::io::Write;
            let mut o = std::io::stdout().lock();
            o.write_all(content.as_bytes())?;
            Ok(())
        }
    }
}

/// Write the report `a` asks for; the exit code is its verdict (0 valid, 3 partial, 5 invalid;
/// 0 with `verdict_in_report`). Invalid runs are named on stderr.
pub fn write_report(a: &ReportOptions) -> anyhow::Result<i32> {
    let analysis = crate::report::analyze_path(&a.campaign).map_err(input_err)?;
    let doc = ReportDocument::new(analysis, &a.campaign);
    let format = match (a.format, &a.out) {
        (Some(f), _) => f,
        (None, Some(p)) => ReportFormat::from_path(p),
        // The compatibility view is JSON only: no need to say so twice.
        (None, None) if a.compat.is_some() => ReportFormat::Json,
        (None, None) if std::io::IsTerminal::is_terminal(&std::io::stdout()) => ReportFormat::Text,
        (None, None) => ReportFormat::Json,
    };
    let content = match a.compat {
        None => render(&doc, format),
        Some(CompatNames::Seed) if format == ReportFormat::Json => {
            crate::report::seed::to_seed_json(&doc)
        }
        Some(c) => {
            return Err(Failure::invalid_input(format!(
                "--compat {} is a JSON view: use it with --format json",
                c.as_str()
            ))
            .into())
        }
    };
    write_out(a.out.as_deref(), &content)?;
    let an = &doc.analysis;
    if let Some(p) = &a.out {
        eprintln!(
            "wrote {} ({} runs, sha256 {})",
            p.display(),
            an.runs.len(),
            integrity::recorded_hash(content.as_bytes()).unwrap_or_default()
        );
    }
    // The text summary on stdout already lists every failed gate.
    let summary_on_stdout = format == ReportFormat::Text && a.out.is_none();
    for r in an.runs.iter().filter(|r| !r.valid && !summary_on_stdout) {
        let reasons: Vec<&str> = r
            .invalid_reasons
            .iter()
            .map(|x| x.message.as_str())
            .collect();
        eprintln!(
            "INVALID {} ({}): {}",
            r.service,
            r.run_id,
            reasons.join("; ")
        );
    }
    let code = if an.partial {
        exit::PARTIAL
    } else if !an.valid {
        exit::INVALID_RUN
    } else {
        exit::OK
    };
    if a.verdict_in_report {
        let verdict = match code {
            exit::PARTIAL => "PARTIAL",
            exit::INVALID_RUN => "INVALID",
            _ => "VALID",
        };
        eprintln!(
            "verdict: {verdict} (the report is written; exit 0 with --verdict-in-report, the verdict is in the report)"
        );
        return Ok(exit::OK);
    }
    Ok(code)
}

/// One side of `compare` (a campaign or a JSON report); unreadable or unknown input is exit 2.
pub fn compare_side(p: &Path) -> anyhow::Result<super::analysis::CampaignAnalysis> {
    compare::load_side(p).map_err(|e| match e.downcast::<AnalysisError>() {
        Ok(ae) => input_err(ae),
        Err(e) => match e.downcast::<CompareError>() {
            Ok(ce) => Failure::invalid_input(ce.to_string()).into(),
            Err(e) => e,
        },
    })
}

/// What `push` sends (or deletes).
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Campaign file (.db) or campaign directory.
    pub campaign: PathBuf,
    /// The Pushgateway (default: `$PUSHGATEWAY_URL`, else the monitoring stack's).
    pub gateway: Option<String>,
    /// The `job` label.
    pub job: String,
    /// Delete the groups instead of pushing them.
    pub delete: bool,
    /// Also the earlier tool's metric names.
    pub compat: Option<CompatNames>,
    /// Seconds each request may take.
    pub timeout_s: f64,
    /// The monitoring stack's state directory.
    pub state_dir: PathBuf,
}

/// Where [`push_campaign`] pushed.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The `campaign` label.
    pub campaign: String,
    pub url: String,
    /// Where the credentials came from (for the closing line).
    pub credentials_from: &'static str,
}

/// Push a finished campaign's groups (one per run and per service measurement) to the
/// Pushgateway, or delete them; each group's line goes to stdout, a failed one to stderr.
/// Returns (groups sent, groups, where).
pub fn push_campaign(a: &PushOptions) -> anyhow::Result<(usize, usize, Pushed)> {
    use crate::monitor::push::{grouping_path, send_group, GroupOp};
    use crate::monitor::stack::{self, PushTargetError};
    if a.job.is_empty() {
        return Err(Failure::invalid_input("--job must not be empty").into());
    }
    if !(a.timeout_s.is_finite() && a.timeout_s > 0.0 && a.timeout_s <= 3600.0) {
        return Err(Failure::invalid_input("--timeout must be between 0 and 3600 seconds").into());
    }
    let analysis = crate::report::analyze_path(&a.campaign).map_err(input_err)?;
    let found =
        stack::one_shot_target(a.gateway.as_deref(), &a.state_dir).map_err(|e| match e {
            PushTargetError::Stack(_) => anyhow::Error::from(e),
            e => Failure::invalid_input(e.to_string()).into(),
        })?;
    let target = found.target;
    // A campaign directory's runs pushed live under its name (FB_CAMPAIGN_DIR); a campaign
    // file's under the recipe's benchmark name, which the file records.
    let campaign = if a.campaign.is_dir() {
        a.campaign
            .canonicalize()?
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| analysis.campaign.clone())
    } else {
        analysis.campaign.clone()
    };
    let groups = super::push::campaign_groups(&analysis, &a.job, &campaign, a.compat);
    let http = reqwest::Client::builder().no_proxy().build()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let timeout = std::time::Duration::from_secs_f64(a.timeout_s);
    let mut failed = 0usize;
    for g in &groups {
        let labels: Vec<(&str, &str)> = g.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let path = grouping_path(&labels);
        let op = if a.delete {
            GroupOp::Delete
        } else {
            GroupOp::Replace(&g.body)
        };
        let result = rt.block_on(send_group(
            &http,
            &target.url,
            target.auth.as_ref(),
            &path,
            op,
            timeout,
        ));
        match result {
            Ok(()) => crate::outln!(
                "{} {} {} {}",
                if a.delete { "deleted" } else { "pushed" },
                g.label("scope"),
                g.label("service"),
                g.label("run_id")
            )?,
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    Ok((
        groups.len() - failed,
        groups.len(),
        Pushed {
            campaign,
            url: target.url,
            credentials_from: found.credentials_from,
        },
    ))
}

/// The campaigns a path names (see the help).
fn campaigns_of(p: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !p.exists() {
        return Err(
            Failure::invalid_input(format!("{}: no such file or directory", p.display())).into(),
        );
    }
    if p.is_file() || p.join("runs").is_dir() || p.join("campaign.db").is_file() {
        return Ok(vec![p.to_path_buf()]);
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(p)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|c| c.is_dir() || c.extension().is_some_and(|e| e == "db" || e == "json"))
        .collect();
    out.sort();
    Ok(out)
}

/// The campaigns `history` reads from `paths` (each a campaign, or a directory of them), with
/// their analyses, after checking that every metric of `metrics` is known.
pub fn history_campaigns(
    paths: &[PathBuf],
    metrics: &[String],
) -> anyhow::Result<Vec<(String, super::analysis::CampaignAnalysis)>> {
    let known: Vec<&str> = crate::report::compare::METRICS
        .iter()
        .map(|m| m.name)
        .collect();
    for m in metrics {
        if !known.contains(&m.as_str()) {
            let hint = crate::recipe::diag::did_you_mean(m, &known)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(Failure::invalid_input(format!("unknown metric `{m}`{hint}")).into());
        }
    }
    let mut campaigns = Vec::new();
    for p in paths {
        for c in campaigns_of(p)? {
            let analysis = compare::load_side(&c)?;
            campaigns.push((c.display().to_string(), analysis));
        }
    }
    if campaigns.is_empty() {
        return Err(Failure::invalid_input("no campaign found in the given paths").into());
    }
    Ok(campaigns)
}

/// What `compare` compares (the thresholds as `METRIC=LIMIT` text).
#[derive(Debug, Clone)]
pub struct CompareRequest {
    pub baseline: PathBuf,
    pub candidate: PathBuf,
    /// `METRIC=LIMIT` overrides of the default limits.
    pub thresholds: Vec<String>,
    /// `METRIC=AMOUNT` absolute floors.
    pub min_changes: Vec<String>,
    /// Compare the mean of every repeat.
    pub repeats: bool,
    /// Exit 4 also on an inconclusive metric.
    pub fail_on_inconclusive: bool,
    pub format: super::format::CompareFormat,
    /// Write here instead of stdout.
    pub out: Option<PathBuf>,
}

/// Compare two campaigns, write the comparison and return its exit code (4 on a regression).
pub fn compare_campaigns(a: &CompareRequest) -> anyhow::Result<i32> {
    let mut opts = compare::CompareOptions {
        repeats: a.repeats,
        ..Default::default()
    };
    for t in &a.thresholds {
        opts.thresholds
            .push(compare::parse_threshold(t).map_err(|e| Failure::invalid_input(e.to_string()))?);
    }
    for t in &a.min_changes {
        opts.floors
            .push(compare::parse_floor(t).map_err(|e| Failure::invalid_input(e.to_string()))?);
    }
    let base = compare_side(&a.baseline)?;
    let cand = compare_side(&a.candidate)?;
    let c = compare::compare(
        &a.baseline.display().to_string(),
        &base,
        &a.candidate.display().to_string(),
        &cand,
        &opts,
    );
    let content = super::format::render_comparison(&c, a.format)?;
    write_out(a.out.as_deref(), &content)?;
    for w in c.hardware_warnings.iter().chain(&c.lost_runs) {
        eprintln!("warning: {w}");
    }
    Ok(
        if c.regressions > 0 || (a.fail_on_inconclusive && c.inconclusive > 0) {
            exit::REGRESSION
        } else if c.candidate_generator_invalid {
            exit::INVALID_RUN
        } else {
            exit::OK
        },
    )
}
