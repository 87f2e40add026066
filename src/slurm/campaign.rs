//! A campaign directory (layout in the README): its name, its `campaign.db` jobs table, and
//! the per-job run files and logs the batch jobs write into it.
//!
//! `campaign.db` is written only by `submit` on the login node (one writer); each job writes
//! its own `runs/<service>-<jobid>[_<task>].db`, so concurrent jobs never share a SQLite file
//! (WAL is unsafe on Lustre/NFS) and no row can be lost to lock contention.

use crate::store::campaign as jobs;
pub use crate::store::campaign::{read_runs, JobRecord, JobRole, RunSummary};
use crate::store::DbError;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error(
        "{0} is not a campaign directory (no campaign.db; create one with `factorybench submit`)"
    )]
    NotACampaign(PathBuf),
    #[error("no campaign under {0} (submit one with `factorybench submit RECIPE`)")]
    NoCampaigns(PathBuf),
    #[error("cannot create campaign directory {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("campaign file {path}: {source}")]
    Db { path: PathBuf, source: DbError },
}

/// `benchmark.name` → a directory-name slug (`AI Factory: v2` → `ai-factory-v2`).
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    let out: String = out.chars().take(60).collect();
    if out.is_empty() {
        "campaign".into()
    } else {
        out
    }
}

/// `YYYYmmdd-HHMMSS` (UTC) of a Unix time.
pub fn timestamp(unix_s: u64) -> String {
    let rfc =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(unix_s))
            .to_string(); // 2026-11-23T09:14:06Z
    let d: String = rfc[..10].chars().filter(|c| *c != '-').collect();
    let t: String = rfc[11..19].chars().filter(|c| *c != ':').collect();
    format!("{d}-{t}")
}

/// Create a fresh `<root>/<slug>-<timestamp>[-N]` directory (never reuses one).
pub fn create_dir(root: &Path, name: &str, unix_s: u64) -> Result<PathBuf, CampaignError> {
    std::fs::create_dir_all(root).map_err(|source| CampaignError::Create {
        path: root.to_path_buf(),
        source,
    })?;
    let base = format!("{}-{}", slug(name), timestamp(unix_s));
    for n in 1..1000 {
        let dir = if n == 1 {
            root.join(&base)
        } else {
            root.join(format!("{base}-{n}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(CampaignError::Create { path: dir, source }),
        }
    }
    Err(CampaignError::Create {
        path: root.join(base),
        source: std::io::Error::other("too many campaigns with the same name and second"),
    })
}

/// The newest campaign under `root` (by the modification time of its campaign.db).
pub fn newest(root: &Path) -> Result<PathBuf, CampaignError> {
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            let db = e.path().join("campaign.db");
            if let Ok(m) = std::fs::metadata(&db).and_then(|m| m.modified()) {
                if best.as_ref().map_or(true, |(t, _)| m > *t) {
                    best = Some((m, e.path()));
                }
            }
        }
    }
    best.map(|(_, p)| p)
        .ok_or_else(|| CampaignError::NoCampaigns(root.to_path_buf()))
}

/// A campaign directory.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub dir: PathBuf,
}

impl Campaign {
    /// An existing campaign (must have campaign.db).
    pub fn open(dir: &Path) -> Result<Campaign, CampaignError> {
        if !dir.join("campaign.db").is_file() {
            return Err(CampaignError::NotACampaign(dir.to_path_buf()));
        }
        Ok(Campaign {
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
        })
    }

    /// Create campaign.db (the full schema, jobs table included) in a compiled directory.
    pub fn init(dir: &Path) -> Result<Campaign, CampaignError> {
        let c = Campaign {
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
        };
        jobs::init(&c.db_path()).map_err(|e| c.db_err(e))?;
        Ok(c)
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("campaign.db")
    }

    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn db_err(&self, source: DbError) -> CampaignError {
        CampaignError::Db {
            path: self.db_path(),
            source,
        }
    }

    pub fn record_job(&self, j: &JobRecord) -> Result<(), CampaignError> {
        jobs::record_job(&self.db_path(), j).map_err(|e| self.db_err(e))
    }

    /// Jobs in submission order.
    pub fn jobs(&self) -> Result<Vec<JobRecord>, CampaignError> {
        jobs::read_jobs(&self.db_path()).map_err(|e| self.db_err(e))
    }

    /// Run files of one service: `runs/<service>-<id>[_<task>][-<node>].db` (the node part:
    /// one file per client node of a multi-node job), with the parsed id, task and node.
    pub fn run_files(&self, service: &str) -> Vec<RunFile> {
        let mut out = Vec::new();
        let prefix = format!("{service}-");
        if let Ok(rd) = std::fs::read_dir(self.dir.join("runs")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(stem) = name
                    .strip_prefix(&prefix)
                    .and_then(|r| r.strip_suffix(".db"))
                else {
                    continue;
                };
                // A client node's file: the job part, then `-<node>` (node names may hold `-`).
                let (job, node) = match stem.split_once('-') {
                    Some((j, n)) if !n.is_empty() => (j, Some(n.to_string())),
                    Some(_) => continue,
                    None => (stem, None),
                };
                let (id, task) = match job.split_once('_') {
                    Some((i, t)) => match t.parse::<u32>() {
                        Ok(t) => (i, Some(t)),
                        Err(_) => continue,
                    },
                    None => (job, None),
                };
                if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                    continue; // another service whose name starts with ours
                }
                out.push(RunFile {
                    path: e.path(),
                    job_id: id.to_string(),
                    array_task: task,
                    node,
                });
            }
        }
        out.sort_by(|a, b| {
            (&a.job_id, a.array_task, &a.node).cmp(&(&b.job_id, b.array_task, &b.node))
        });
        out
    }

    /// Log files of one service (`logs/<service>-*.out`), sorted by name.
    pub fn log_files(&self, service: Option<&str>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.join("logs")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let ok = match service {
                    Some(s) => name
                        .strip_prefix(&format!("{s}-"))
                        .is_some_and(|r| r.chars().next().is_some_and(|c| c.is_ascii_digit())),
                    None => true,
                };
                if ok && (name.ends_with(".out") || name.ends_with(".err")) {
                    out.push(e.path());
                }
            }
        }
        out.sort();
        out
    }
}

/// One job's run file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFile {
    pub path: PathBuf,
    /// The id in the file name: the job id, or for array tasks the array job id or task job id.
    pub job_id: String,
    pub array_task: Option<u32>,
    /// The client node that wrote it (multi-node jobs: one file per client node).
    pub node: Option<String>,
}

impl Campaign {
    /// The campaign directory `dir`, else the newest under `./campaigns`; one that is missing
    /// or not a campaign is invalid input (exit 2).
    pub fn open_or_newest(dir: Option<&Path>) -> anyhow::Result<Campaign> {
        use crate::exit::Failure;
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => newest(Path::new("campaigns")).map_err(Failure::invalid_input)?,
        };
        Campaign::open(&dir).map_err(|e| Failure::invalid_input(e).into())
    }
}

/// Relative to the working directory when inside it (shorter commands to copy).
pub fn display_path(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("Multi-Service Benchmark"), "multi-service-benchmark");
        assert_eq!(slug("  AI Factory: v2!! "), "ai-factory-v2");
        assert_eq!(slug("###"), "campaign");
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "19700101-000000");
        assert_eq!(timestamp(1_795_425_246), "20261123-091406");
    }

    #[test]
    fn create_never_reuses() {
        let t = tempfile::tempdir().unwrap();
        let a = create_dir(t.path(), "x", 0).unwrap();
        let b = create_dir(t.path(), "x", 0).unwrap();
        assert_ne!(a, b);
        assert!(b.to_string_lossy().ends_with("x-19700101-000000-2"));
    }

    #[test]
    fn jobs_roundtrip_and_files() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(
            Campaign::open(t.path()),
            Err(CampaignError::NotACampaign(_))
        ));
        let c = Campaign::init(t.path()).unwrap();
        let j = JobRecord {
            job_id: "12".into(),
            service: "web".into(),
            role: JobRole::Service,
            array_size: Some(3),
            script_path: "scripts/web.sbatch".into(),
            submitted_ns: 5,
            depends_on: vec!["10".into(), "11".into()],
        };
        c.record_job(&j).unwrap();
        let c = Campaign::open(t.path()).unwrap();
        assert_eq!(c.jobs().unwrap(), vec![j]);
        std::fs::create_dir(t.path().join("runs")).unwrap();
        for f in [
            "web-12_0.db",
            "web-12_1.db",
            "web-api-13.db",
            "web-x.db",
            "web-80-fbn2.db",
            "web-80-fbn-3.db",
            "web-81_2-fbn1.db",
        ] {
            std::fs::write(t.path().join("runs").join(f), b"").unwrap();
        }
        let files = c.run_files("web");
        let got: Vec<(&str, Option<u32>, Option<&str>)> = files
            .iter()
            .map(|f| (f.job_id.as_str(), f.array_task, f.node.as_deref()))
            .collect();
        // Per-node files of multi-node jobs are listed with their node (issue 26: they were
        // skipped, so `status` showed no run for a multi-node campaign).
        assert_eq!(
            got,
            vec![
                ("12", Some(0), None),
                ("12", Some(1), None),
                ("80", None, Some("fbn-3")),
                ("80", None, Some("fbn2")),
                ("81", Some(2), Some("fbn1")),
            ]
        );
        assert_eq!(c.run_files("web-api")[0].job_id, "13");
        let root = t
            .path()
            .parent()
            .unwrap()
            .join(format!("{}-root", c.name()));
        assert!(matches!(newest(&root), Err(CampaignError::NoCampaigns(_))));
    }
}
