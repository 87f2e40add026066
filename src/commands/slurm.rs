use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct SubmitArgs {
    pub recipe: PathBuf,
    #[arg(long)]
    pub service: Option<String>,
    /// Compile and print the sbatch commands without submitting.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub sequential: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub campaign: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    pub campaign: PathBuf,
    #[arg(long)]
    pub service: Option<String>,
    #[arg(long, short)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    pub campaign: PathBuf,
}

pub fn submit(_a: &SubmitArgs) -> anyhow::Result<i32> {
    anyhow::bail!("submit is not implemented yet")
}
pub fn status(_a: &StatusArgs) -> anyhow::Result<i32> {
    anyhow::bail!("status is not implemented yet")
}
pub fn logs(_a: &LogsArgs) -> anyhow::Result<i32> {
    anyhow::bail!("logs is not implemented yet")
}
pub fn cancel(_a: &CancelArgs) -> anyhow::Result<i32> {
    anyhow::bail!("cancel is not implemented yet")
}
