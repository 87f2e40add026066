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
    /// Run array task N of the service's sweep (batch scripts pass $SLURM_ARRAY_TASK_ID).
    #[arg(long)]
    pub sweep_index: Option<usize>,
    /// No progress bars, plain log lines (default when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Record a failed run (failure_stage setup) with this message and exit 1; used by batch
    /// scripts when the service never became ready.
    #[arg(long, hide = true, requires = "service")]
    pub fail_setup: Option<String>,
}

pub fn exec(_a: &RunArgs) -> anyhow::Result<i32> {
    anyhow::bail!("run is not implemented yet")
}
