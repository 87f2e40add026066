//! `factorybench push CAMPAIGN`: a finished campaign's final figures to a Pushgateway (one
//! group per run and per service measurement; see `report::push`), or `--delete` them.

use crate::compat::CompatNames;
use crate::exit;
use crate::exit::Failure;
use crate::monitor::push::{grouping_path, send_group, GroupOp};
use crate::monitor::stack::{self, PushTargetError};
use crate::report::push::{campaign_groups, DEFAULT_JOB};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

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
    if a.job.is_empty() {
        return Err(Failure::invalid_input("--job must not be empty").into());
    }
    if !(a.timeout.is_finite() && a.timeout > 0.0 && a.timeout <= 3600.0) {
        return Err(Failure::invalid_input("--timeout must be between 0 and 3600 seconds").into());
    }
    let analysis = crate::report::analyze_path(&a.campaign).map_err(super::report::input_err)?;
    let found =
        stack::one_shot_target(a.gateway.as_deref(), &a.state.state_dir).map_err(|e| match e {
            PushTargetError::Stack(_) => anyhow::Error::from(e),
            e => Failure::invalid_input(e.to_string()).into(),
        })?;
    let target = found.target;
    // A campaign directory's runs pushed live under its name (FB_CAMPAIGN_DIR); a campaign
    // file's under the recipe's benchmark name, which the file records.
    let campaign = if a.campaign.is_dir() {
        a.campaign
            .canonicalize()?
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| analysis.campaign.clone())
    } else {
        analysis.campaign.clone()
    };
    let groups = campaign_groups(&analysis, &a.job, &campaign, a.compat);
    let http = reqwest::Client::builder().no_proxy().build()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let timeout = Duration::from_secs_f64(a.timeout);
    let mut failed = 0usize;
    for g in &groups {
        let labels: Vec<(&str, &str)> = g.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let path = grouping_path(&labels);
        let op = if a.delete {
            GroupOp::Delete
        } else {
            GroupOp::Replace(&g.body)
        };
        let result = rt.block_on(send_group(
            &http,
            &target.url,
            target.auth.as_ref(),
            &path,
            op,
            timeout,
        ));
        match result {
            Ok(()) => crate::outln!(
                "{} {} {} {}",
                if a.delete { "deleted" } else { "pushed" },
                g.label("scope"),
                g.label("service"),
                g.label("run_id")
            )?,
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    eprintln!(
        "{} {} of {} groups (job {}, campaign {}) {} {} (credentials: {})",
        if a.delete { "deleted" } else { "pushed" },
        groups.len() - failed,
        groups.len(),
        a.job,
        campaign,
        if a.delete { "from" } else { "to" },
        crate::recipe::redact::url(&target.url),
        found.credentials_from
    );
    Ok(if failed == 0 { exit::OK } else { exit::FAILURE })
}
