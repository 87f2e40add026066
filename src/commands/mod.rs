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

use crate::exit::Failure;
use crate::recipe::Loaded;
use std::path::Path;

/// Load a recipe for a command acting on `service` (every service when `None`), print its
/// warnings to stderr, and return it. A service this binary cannot run refuses only a
/// selection that holds it (the message lists the runnable services and `--service`).
pub fn load_recipe(path: &Path, service: Option<&str>) -> anyhow::Result<Loaded> {
    let loaded = crate::recipe::load_selected(path, service).map_err(Failure::from)?;
    let w = loaded.render_warnings();
    if !w.is_empty() {
        eprint!("{w}");
    }
    Ok(loaded)
}
