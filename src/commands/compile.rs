//! `compile` (recipe → campaign directory of batch scripts) and the hidden `ready` probe.

use crate::exit::{self, Failure};
use crate::render::campaign::{write_campaign, CampaignError, CampaignSpec};
use crate::render::Renderer;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  factorybench compile recipes/comprehensive.yml --out build/campaign\n  factorybench compile recipes/comprehensive.yml --out build/pg --service postgres-test\n  factorybench compile my.yml --out build/c --templates site-templates/ --force"
)]
pub struct CompileArgs {
    /// The recipe file.
    pub recipe: PathBuf,
    /// Campaign directory to create (recipe.yml, plan.json, scripts/, secrets/, logs/, runs/,
    /// endpoints/). It must not exist or be empty, unless --force.
    #[arg(long)]
    pub out: PathBuf,
    /// Only this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Site templates that override the built-in ones (same file names, e.g.
    /// service.sbatch.j2, runtime/apptainer.sh.j2).
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Replace --out when it exists and is not empty.
    #[arg(long)]
    pub force: bool,
}

pub fn exec(a: &CompileArgs) -> anyhow::Result<i32> {
    let loaded = super::load_recipe(&a.recipe, a.service.as_deref())?;
    let renderer = match &a.templates {
        Some(dir) => {
            if !dir.is_dir() {
                return Err(Failure::invalid_input(format!(
                    "--templates {}: not a directory",
                    dir.display()
                ))
                .into());
            }
            Renderer::with_site_templates(dir)?
        }
        None => Renderer::new(),
    };
    let spec = CampaignSpec {
        out: a.out.clone(),
        service: a.service.clone(),
        force: a.force,
        fb_bin: crate::slurm::factorybench_bin()?.display().to_string(),
    };
    let out = write_campaign(&loaded, &renderer, &spec).map_err(CampaignError::into_error)?;
    crate::outln!(
        "compiled {} service{} into {}",
        out.services.len(),
        if out.services.len() == 1 { "" } else { "s" },
        out.dir.display()
    )?;
    for f in &out.files {
        crate::outln!("  {}", f.display())?;
    }
    Ok(exit::OK)
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
    /// Give up at once when this process (the service started by the batch script) has exited.
    #[arg(long)]
    pub watch_pid: Option<u32>,
    /// The process this job started the service as: once the service answers, the listening
    /// socket of its port must belong to this process or a descendant, else the server that
    /// answered is someone else's and `ready` exits 8 (default: --watch-pid).
    #[arg(long, value_name = "PID")]
    pub owner_pid: Option<u32>,
    /// Probe the service at this address instead of loopback (a service that binds the node's
    /// address because its clients run on other nodes).
    #[arg(long, value_name = "ADDR")]
    pub endpoint_host: Option<String>,
}

/// Wait until the service really answers its health endpoint (used by batch scripts).
/// Exit 0 when ready, 1 when the budget ran out.
pub fn ready(a: &ReadyArgs) -> anyhow::Result<i32> {
    let loaded = super::load_recipe(&a.recipe, Some(&a.service))?;
    let Some(svc) = loaded.plan.service(&a.service) else {
        let names: Vec<&str> = loaded
            .plan
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        return Err(Failure::invalid_input(format!(
            "unknown service `{}` (the recipe has: {})",
            a.service,
            names.join(", ")
        ))
        .into());
    };
    let budget_s = a.timeout.unwrap_or(f64::from(svc.readiness.timeout_s));
    if !(budget_s.is_finite() && (0.0..=86_400.0 * 365.0).contains(&budget_s)) {
        return Err(Failure::invalid_input(format!(
            "--timeout {budget_s}: must be a number of seconds between 0 and 31536000 (365 days)"
        ))
        .into());
    }
    let outcome = crate::runner::lifecycle::wait_ready(
        svc,
        &crate::runner::lifecycle::ReadyOptions {
            budget_s,
            watch_pid: a.watch_pid,
            owner_pid: a.owner_pid,
            endpoint_host: a.endpoint_host.clone(),
        },
    )?;
    Ok(outcome.exit_code())
}
