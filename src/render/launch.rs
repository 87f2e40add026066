//! How a service is launched in a container so that it listens on the node's loopback
//! address, on the resolved port, with the campaign's credentials.
//!
//! The kind-specific arguments live in each kind's descriptor ([`crate::kinds`]); this applies
//! them. The templates in `templates/slurm/` turn the result into shell. Nothing here is
//! quoted: the templates quote every value.

use crate::recipe::Service;

pub use crate::kinds::{Launch, LaunchCtx, Word, BIND_HOST};

fn has_env(svc: &Service, name: &str) -> bool {
    svc.container.env.iter().any(|e| e.name == name)
}

/// Launch settings for `svc` (used for the `apptainer` and `podman` runtimes; the `host`
/// runtime only gets [`Launch::env`], its `start_command` is the user's).
/// `model_var` names the script variable holding the model when a sweep varies it.
pub fn launch(svc: &Service, model_var: Option<&str>) -> Launch {
    let cx = LaunchCtx {
        port: svc.endpoint.port,
        model_var,
        workload: &svc.workload,
        extra_args: &svc.container.extra_args,
    };
    let mut l = (crate::kinds::server_of(svc.kind, &svc.workload).launch)(&cx);
    // The recipe's own `environment` wins over the kind's defaults.
    l.env.retain(|(k, _)| !has_env(svc, k));
    l.secret_env.retain(|(k, _)| !has_env(svc, k));
    l
}
