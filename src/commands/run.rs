use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The recipe file.
    pub recipe: PathBuf,
    /// Only this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Run services one after another instead of in parallel.
    #[arg(long)]
    pub sequential: bool,
    /// At most this many services at once.
    #[arg(long)]
    pub max_workers: Option<usize>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Campaign file (default: global.metrics_db of the recipe).
    #[arg(long)]
    pub db: Option<PathBuf>,
}

pub fn exec(_a: &RunArgs) -> anyhow::Result<i32> {
    anyhow::bail!("run is not implemented yet")
}
