//! The report document: analysis + provenance, and the JSON format.

use super::analysis::{CampaignAnalysis, SCHEMA_VERSION};
use super::integrity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Where a report came from. Per-run provenance (host, SLURM job, recipe and its SHA-256,
/// tool version of the runner) is in `analysis.runs[].provenance` and `.recipe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportProvenance {
    /// SHA-256 of the report content (see `factorybench verify`): the file's bytes with this
    /// value replaced by 64 `0` characters.
    pub report_sha256: String,
    pub tool: String,
    /// Version of the factorybench that rendered the report.
    pub tool_version: String,
    pub git_commit: Option<String>,
    /// RFC 3339.
    pub generated_at: String,
    pub generated_on_host: String,
    /// The campaign path as given.
    pub campaign_path: String,
    /// `recipe.yml` of a campaign directory, when present.
    pub campaign_recipe: Option<RecipeFile>,
    /// Start of the earliest run and end of the latest, RFC 3339.
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub slurm_job_ids: Vec<String>,
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecipeFile {
    pub path: String,
    pub sha256: String,
}

/// The JSON report (`factorybench report --format json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "factorybench report")]
pub struct ReportDocument {
    /// Layout version of this document; bumped on incompatible changes.
    pub schema_version: u32,
    pub provenance: ReportProvenance,
    pub analysis: CampaignAnalysis,
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

impl ReportDocument {
    /// Wrap an analysis with provenance. `report_sha256` is the placeholder until rendered.
    pub fn new(analysis: CampaignAnalysis, campaign_path: &Path) -> Self {
        let campaign_recipe = campaign_path
            .is_dir()
            .then(|| campaign_path.join("recipe.yml"))
            .and_then(|p| {
                let bytes = std::fs::read(&p).ok()?;
                Some(RecipeFile {
                    path: p.display().to_string(),
                    sha256: hex::encode(Sha256::digest(&bytes)),
                })
            });
        ReportDocument {
            schema_version: SCHEMA_VERSION,
            provenance: ReportProvenance {
                report_sha256: integrity::PLACEHOLDER.to_string(),
                tool: "factorybench".into(),
                tool_version: env!("CARGO_PKG_VERSION").into(),
                git_commit: crate::git_commit().map(str::to_string),
                generated_at: humantime::format_rfc3339_millis(std::time::SystemTime::now())
                    .to_string(),
                generated_on_host: hostname(),
                campaign_path: campaign_path.display().to_string(),
                campaign_recipe,
                started_at: analysis.started_at.clone(),
                ended_at: analysis.ended_at.clone(),
                slurm_job_ids: analysis.slurm_job_ids.clone(),
                hosts: analysis.hosts.clone(),
            },
            analysis,
        }
    }

    /// Pretty JSON with its content hash.
    pub fn to_json(&self) -> String {
        let mut d = self.clone();
        d.provenance.report_sha256 = integrity::PLACEHOLDER.to_string();
        let mut s = serde_json::to_string_pretty(&d).expect("report serializes");
        s.push('\n');
        integrity::seal(s)
    }
}

/// The JSON Schema of [`ReportDocument`] (checked in as `schemas/report.schema.json`).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(ReportDocument);
    let mut s = serde_json::to_string_pretty(&schema).expect("schema serializes");
    s.push('\n');
    s
}
