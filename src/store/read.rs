//! Read-only access for reports, status and tests.
//!
//! A campaign is either one `.db` file (a local run's `global.metrics_db`) or a campaign
//! directory whose `runs/*.db` files (one per SLURM job) are read as a union.

use super::{schema_version, RunStatus, StoreError, SCHEMA_VERSION};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Open an SQLite file read-only with the busy timeout (a job may be writing it), and read its
/// catalogue once so that a file that is not SQLite fails here rather than on a later query.
/// The schema is not checked: see [`open_read_only`] for campaign files.
pub fn open_sqlite_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(super::BUSY_TIMEOUT)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
    Ok(conn)
}

/// Open one campaign file read-only (with the busy timeout; checks the schema version).
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Missing(path.to_path_buf()));
    }
    let conn = open_sqlite_read_only(path).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let v = schema_version(&conn, path)?;
    if v > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: v,
            supported: SCHEMA_VERSION,
        });
    }
    if v == 0 {
        return Err(StoreError::BadVersion {
            path: path.to_path_buf(),
            value: "(none)".into(),
        });
    }
    Ok(conn)
}

/// The `.db` files of a campaign: `path` itself when it is a file; for a directory its
/// `runs/*.db` and top-level `*.db` files holding runs (`campaign.db`, which only holds jobs,
/// is skipped), sorted.
pub fn campaign_files(path: &Path) -> Result<Vec<PathBuf>, StoreError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(StoreError::Missing(path.to_path_buf()));
    }
    let mut files = Vec::new();
    for dir in [path.join("runs"), path.to_path_buf()] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_file()
                && p.extension().is_some_and(|x| x == "db")
                && p.file_name().is_some_and(|n| n != "campaign.db")
            {
                files.push(p);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(StoreError::EmptyCampaign(path.to_path_buf()));
    }
    Ok(files)
}

/// One `runs` row (everything except the recipe JSON) and the file it came from.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub file: PathBuf,
    pub run_id: String,
    pub campaign: String,
    pub service: String,
    pub service_kind: String,
    pub status: RunStatus,
    pub failure_stage: Option<String>,
    pub failure_message: Option<String>,
    pub stop_reason: Option<String>,
    pub started_ns: i64,
    pub measure_start_ns: Option<i64>,
    pub ended_ns: Option<i64>,
    pub arrival: String,
    pub clients: u32,
    pub target_rate: Option<f64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub seed: i64,
    pub sweep_param: Option<String>,
    pub sweep_value: Option<String>,
    pub recipe_sha256: String,
    pub host: String,
    pub tool_version: String,
    pub git_commit: Option<String>,
    pub slurm_job_id: Option<String>,
    pub slurm_array_task: Option<i64>,
    pub cpu_user_s: Option<f64>,
    pub cpu_system_s: Option<f64>,
}

/// Every run in one open file, oldest first.
pub fn list_runs(conn: &Connection, file: &Path) -> Result<Vec<RunInfo>, StoreError> {
    let mut st = conn.prepare(
        "SELECT run_id, campaign, service, service_kind, status, failure_stage, failure_message,
         stop_reason, started_ns, measure_start_ns, ended_ns, arrival, clients, target_rate,
         duration_s, warmup_s, seed, sweep_param, sweep_value, recipe_sha256, host, tool_version,
         git_commit, slurm_job_id, slurm_array_task, cpu_user_s, cpu_system_s
         FROM runs ORDER BY started_ns, run_id",
    )?;
    let rows = st.query_map([], |r| {
        let status: String = r.get(4)?;
        Ok(RunInfo {
            file: file.to_path_buf(),
            run_id: r.get(0)?,
            campaign: r.get(1)?,
            service: r.get(2)?,
            service_kind: r.get(3)?,
            status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
            failure_stage: r.get(5)?,
            failure_message: r.get(6)?,
            stop_reason: r.get(7)?,
            started_ns: r.get(8)?,
            measure_start_ns: r.get(9)?,
            ended_ns: r.get(10)?,
            arrival: r.get(11)?,
            clients: r.get(12)?,
            target_rate: r.get(13)?,
            duration_s: r.get(14)?,
            warmup_s: r.get(15)?,
            seed: r.get(16)?,
            sweep_param: r.get(17)?,
            sweep_value: r.get(18)?,
            recipe_sha256: r.get(19)?,
            host: r.get(20)?,
            tool_version: r.get(21)?,
            git_commit: r.get(22)?,
            slurm_job_id: r.get(23)?,
            slurm_array_task: r.get(24)?,
            cpu_user_s: r.get(25)?,
            cpu_system_s: r.get(26)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A campaign opened for reading: its files and every run in them.
#[derive(Debug)]
pub struct Campaign {
    pub path: PathBuf,
    pub files: Vec<PathBuf>,
    pub runs: Vec<RunInfo>,
}

impl Campaign {
    /// Open a `.db` file or a campaign directory.
    pub fn open(path: &Path) -> Result<Campaign, StoreError> {
        let files = campaign_files(path)?;
        let mut runs = Vec::new();
        for f in &files {
            let conn = open_read_only(f)?;
            runs.extend(list_runs(&conn, f)?);
        }
        runs.sort_by(|a, b| (a.started_ns, &a.run_id).cmp(&(b.started_ns, &b.run_id)));
        Ok(Campaign {
            path: path.to_path_buf(),
            files,
            runs,
        })
    }

    /// A read-only connection to the file holding `run`.
    pub fn connect(&self, run: &RunInfo) -> Result<Connection, StoreError> {
        open_read_only(&run.file)
    }
}
