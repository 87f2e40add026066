//! `factorybench push CAMPAIGN`: a finished campaign's final figures to a Pushgateway (one
//! group per run and per service measurement; see `report::push`), or `--delete` them.

use crate::compat::CompatNames;
use crate::exit;
use crate::report::ops::{push_campaign, PushOptions};
use crate::report::push::DEFAULT_JOB;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  factorybench push campaigns/NAME-DATE                 # to the running `monitor up` stack
  factorybench push metrics.db --gateway http://pgw:9091 --job nightly
  factorybench push metrics.db --compat seed            # also the earlier tool's benchmark_* names
  factorybench push metrics.db --delete                 # remove the campaign's groups again

The Pushgateway: --gateway, else $PUSHGATEWAY_URL, else the `monitor up` stack's. Credentials
are never taken from the command line: the stack's own password file when the URL is the
stack's Pushgateway, else the 0600 file named by $PUSHGATEWAY_PASSWORD_FILE, else
$PUSHGATEWAY_PASSWORD (user factorybench, or $PUSHGATEWAY_USER).

Each run and each service measurement is one group (job, campaign, service, scope, run_id):
pushing again replaces it, never adds to it. Exit codes: 0 every group pushed, 1 a push failed,
2 bad input.")]
pub struct PushArgs {
    /// Campaign file (.db) or campaign directory.
    pub campaign: PathBuf,
    /// Pushgateway base URL (no credentials in it).
    #[arg(long, value_name = "URL")]
    pub gateway: Option<String>,
    /// The `job` label of the groups.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_JOB)]
    pub job: String,
    /// Delete the campaign's groups instead of pushing them.
    #[arg(long)]
    pub delete: bool,
    /// Also push the earlier tool's metric names.
    #[arg(long, value_enum, value_name = "NAMES")]
    pub compat: Option<CompatNames>,
    /// Seconds each request may take.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    #[command(flatten)]
    pub state: super::monitor::StateArgs,
}

pub fn exec(a: &PushArgs) -> anyhow::Result<i32> {
    let (pushed, groups, found) = push_campaign(&PushOptions {
        campaign: a.campaign.clone(),
        gateway: a.gateway.clone(),
        job: a.job.clone(),
        delete: a.delete,
        compat: a.compat,
        timeout_s: a.timeout,
        state_dir: a.state.state_dir.clone(),
    })?;
    eprintln!(
        "{} {} of {} groups (job {}, campaign {}) {} {} (credentials: {})",
        if a.delete { "deleted" } else { "pushed" },
        pushed,
        groups,
        a.job,
        found.campaign,
        if a.delete { "from" } else { "to" },
        crate::recipe::redact::url(&found.url),
        found.credentials_from
    );
    Ok(if pushed == groups {
        exit::OK
    } else {
        exit::FAILURE
    })
}
