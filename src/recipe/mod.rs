//! `recipe`: raw YAML → validated [`Plan`].
//!
//! Two stages: [`yaml::parse`] keeps every node's position; [`decode`] turns the tree into a
//! typed plan and collects every problem (with `file:line:col`, a snippet and a suggestion).

pub mod decode;
pub mod diag;
pub mod endpoint;
pub mod plan;
pub mod redact;
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
    /// Errors at services this binary cannot run ([`Diagnostic::cannot_run`]); empty from the
    /// strict [`load`] / [`parse_str`]. Such a service is still in `plan`: select around it
    /// with [`Loaded::select`].
    pub cannot_run: Vec<Diagnostic>,
}

/// A recipe whose selection includes a service this binary cannot run.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}\n{hint}")]
pub struct CannotRunError {
    pub error: RecipeError,
    /// "runnable services: …; choose one with --service NAME".
    pub hint: String,
    /// The services that can run, in recipe order.
    pub runnable: Vec<String>,
}

impl Loaded {
    /// Render the warnings like compiler output (empty when there are none).
    pub fn render_warnings(&self) -> String {
        self.warnings
            .iter()
            .map(|d| diag::render(d, &self.plan.source_path, &self.source_text))
            .collect()
    }

    /// The first reason each service cannot run, by service name.
    pub fn blocked(&self) -> Vec<(&str, &Diagnostic)> {
        let mut out: Vec<(&str, &Diagnostic)> = Vec::new();
        for d in &self.cannot_run {
            let name = d
                .service_index()
                .and_then(|i| self.plan.services.get(i))
                .map(|s| s.name.as_str())
                .unwrap_or("");
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, d));
            }
        }
        out
    }

    /// Why `service` cannot run in this binary, if it cannot.
    pub fn cannot_run_reason(&self, service: &str) -> Option<&Diagnostic> {
        self.blocked()
            .into_iter()
            .find(|(n, _)| *n == service)
            .map(|(_, d)| d)
    }

    /// The services this binary can run, in recipe order.
    pub fn runnable(&self) -> Vec<&str> {
        self.plan
            .services
            .iter()
            .map(|s| s.name.as_str())
            .filter(|n| self.cannot_run_reason(n).is_none())
            .collect()
    }

    /// The recipe for a command that acts on `service` (or on every service when `None`):
    /// refused when the selection holds a service this binary cannot run, with the runnable
    /// services and the `--service` flag in the message. A selected runnable service is never
    /// blocked by another one. An unknown `service` passes (the command names it).
    pub fn select(self, service: Option<&str>) -> Result<Loaded, CannotRunError> {
        let blocked = match service {
            None => !self.cannot_run.is_empty(),
            Some(name) => self.cannot_run_reason(name).is_some(),
        };
        if !blocked {
            return Ok(self);
        }
        let runnable: Vec<String> = self.runnable().iter().map(|s| s.to_string()).collect();
        let diagnostics: Vec<Diagnostic> = match service {
            None => self.cannot_run.clone(),
            Some(name) => self.cannot_run_reason(name).into_iter().cloned().collect(),
        };
        let names: Vec<&str> = self.blocked().iter().map(|(n, _)| *n).collect();
        let hint = match (service, runnable.first()) {
            (_, None) => "no service of this recipe can run with this binary".to_string(),
            (Some(name), Some(_)) => format!(
                "service `{name}` cannot run with this binary; runnable services: {}",
                runnable.join(", ")
            ),
            (None, Some(first)) => format!(
                "{} cannot run with this binary; select a runnable service with --service NAME \
                 (runnable: {}), e.g. --service {first}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                runnable.join(", ")
            ),
        };
        Err(CannotRunError {
            error: RecipeError {
                file: self.plan.source_path.clone(),
                source_text: self.source_text.clone(),
                diagnostics,
            },
            hint,
            runnable,
        })
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
    #[error(transparent)]
    CannotRun(Box<CannotRunError>),
}

impl LoadError {
    /// Whether the user named something that cannot be a recipe (missing file, a directory,
    /// no permission): exit 2 like an invalid recipe. Other I/O errors are failures (exit 1).
    pub fn is_invalid_input(&self) -> bool {
        match self {
            LoadError::Invalid(_) | LoadError::CannotRun(_) => true,
            LoadError::Io { source, .. } => {
                matches!(
                    source.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::PermissionDenied
                        | std::io::ErrorKind::InvalidInput
                ) || matches!(source.raw_os_error(), Some(libc::EISDIR | libc::ENOTDIR))
            }
        }
    }
}

/// Largest recipe file accepted (real recipes are a few KiB).
pub const MAX_RECIPE_BYTES: u64 = 4 << 20;

/// Read and validate a recipe file: every service must be one this binary can run.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    strict(load_lenient(path)?).map_err(|e| LoadError::Invalid(Box::new(e)))
}

/// Read a recipe for a command acting on `service` (every service when `None`): a service
/// this binary cannot run blocks only itself ([`Loaded::select`]).
pub fn load_selected(path: &Path, service: Option<&str>) -> Result<Loaded, LoadError> {
    load_lenient(path)?
        .select(service)
        .map_err(|e| LoadError::CannotRun(Box::new(e)))
}

/// The strict form: the errors at services this binary cannot run make the recipe invalid.
fn strict(l: Loaded) -> Result<Loaded, RecipeError> {
    if l.cannot_run.is_empty() {
        return Ok(l);
    }
    let mut diagnostics = l.warnings;
    diagnostics.extend(l.cannot_run);
    diagnostics.sort_by_key(|d| (d.pos.line, d.pos.col));
    Err(RecipeError {
        file: l.plan.source_path,
        source_text: l.source_text,
        diagnostics,
    })
}

/// Read and validate a recipe file, keeping the services this binary cannot run in
/// [`Loaded::cannot_run`] instead of refusing the recipe.
pub fn load_lenient(path: &Path) -> Result<Loaded, LoadError> {
    use std::io::Read as _;
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    if f.metadata().map_err(io)?.is_dir() {
        return Err(io(std::io::Error::from_raw_os_error(libc::EISDIR)));
    }
    let mut bytes = Vec::new();
    f.take(MAX_RECIPE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_RECIPE_BYTES {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("larger than {MAX_RECIPE_BYTES} bytes; a recipe is a few KiB"),
        )));
    }
    parse_bytes_lenient(&bytes, path).map_err(|e| LoadError::Invalid(Box::new(e)))
}

/// Validate recipe bytes: text that is not UTF-8 is refused with the offset of the first bad
/// byte. `path` is only used in messages.
pub fn parse_bytes(bytes: &[u8], path: &Path) -> Result<Loaded, RecipeError> {
    strict(parse_bytes_lenient(bytes, path)?)
}

/// [`parse_bytes`] keeping the services this binary cannot run in [`Loaded::cannot_run`].
pub fn parse_bytes_lenient(bytes: &[u8], path: &Path) -> Result<Loaded, RecipeError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_str_lenient(text, path),
        Err(e) => {
            let at = e.valid_up_to();
            let valid = &bytes[..at];
            let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
            let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            // Column in characters of the valid prefix, as the other diagnostics count.
            let col = 1 + String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count();
            Err(RecipeError {
                file: path.to_path_buf(),
                source_text: String::from_utf8_lossy(bytes).into_owned(),
                diagnostics: vec![Diagnostic {
                    redact: None,
                    redact_all: Vec::new(),
                    stops_submit: false,
                    cannot_run: false,
                    severity: Severity::Error,
                    path: String::new(),
                    pos: yaml::Pos { line, col },
                    message: format!(
                        "the recipe is not UTF-8 text: byte 0x{:02x} at byte offset {at}",
                        bytes[at]
                    ),
                    help: Some("save the file as UTF-8".into()),
                }],
            })
        }
    }
}

/// Validate recipe text; `path` is only used in messages.
pub fn parse_str(text: &str, path: &Path) -> Result<Loaded, RecipeError> {
    strict(parse_str_lenient(text, path)?)
}

/// [`parse_str`] keeping the services this binary cannot run in [`Loaded::cannot_run`].
pub fn parse_str_lenient(text: &str, path: &Path) -> Result<Loaded, RecipeError> {
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
                redact: None,
                redact_all: Vec::new(),
                stops_submit: false,
                cannot_run: false,
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
    // Every line a diagnostic quotes is masked with every secret of the recipe, not only the
    // one the diagnostic is about.
    let secrets = redact::recipe_secrets(&root);
    for d in &mut cx.diags {
        for s in &secrets {
            if !d.redact_all.contains(s) {
                d.redact_all.push(s.clone());
            }
        }
    }
    // Sort by position so the output reads top to bottom.
    cx.diags.sort_by_key(|d| (d.pos.line, d.pos.col));
    match plan {
        Some(plan) if !cx.diags.iter().any(|d| d.blocks_recipe()) => {
            let (cannot_run, warnings) = cx.diags.into_iter().partition(|d| d.cannot_run);
            Ok(Loaded {
                plan,
                warnings,
                cannot_run,
                source_text: text.to_string(),
            })
        }
        _ => Err(fail(cx.diags)),
    }
}

impl Service {
    /// The service as array task `index` of its sweep runs it (the value applied).
    pub fn with_sweep_index(&self, index: usize) -> Option<Service> {
        let sweep = self.sweep.as_ref()?;
        let mut s = self.clone();
        for (param, value) in sweep.assignments(index)? {
            match param {
                SweepParam::ClientCount => s.load.clients = value.parse().ok()?,
                SweepParam::RequestsPerSecond => {
                    s.load.target_rate_per_client_per_s = value.parse().ok()?;
                    if s.load.target_rate_per_client_per_s == 0.0 {
                        s.load.arrival = Arrival::Closed;
                    }
                }
                SweepParam::Model => match &mut s.workload {
                    Workload::Llm(l) => l.model = value.clone(),
                    Workload::Tensor(t) => t.model = value.clone(),
                    Workload::Vectordb(_)
                    | Workload::Database(_)
                    | Workload::S3(_)
                    | Workload::FileStorage(_)
                    | Workload::Http(_) => return None,
                },
                SweepParam::BatchSize => match &mut s.workload {
                    Workload::Vectordb(v) => v.batch_size = value.parse().ok()?,
                    Workload::Database(d) => d.batch_size = value.parse().ok()?,
                    Workload::Tensor(t) => t.batch_size = value.parse().ok()?,
                    Workload::Llm(_)
                    | Workload::S3(_)
                    | Workload::FileStorage(_)
                    | Workload::Http(_) => return None,
                },
                SweepParam::Grid => return None,
            }
        }
        s.sweep = None;
        Some(s)
    }
}

/// A recipe that did not load, as the error `cli` shows: its diagnostics as they are (invalid
/// input, exit 2; a service this binary cannot run, exit 2 or 1), an unreadable file with
/// `error: `.
impl From<LoadError> for crate::exit::Failure {
    fn from(le: LoadError) -> Self {
        use crate::exit::{self, Failure};
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
}
