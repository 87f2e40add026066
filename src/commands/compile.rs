use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The recipe file.
    pub recipe: PathBuf,
    /// Directory to write the scripts into.
    #[arg(long)]
    pub out: PathBuf,
    /// Only this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Site templates that override the built-in ones (same file names).
    #[arg(long)]
    pub templates: Option<PathBuf>,
}

pub fn exec(_a: &CompileArgs) -> anyhow::Result<i32> {
    anyhow::bail!("compile is not implemented yet")
}

#[derive(Debug, Args)]
pub struct ReadyArgs {
    /// The recipe file.
    pub recipe: PathBuf,
    /// The service to probe.
    #[arg(long)]
    pub service: String,
    /// Give up after this many seconds (default: the service's readiness_timeout).
    #[arg(long)]
    pub timeout: Option<f64>,
}

/// Wait until the service really answers its health endpoint (used by batch scripts).
pub fn ready(_a: &ReadyArgs) -> anyhow::Result<i32> {
    anyhow::bail!("ready is not implemented yet")
}
