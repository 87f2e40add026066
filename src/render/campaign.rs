//! Write a campaign directory (the layout in the README / BRIEF): `recipe.yml`, `plan.json`,
//! `scripts/<service>.sbatch` (and `scripts/<service>.capacity.sbatch` for a service with
//! `capacity_search`), `secrets/<service>.env` (0600 in a 0700 directory), and the empty
//! `logs/`, `runs/` and `endpoints/` directories the jobs fill.
//!
//! Atomic: everything is rendered in memory, written to a temporary directory beside the target
//! and renamed into place, so an error leaves no half-written campaign.

use super::{campaign_dir_ok, SecretFileValue};
use super::{render_all, secret_file_entries, shell_quote, RenderError, RenderOptions, Renderer};
use crate::recipe::{Loaded, Secret};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// What the user asked for cannot be done (exit code 2).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl CampaignError {
    /// As the error a command returns: invalid input (exit 2, its own words), else a failure.
    pub fn into_error(self) -> anyhow::Error {
        if self.is_invalid_input() {
            crate::exit::Failure::invalid_input(self).into()
        } else {
            self.into()
        }
    }

    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            CampaignError::Invalid(_)
                | CampaignError::Render(RenderError::UnsafeCampaignDir(_))
                | CampaignError::Render(RenderError::InvalidEnvName { .. })
                | CampaignError::Render(RenderError::Template(_))
        )
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CampaignError {
    let path = path.to_path_buf();
    move |source| CampaignError::Io { what, path, source }
}

/// What [`write_campaign`] should do.
#[derive(Debug, Clone, Default)]
pub struct CampaignSpec {
    /// Target directory (created; relative paths are taken from the working directory).
    pub out: PathBuf,
    /// Only this service's script and secrets.
    pub service: Option<String>,
    /// Replace `out` when it exists and holds files.
    pub force: bool,
    /// The factorybench binary the job scripts run (see [`RenderOptions::fb_bin`]).
    pub fb_bin: String,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct CampaignOutput {
    /// The campaign directory, absolute.
    pub dir: PathBuf,
    /// Files written, relative to `dir`.
    pub files: Vec<PathBuf>,
    /// Services compiled, in recipe order.
    pub services: Vec<String>,
}

/// An absolute, lexically normalised form of `p` (no symlink resolution; `p` may not exist).
pub fn absolute(p: &Path) -> std::io::Result<PathBuf> {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `n` random characters from `[A-Za-z0-9]`, read from `/dev/urandom` (unbiased).
pub fn random_secret(n: usize) -> std::io::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut f = std::fs::File::open("/dev/urandom")?;
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        f.read_exact(&mut buf)?;
        for &b in &buf {
            // 248 = 4 × 62: reject the top bytes so every character is equally likely.
            if b < 248 && out.len() < n {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

/// Length of generated secrets.
pub const GENERATED_SECRET_LEN: usize = 32;

/// Replace every JSON string equal to one of `secrets` by `<redacted>`.
fn redact(v: &mut serde_json::Value, secrets: &[String]) {
    match v {
        serde_json::Value::String(s) if secrets.iter().any(|x| x == s) => {
            *s = "<redacted>".into();
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| redact(x, secrets)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| redact(x, secrets)),
        _ => {}
    }
}

/// Credentials written inside URLs and credential headers (plan.json shows them redacted
/// already; they also make the copied recipe private).
fn inline_credentials(plan: &crate::recipe::Plan) -> Vec<String> {
    use crate::recipe::redact::{header_is_secret, url_credentials};
    use crate::recipe::Workload;
    let mut out: Vec<String> = Vec::new();
    if let Some(u) = &plan.global.pushgateway_url {
        out.extend(url_credentials(u));
    }
    for svc in &plan.services {
        for u in [&svc.service_url, &svc.endpoint.url].into_iter().flatten() {
            out.extend(url_credentials(u));
        }
        match &svc.workload {
            Workload::Http(h) => {
                out.extend(url_credentials(&h.url));
                for (k, v) in &h.headers {
                    if header_is_secret(k) && crate::recipe::decode::env_ref_name(v).is_none() {
                        out.push(v.clone());
                    }
                }
            }
            Workload::S3(s3) => out.extend(url_credentials(&s3.endpoint_url)),
            // URLs of these live in `service_url` / the endpoint (above): listed, not `_`, so
            // that a new workload with a URL of its own is a compile error here.
            Workload::Llm(_)
            | Workload::Vectordb(_)
            | Workload::Database(_)
            | Workload::FileStorage(_)
            | Workload::Tensor(_) => {}
        }
    }
    out
}

struct PendingFile {
    rel: PathBuf,
    bytes: Vec<u8>,
    mode: u32,
}

/// Compile `loaded` into a campaign directory (see the module docs).
pub fn write_campaign(
    loaded: &Loaded,
    renderer: &Renderer,
    spec: &CampaignSpec,
) -> Result<CampaignOutput, CampaignError> {
    let plan = &loaded.plan;
    let dir = absolute(&spec.out).map_err(io("cannot resolve", &spec.out))?;
    let dir_str = dir.to_string_lossy().to_string();
    if !campaign_dir_ok(&dir_str) {
        return Err(RenderError::UnsafeCampaignDir(dir_str).into());
    }
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(CampaignError::Invalid(format!(
            "cannot write a campaign to {dir_str}"
        )));
    };
    if let Some(only) = &spec.service {
        if plan.service(only).is_none() {
            let names: Vec<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
            return Err(CampaignError::Invalid(format!(
                "unknown service `{only}` (the recipe has: {})",
                names.join(", ")
            )));
        }
    }
    // None: absent; Some(false): only empty directories (replaced silently); Some(true): files.
    let existing = match has_files(&dir) {
        Ok(v) => Some(v),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("cannot read", &dir)(e)),
    };
    if existing == Some(true) && !spec.force {
        return Err(CampaignError::Invalid(format!(
            "{dir_str} exists and holds files (use --force to replace it)"
        )));
    }

    // 1. Render everything in memory.
    let opts = RenderOptions {
        campaign_dir: dir_str.clone(),
        fb_bin: spec.fb_bin.clone(),
    };
    let scripts = render_all(renderer, plan, &opts)?;
    let selected: Vec<&crate::recipe::Service> = plan
        .services
        .iter()
        .filter(|s| match spec.service.as_deref() {
            Some(n) => n == s.name,
            None => true,
        })
        .collect();
    let mut files: Vec<PendingFile> = Vec::new();
    let has_plain_secret = plan.services.iter().any(|s| {
        s.secrets()
            .iter()
            .any(|(_, x)| matches!(x, Secret::Plain(_)))
    }) || !inline_credentials(plan).is_empty();
    files.push(PendingFile {
        rel: "recipe.yml".into(),
        bytes: loaded.source_text.clone().into_bytes(),
        // The recipe keeps the plain-text secrets its author wrote: readable by the owner only.
        mode: if has_plain_secret { 0o600 } else { 0o644 },
    });
    let mut secret_values: Vec<String> = Vec::new();
    for svc in &selected {
        let (_, script) = scripts
            .iter()
            .find(|(n, _)| *n == svc.name)
            .expect("every service rendered");
        files.push(PendingFile {
            rel: PathBuf::from("scripts").join(format!("{}.sbatch", svc.name)),
            bytes: script.clone().into_bytes(),
            mode: 0o755,
        });
        if let Some(capacity) = renderer.render_capacity(plan, svc, &opts)? {
            files.push(PendingFile {
                rel: PathBuf::from("scripts").join(format!("{}.capacity.sbatch", svc.name)),
                bytes: capacity.into_bytes(),
                mode: 0o755,
            });
        }
        let entries = secret_file_entries(svc);
        if entries.is_empty() {
            continue;
        }
        let mut text = String::from(
            "# factorybench secrets for this service: sourced by its batch script. Keep private.\n",
        );
        for (name, v) in entries {
            let value = match v {
                SecretFileValue::Plain(v) => v,
                SecretFileValue::Generated => random_secret(GENERATED_SECRET_LEN)
                    .map_err(io("cannot read", Path::new("/dev/urandom")))?,
            };
            text.push_str(&format!("{name}={}\n", shell_quote(&value)));
            secret_values.push(value);
        }
        files.push(PendingFile {
            rel: PathBuf::from("secrets").join(format!("{}.env", svc.name)),
            bytes: text.into_bytes(),
            mode: 0o600,
        });
    }
    for svc in &plan.services {
        for (_, s) in svc.secrets() {
            if let Secret::Plain(v) = s {
                secret_values.push(v.clone());
            }
        }
    }
    secret_values.extend(inline_credentials(plan));
    let mut plan_json = serde_json::to_value(plan).expect("plan serialises");
    redact(&mut plan_json, &secret_values);
    let mut plan_text = serde_json::to_string_pretty(&plan_json).expect("plan serialises");
    plan_text.push('\n');
    files.push(PendingFile {
        rel: "plan.json".into(),
        bytes: plan_text.into_bytes(),
        mode: 0o644,
    });

    // 2. Write into a temporary directory beside the target, then rename it into place.
    write_in_place(&files, &dir, parent, name, existing)?;
    Ok(CampaignOutput {
        dir,
        files: files.into_iter().map(|f| f.rel).collect(),
        services: selected.iter().map(|s| s.name.clone()).collect(),
    })
}

/// Write `files` into a temporary directory beside `dir`, then rename it into place:
/// `existing` says what is there (`None`: nothing; `Some(false)`: only empty directories,
/// removed; `Some(true)`: files, moved aside and removed once the new tree is in place, put
/// back if the rename fails).
fn write_in_place(
    files: &[PendingFile],
    dir: &Path,
    parent: &Path,
    name: &std::ffi::OsStr,
    existing: Option<bool>,
) -> Result<(), CampaignError> {
    std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = write_tree(&tmp, files).and_then(|()| {
        match existing {
            Some(false) => std::fs::remove_dir_all(dir).map_err(io("cannot replace", dir))?,
            Some(true) => {
                let old = parent.join(format!(
                    ".{}.old-{}",
                    name.to_string_lossy(),
                    std::process::id()
                ));
                std::fs::rename(dir, &old).map_err(io("cannot move aside", dir))?;
                if let Err(e) = std::fs::rename(&tmp, dir) {
                    let _ = std::fs::rename(&old, dir);
                    return Err(io("cannot rename into", dir)(e));
                }
                let _ = std::fs::remove_dir_all(&old);
                return Ok(());
            }
            None => {}
        }
        std::fs::rename(&tmp, dir).map_err(io("cannot rename into", dir))
    });
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Whether `dir` holds anything but (nested) empty directories.
fn has_files(dir: &Path) -> std::io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() || has_files(&entry.path())? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn write_tree(root: &Path, files: &[PendingFile]) -> Result<(), CampaignError> {
    let mk = |p: &Path, mode: u32| {
        std::fs::DirBuilder::new()
            .mode(mode)
            .create(p)
            .map_err(io("cannot create", p))
    };
    mk(root, 0o755)?;
    for d in ["scripts", "logs", "runs", "endpoints"] {
        mk(&root.join(d), 0o755)?;
    }
    mk(&root.join("secrets"), 0o700)?;
    for f in files {
        let path = root.join(&f.rel);
        let mut h = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(f.mode)
            .open(&path)
            .map_err(io("cannot create", &path))?;
        h.write_all(&f.bytes).map_err(io("cannot write", &path))?;
    }
    Ok(())
}
