//! `recipe`: raw YAML → validated [`Plan`].
//!
//! Two stages: [`yaml::parse`] keeps every node's position; [`decode`] turns the tree into a
//! typed plan and collects every problem (with `file:line:col`, a snippet and a suggestion).

pub mod decode;
pub mod diag;
pub mod endpoint;
pub mod plan;
pub mod threshold;
pub mod units;
pub mod yaml;

pub use diag::{Diagnostic, RecipeError, Severity};
pub use plan::*;

use sha2::{Digest, Sha256};
use std::path::Path;

/// A validated plan plus the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub plan: Plan,
    pub warnings: Vec<Diagnostic>,
    pub source_text: String,
}

impl Loaded {
    /// Render the warnings like compiler output (empty when there are none).
    pub fn render_warnings(&self) -> String {
        self.warnings
            .iter()
            .map(|d| diag::render(d, &self.plan.source_path, &self.source_text))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read recipe {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] Box<RecipeError>),
}

/// Read and validate a recipe file.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(&text, path).map_err(|e| LoadError::Invalid(Box::new(e)))
}

/// Validate recipe text; `path` is only used in messages.
pub fn parse_str(text: &str, path: &Path) -> Result<Loaded, RecipeError> {
    let sha = hex::encode(Sha256::digest(text.as_bytes()));
    let fail = |diagnostics| RecipeError {
        file: path.to_path_buf(),
        source_text: text.to_string(),
        diagnostics,
    };
    let root = match yaml::parse(text) {
        Ok(r) => r,
        Err(e) => {
            return Err(fail(vec![Diagnostic {
                severity: Severity::Error,
                path: String::new(),
                pos: e.pos,
                message: e.message,
                help: None,
            }]))
        }
    };
    let mut cx = decode::Ctx::default();
    let plan = decode::decode(&root, path.to_path_buf(), sha, &mut cx);
    // Sort by position so the output reads top to bottom.
    cx.diags.sort_by_key(|d| (d.pos.line, d.pos.col));
    match plan {
        Some(plan) if !cx.diags.iter().any(|d| d.severity == Severity::Error) => Ok(Loaded {
            plan,
            warnings: cx.diags,
            source_text: text.to_string(),
        }),
        _ => Err(fail(cx.diags)),
    }
}

impl Service {
    /// The service as array task `index` of its sweep runs it (the value applied).
    pub fn with_sweep_index(&self, index: usize) -> Option<Service> {
        let sweep = self.sweep.as_ref()?;
        let value = sweep.values.get(index)?;
        let mut s = self.clone();
        match sweep.param {
            SweepParam::ClientCount => s.load.clients = value.parse().ok()?,
            SweepParam::RequestsPerSecond => {
                s.load.target_rate_per_client_per_s = value.parse().ok()?;
                if s.load.target_rate_per_client_per_s == 0.0 {
                    s.load.arrival = Arrival::Closed;
                }
            }
            SweepParam::Model => match &mut s.workload {
                Workload::Llm(l) => l.model = value.clone(),
                _ => return None,
            },
            SweepParam::BatchSize => match &mut s.workload {
                Workload::Vectordb(v) => v.batch_size = value.parse().ok()?,
                Workload::Database(d) => d.batch_size = value.parse().ok()?,
                _ => return None,
            },
        }
        s.sweep = None;
        Some(s)
    }
}
