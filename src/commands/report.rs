use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Campaign file (.db) or campaign directory.
    pub campaign: PathBuf,
    #[arg(long, default_value = "json")]
    pub format: String,
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    pub baseline: PathBuf,
    pub candidate: PathBuf,
    /// METRIC=LIMIT, e.g. p99_ms=10% or error_rate=+0.01
    #[arg(long)]
    pub threshold: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    pub report: PathBuf,
}

pub fn report(_a: &ReportArgs) -> anyhow::Result<i32> {
    anyhow::bail!("report is not implemented yet")
}
pub fn compare(_a: &CompareArgs) -> anyhow::Result<i32> {
    anyhow::bail!("compare is not implemented yet")
}
pub fn verify(_a: &VerifyArgs) -> anyhow::Result<i32> {
    anyhow::bail!("verify is not implemented yet")
}
