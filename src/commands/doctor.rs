//! `factorybench doctor [RECIPE] [--json]`: print the checks of [`crate::doctor`].

use crate::doctor::{self, Status};
use crate::exit;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The recipe to check against this site; without one, only the site is checked.
    pub recipe: Option<PathBuf>,
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
    /// Monitoring state directory (where `monitor up` records its endpoint).
    #[arg(long, env = "FACTORYBENCH_MONITOR_DIR", default_value_os_t = crate::monitor::stack::default_state_dir())]
    pub monitor_dir: PathBuf,
    /// The factorybench binary the batch jobs will run (default: this one).
    #[arg(long)]
    pub binary: Option<PathBuf>,
}

/// Exit 0 when nothing failed (warnings allowed), 1 when a check failed, 2 for an invalid
/// recipe.
pub fn exec(a: &DoctorArgs) -> anyhow::Result<i32> {
    let loaded = match &a.recipe {
        Some(p) => Some(super::load_recipe(p, None)?),
        None => None,
    };
    let binary = match &a.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()?,
    };
    let report = doctor::diagnose(loaded.as_ref().map(|l| &l.plan), &a.monitor_dir, &binary);
    if a.json {
        crate::outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        crate::out!("{}", report.text())?;
    }
    Ok(match report.worst() {
        Status::Fail => exit::FAILURE,
        _ => exit::OK,
    })
}
