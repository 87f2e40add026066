//! One module per command group. Each exposes its clap `Args` and functions returning an exit
//! code; errors carry their exit code (`exit::Failure`), which `cli` maps.

pub mod capacity;
pub mod compile;
pub mod doctor;
pub mod history;
pub mod monitor;
pub mod push;
pub mod report;
pub mod run;
pub mod slurm;
pub mod validate;

use crate::exit::{self, Failure};
use crate::recipe::{LoadError, Loaded};
use std::path::Path;

/// A recipe that did not load, as the error `cli` shows: its diagnostics as they are (invalid
/// input, exit 2; a service this binary cannot run, exit 2 or 1), an unreadable file with
/// `error: `.
pub fn load_failure(le: LoadError) -> Failure {
    let code = if le.is_invalid_input() {
        exit::INVALID_INPUT
    } else {
        exit::FAILURE
    };
    match &le {
        LoadError::Invalid(r) => Failure::plain(code, r),
        LoadError::CannotRun(c) => Failure::plain(code, c),
        LoadError::Io { .. } => Failure::new(code, anyhow::anyhow!("{le}")),
    }
}

/// Load a recipe for a command acting on `service` (every service when `None`), print its
/// warnings to stderr, and return it. A service this binary cannot run refuses only a
/// selection that holds it (the message lists the runnable services and `--service`).
pub fn load_recipe(path: &Path, service: Option<&str>) -> anyhow::Result<Loaded> {
    let loaded = crate::recipe::load_selected(path, service).map_err(load_failure)?;
    let w = loaded.render_warnings();
    if !w.is_empty() {
        eprint!("{w}");
    }
    Ok(loaded)
}
