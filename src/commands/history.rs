//! `history`: trends over many campaigns, change points, and a CI gate on the newest one.

use crate::exit;
use crate::exit::Failure;
use crate::report::compare::parse_threshold;
use crate::report::history::{history, to_html, to_text};
use crate::report::ops::history_campaigns;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    Text,
    Json,
    Html,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  factorybench history nightly/                       # every campaign under nightly/
  factorybench history a.db b.db c.db d.db e.db --format html --out trend.html
  factorybench history nightly/ --threshold latency_p99_ms=5% --metric latency_p99_ms

A PATH is a campaign (a .db file, a SLURM campaign directory with runs/, or a JSON report) or a
directory holding campaigns (its *.db, *.json files and campaign subdirectories). Campaigns are
ordered by the start of their first run. Per service and metric: each campaign's value with the
95 % interval across its runs, change points (a mean shift beyond the metric's limit and beyond
3 standard errors), and a gate: the newest value against the median of up to 5 before it, with
the limits of `compare` (defaults, recipe compare_thresholds are not used, --threshold wins).

Exit codes: 0 no regression at the newest campaign, 4 a regression, 2 invalid input, 1 error.")]
pub struct HistoryArgs {
    /// Campaigns, or directories of campaigns.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Limit as on `compare` (METRIC=LIMIT, e.g. latency_p99_ms=5%); repeatable.
    #[arg(long)]
    pub threshold: Vec<String>,
    /// Only these metrics (repeatable; default: every metric of `compare`).
    #[arg(long)]
    pub metric: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: HistoryFormat,
    /// Write here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn exec(a: &HistoryArgs) -> anyhow::Result<i32> {
    let mut overrides = Vec::new();
    for t in &a.threshold {
        overrides.push(parse_threshold(t).map_err(|e| Failure::invalid_input(e.to_string()))?);
    }
    let campaigns = history_campaigns(&a.paths, &a.metric)?;
    let h = history(&campaigns, &overrides, &a.metric);
    let content = match a.format {
        HistoryFormat::Text => to_text(&h),
        HistoryFormat::Json => serde_json::to_string_pretty(&h)? + "\n",
        HistoryFormat::Html => to_html(&h),
    };
    match &a.out {
        Some(p) => std::fs::write(p, content)?,
        None => crate::out!("{content}")?,
    }
    Ok(if h.regressions > 0 {
        exit::REGRESSION
    } else {
        exit::OK
    })
}
