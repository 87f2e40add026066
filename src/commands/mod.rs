//! One module per command group. Each exposes its clap `Args` and functions returning an exit
//! code; errors are mapped to exit codes by [`report_error`].

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

use crate::exit;
use crate::recipe::{LoadError, Loaded};
use std::path::Path;

/// Print an error for a person and choose the exit code: invalid input → 2, else 1. A
/// closed stdout (the reader of a pipe went away) is not an error: quiet exit 0.
pub fn report_error(e: &anyhow::Error) -> i32 {
    if crate::out::is_broken_pipe(e) {
        return exit::OK;
    }
    if let Some(le) = e.downcast_ref::<LoadError>() {
        match le {
            LoadError::Invalid(r) => eprintln!("{r}"),
            LoadError::CannotRun(c) => eprintln!("{c}"),
            LoadError::Io { .. } => eprintln!("error: {le}"),
        }
        return if le.is_invalid_input() {
            exit::INVALID_INPUT
        } else {
            exit::FAILURE
        };
    }
    if e.downcast_ref::<InvalidInput>().is_some() {
        eprintln!("error: {e:#}");
        return exit::INVALID_INPUT;
    }
    eprintln!("error: {e:#}");
    exit::FAILURE
}

/// An error caused by what the user asked for (unknown service, bad flag combination).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

/// Load a recipe for a command acting on `service` (every service when `None`), print its
/// warnings to stderr, and return it. A service this binary cannot run refuses only a
/// selection that holds it (the message lists the runnable services and `--service`).
pub fn load_recipe(path: &Path, service: Option<&str>) -> anyhow::Result<Loaded> {
    let loaded = crate::recipe::load_selected(path, service)?;
    let w = loaded.render_warnings();
    if !w.is_empty() {
        eprint!("{w}");
    }
    Ok(loaded)
}
