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
