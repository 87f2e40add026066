//! `report`, `compare`, `verify`.

use crate::compat::CompatNames;
use crate::exit;
use crate::exit::Failure;
pub use crate::report::format::{render, render_comparison, CompareFormat, ReportFormat};
use crate::report::integrity;
use crate::report::ops::{compare_campaigns, write_report, CompareRequest, ReportOptions};
use clap::Args;
use std::path::PathBuf;

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

pub fn report(a: &ReportArgs) -> anyhow::Result<i32> {
    write_report(&ReportOptions {
        campaign: a.campaign.clone(),
        format: match (a.format, a.json) {
            (Some(f), _) => Some(f),
            (None, true) => Some(ReportFormat::Json),
            (None, false) => None,
        },
        out: a.out.clone(),
        compat: a.compat,
        verdict_in_report: a.verdict_in_report,
    })
}

pub fn compare(a: &CompareArgs) -> anyhow::Result<i32> {
    compare_campaigns(&CompareRequest {
        baseline: a.baseline.clone(),
        candidate: a.candidate.clone(),
        thresholds: a.threshold.clone(),
        min_changes: a.min_change.clone(),
        repeats: a.repeats,
        fail_on_inconclusive: a.fail_on_inconclusive,
        format: a.format,
        out: a.out.clone(),
    })
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
