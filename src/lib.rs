//! factorybench: benchmark the services of an HPC AI factory.
//!
//! The pipeline is visible in the modules: [`recipe`] (YAML → validated plan) → [`render`]
//! (plan → SLURM scripts, pure) → [`slurm`] (sbatch/squeue/scancel) → [`runner`] (load engine,
//! clients, recorder) → [`store`] (SQLite campaign file) → [`report`] (JSON/HTML/CSV/compare),
//! with [`monitor`] pushing live metrics. [`cli`] and [`commands`] are the thin edge: they parse
//! arguments and print. [`model`] holds the record types the layers share; the import order of
//! the layers is in `docs/architecture.md`.

pub mod capacity;
pub mod cli;
pub mod commands;
pub mod compat;
pub mod doctor;
pub mod exit;
pub mod fsinfo;
pub mod kinds;
pub mod model;
pub mod monitor;
pub mod out;
pub mod proc;
pub mod recipe;
pub mod redact;
pub mod render;
pub mod report;
pub mod rng;
pub mod runner;
pub mod shell;
pub mod slurm;
pub mod store;

/// Tool version and the git commit it was built from (when known).
pub fn version_string() -> &'static str {
    match option_env!("FACTORYBENCH_GIT_COMMIT") {
        Some(c) if !c.is_empty() => {
            Box::leak(format!("{} ({c})", env!("CARGO_PKG_VERSION")).into_boxed_str())
        }
        _ => env!("CARGO_PKG_VERSION"),
    }
}

/// The git commit this binary was built from, if the build knew it.
pub fn git_commit() -> Option<&'static str> {
    option_env!("FACTORYBENCH_GIT_COMMIT").filter(|c| !c.is_empty())
}
