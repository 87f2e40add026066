//! `report`, `compare`, `verify`.

use crate::compat::CompatNames;
use crate::exit;
use crate::exit::Failure;
use crate::report::analysis::AnalysisError;
use crate::report::compare::{self, CompareError};
pub use crate::report::format::{render, render_comparison, CompareFormat, ReportFormat};
use crate::report::{document::ReportDocument, integrity};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  factorybench report quickstart.db                      # summary on a terminal
  factorybench report quickstart.db --format html --out reports/quickstart.html
  factorybench report campaigns/NAME-DATE | jq .analysis.valid   # JSON when piped
  factorybench report metrics.db --format json --compat seed | jq .summary.total_requests

Without --format: a concise text summary on a terminal, JSON when stdout is a pipe or a
file; with --out, the format the file name says (.html, .csv, .prom, .txt), else JSON.

Exit codes: 0 every run valid, 3 a run is partial, 5 a run failed its validity gates (the \
report is written in every case; with --verdict-in-report 0 once it is written), 2 bad input.")]
pub struct ReportArgs {
    /// Campaign file (.db) or campaign directory (runs/*.db merged).
    pub campaign: PathBuf,
    /// Output format (default: text on a terminal, else JSON; with --out, from its extension).
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Write here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The earlier tool's JSON layout (top-level summary / timing / percentiles) instead of
    /// the versioned report (JSON only; implies --format json).
    #[arg(long, value_enum, value_name = "NAMES")]
    pub compat: Option<CompatNames>,
    /// Exit 0 once the report is written, whatever the verdict (which lives in the report
    /// and is printed on stderr): the report job of a SLURM campaign uses it so that a job
    /// that wrote its report ends COMPLETED.
    #[arg(long, requires = "out")]
    pub verdict_in_report: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Metrics and default limits: throughput_ops_per_s -10%, error_rate +0.01, \
latency_p50_ms/latency_p99_ms +10% (corrected), ttft_p99_ms/tpot_p99_ms/e2el_p99_ms +10%, \
output_tokens_per_s -10%, goodput_ratio -0.05; others are shown only (set a limit to gate on \
them). Millisecond metrics also have an absolute floor of 0.05 ms (--min-change). A change \
beyond its limit is a regression only when the data supports it: the 95 % interval of the \
change (batch means over 20 time batches of each run, or the spread of repeats with \
--repeats) excludes zero; otherwise it is inconclusive and says what would tell. An invalid or \
missing candidate service is a regression. Exit 4 on a regression (and, with \
--fail-on-inconclusive, on an inconclusive metric).

Examples:
  factorybench compare base.db cand.db
  factorybench compare base.json cand.db --threshold latency_p99_ms=5% --min-change latency_p99_ms=0.2ms
  factorybench compare base.db cand.db --repeats     # every run of the same recipe is a repeat"
)]
pub struct CompareArgs {
    /// Baseline: campaign (.db or directory) or JSON report.
    pub baseline: PathBuf,
    /// Candidate: campaign (.db or directory) or JSON report.
    pub candidate: PathBuf,
    /// METRIC=LIMIT: relative (`latency_p99_ms=10%`), absolute (`latency_p99_ms=+5ms`,
    /// `error_rate=0.01`) or `off`. Repeatable; overrides the defaults.
    #[arg(long)]
    pub threshold: Vec<String>,
    /// METRIC=AMOUNT: the absolute floor under a relative limit (`latency_p50_ms=0.1ms`;
    /// `latency_p50_ms=0` for none). Repeatable; default 0.05 ms for millisecond metrics.
    #[arg(long = "min-change", value_name = "METRIC=AMOUNT")]
    pub min_change: Vec<String>,
    /// Every measurement of a service with the latest one's recipe is a repeat: compare their
    /// mean, with their run-to-run spread as the interval (default: the latest measurement).
    #[arg(long)]
    pub repeats: bool,
    /// Exit 4 also when a metric is inconclusive (beyond its limit, but not supported).
    #[arg(long)]
    pub fail_on_inconclusive: bool,
    #[arg(long, value_enum, default_value_t = CompareFormat::Text)]
    pub format: CompareFormat,
    /// Write here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 the hash matches, 6 the content was modified after it was \
written (TAMPERED), 2 no hash or unreadable file."
)]
pub struct VerifyArgs {
    /// A report written by `factorybench report` (any format).
    pub report: PathBuf,
}

pub(crate) fn input_err(e: AnalysisError) -> anyhow::Error {
    if e.is_input_error() {
        Failure::invalid_input(e.to_string()).into()
    } else {
        e.into()
    }
}

fn write_out(out: Option<&Path>, content: &str) -> anyhow::Result<()> {
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

pub fn report(a: &ReportArgs) -> anyhow::Result<i32> {
    let analysis = crate::report::analyze_path(&a.campaign).map_err(input_err)?;
    let doc = ReportDocument::new(analysis, &a.campaign);
    let format = match (a.format, a.json, &a.out) {
        (Some(f), _, _) => f,
        (None, true, _) => ReportFormat::Json,
        (None, false, Some(p)) => ReportFormat::from_path(p),
        // The compatibility view is JSON only: no need to say so twice.
        (None, false, None) if a.compat.is_some() => ReportFormat::Json,
        (None, false, None) if std::io::IsTerminal::is_terminal(&std::io::stdout()) => {
            ReportFormat::Text
        }
        (None, false, None) => ReportFormat::Json,
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

pub fn compare(a: &CompareArgs) -> anyhow::Result<i32> {
    let mut opts = compare::CompareOptions {
        repeats: a.repeats,
        ..Default::default()
    };
    for t in &a.threshold {
        opts.thresholds
            .push(compare::parse_threshold(t).map_err(|e| Failure::invalid_input(e.to_string()))?);
    }
    for t in &a.min_change {
        opts.floors
            .push(compare::parse_floor(t).map_err(|e| Failure::invalid_input(e.to_string()))?);
    }
    let load = |p: &Path| -> anyhow::Result<_> {
        compare::load_side(p).map_err(|e| match e.downcast::<AnalysisError>() {
            Ok(ae) => input_err(ae),
            Err(e) => match e.downcast::<CompareError>() {
                Ok(ce) => Failure::invalid_input(ce.to_string()).into(),
                Err(e) => e,
            },
        })
    };
    let base = load(&a.baseline)?;
    let cand = load(&a.candidate)?;
    let c = compare::compare(
        &a.baseline.display().to_string(),
        &base,
        &a.candidate.display().to_string(),
        &cand,
        &opts,
    );
    let content = render_comparison(&c, a.format)?;
    write_out(a.out.as_deref(), &content)?;
    for w in c.hardware_warnings.iter().chain(&c.lost_runs) {
        eprintln!("warning: {w}");
    }
    Ok(
        if c.regressions > 0 || (a.fail_on_inconclusive && c.inconclusive > 0) {
            exit::REGRESSION
        } else {
            exit::OK
        },
    )
}

pub fn verify(a: &VerifyArgs) -> anyhow::Result<i32> {
    let bytes = std::fs::read(&a.report)
        .map_err(|e| Failure::invalid_input(format!("{}: {e}", a.report.display())))?;
    match integrity::verify(&bytes) {
        Ok(h) => {
            crate::outln!("ok: {} sha256 {h}", a.report.display())?;
            Ok(exit::OK)
        }
        Err(e @ integrity::VerifyError::NoHash) => {
            Err(Failure::invalid_input(format!("{}: {e}", a.report.display())).into())
        }
        Err(e) => {
            eprintln!("TAMPERED: {}: {e}", a.report.display());
            Ok(exit::TAMPERED)
        }
    }
}
