//! `store`: the SQLite campaign file.
//!
//! - [`open`] creates or upgrades a campaign file ([`schema.sql`](schema.sql) is the contract,
//!   `meta.schema_version` its version, [`MIGRATIONS`] the upgrade path) in WAL mode with a
//!   busy timeout.
//! - [`Store`] owns the single writer thread; [`StoreHandle`] (cheap to clone) feeds it through
//!   a channel, and request rows through a [`RequestSink`] (per-client buffers the writer takes
//!   in blocks). Recording a row never waits on disk; rows are committed in batched
//!   transactions at least every [`COMMIT_INTERVAL`], so a crash loses at most that much.
//! - [`read`] opens files read-only for reports (a campaign = one `.db` file or a directory
//!   holding `runs/*.db`): the one reader of a `runs` row, request scans, samples, histograms.
//! - [`campaign`] is the `jobs` table of a SLURM campaign's `campaign.db` and the run
//!   summaries `status` reads.
//!
//! No other module speaks SQL.

pub mod campaign;
mod log;
pub mod publish;
mod raw;
pub mod read;
pub mod service_node;
mod writer;

pub use writer::{RequestSink, Store, StoreHandle, WriterStats};

use crate::model::{ErrorClass, Outcome};
pub use crate::model::{FailureStage, RunStatus, StopReason, StopSignal};
use crate::recipe::{Plan, Service, ServiceKind, SweepParam};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The schema version this build writes (and the newest it reads).
pub const SCHEMA_VERSION: u32 = 3;

/// Upgrade steps: `(version reached, SQL)`, applied in order to files older than that version.
/// Version 1 is the whole of `schema.sql`. Add new steps at the end; never edit old ones.
pub const MIGRATIONS: &[(u32, &str)] = &[
    (1, SCHEMA_SQL),
    (2, MIGRATION_2_PROVENANCE),
    (3, MIGRATION_3_REQUEST_LOG),
];

/// Version 3: the request log ([`log`]), where a running run's rows wait, in chunks, until
/// the run ends. Empty in a file whose runs all ended.
pub(crate) const MIGRATION_3_REQUEST_LOG: &str = "
CREATE TABLE IF NOT EXISTS request_log (
  run_id        TEXT NOT NULL,
  rows          INTEGER NOT NULL,
  errors        INTEGER NOT NULL,
  first_sent_ns INTEGER,
  last_sent_ns  INTEGER,
  body          BLOB NOT NULL           -- rows encoded by store::log
);
";

/// Version 2: what ran each run (hardware, software, service version), one row per fact.
/// Files of version 1 simply have no provenance rows.
pub(crate) const MIGRATION_2_PROVENANCE: &str = "
CREATE TABLE IF NOT EXISTS provenance (
  run_id  TEXT NOT NULL REFERENCES runs(run_id),
  key     TEXT NOT NULL,            -- cpu.model, gpu0.uuid, service.version, ... (runner::provenance)
  value   TEXT NOT NULL,
  PRIMARY KEY (run_id, key)
);

-- Capacity searches (`factorybench capacity`): one row per search, one per step; every
-- step is also an ordinary run (run_id).
CREATE TABLE IF NOT EXISTS capacity_searches (
  search_id          TEXT PRIMARY KEY,
  service            TEXT NOT NULL,
  spec_json          TEXT NOT NULL,       -- recipe capacity_search (bounds, steps, SLOs)
  started_ns         INTEGER NOT NULL,    -- Unix-epoch ns
  ended_ns           INTEGER,
  outcome            TEXT,                -- found | none_sustainable | stopped
  sustainable_rate   REAL,                -- highest passing total req/s
  first_failing_rate REAL                 -- lowest failing total req/s above it
);
CREATE TABLE IF NOT EXISTS capacity_steps (
  search_id      TEXT NOT NULL REFERENCES capacity_searches(search_id),
  step           INTEGER NOT NULL,
  run_id         TEXT NOT NULL,
  phase          TEXT NOT NULL CHECK (phase IN ('ramp','bisect','confirm')),
  target_rate    REAL NOT NULL,           -- total req/s
  achieved_rate  REAL,
  latency_p99_ms REAL,
  ttft_p99_ms    REAL,
  error_rate     REAL,
  passed         INTEGER NOT NULL,
  reason         TEXT,                    -- why it failed its SLOs
  PRIMARY KEY (search_id, step)
);";

/// The whole schema (`schema.sql`): every table, `IF NOT EXISTS`.
pub(crate) const SCHEMA_SQL: &str = include_str!("schema.sql");

/// The secondary index of `requests` (run, schedule order). The writer drops it while it writes
/// and builds it when it stops; readers build it when they find it missing (a killed run). Both
/// only build it in a file of several runs ([`wants_request_index`]).
pub(crate) const CREATE_REQUEST_INDEX_SQL: &str =
    "CREATE INDEX IF NOT EXISTS requests_run ON requests(run_id, scheduled_ns)";
pub(crate) const DROP_REQUEST_INDEX_SQL: &str = "DROP INDEX IF EXISTS requests_run";

/// Whether a file needs the `requests_run` index: only one that holds more than one run. A file
/// of one run (a SLURM job's file, most local runs) is read with sequential scans, which the
/// index would not speed up, and building it (a sort of every row by a text key) cost about as
/// much per request as recording it.
pub(crate) fn wants_request_index(conn: &Connection) -> bool {
    conn.query_row("SELECT count(*) > 1 FROM runs", [], |r| r.get(0))
        .unwrap_or(true)
}

/// The SQLite error type (so that callers outside `store` need not name the driver).
pub type DbError = rusqlite::Error;

/// Rows are committed at least this often.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(200);

/// How long a connection waits for another writer's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open campaign file {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "campaign file {path} has schema version {found}, newer than this factorybench supports ({supported}); upgrade factorybench"
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("campaign file {path} is not a factorybench file (bad meta.schema_version `{value}`)")]
    BadVersion { path: PathBuf, value: String },
    #[error("no campaign file at {0}")]
    Missing(PathBuf),
    #[error("no .db files in campaign directory {0} (looked for runs/*.db and *.db)")]
    EmptyCampaign(PathBuf),
    #[error("SQLite error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the store writer has stopped: {0}")]
    WriterGone(String),
}

/// Open (creating or upgrading) a campaign file for writing: WAL, busy timeout, schema.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL keeps readers (reports, live status) off the writer's back; NORMAL sync in WAL mode
    // is durable at checkpoints and never corrupts.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// The file's schema version (0 = empty file).
pub fn schema_version(conn: &Connection, path: &Path) -> Result<u32, StoreError> {
    let has_meta: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_meta {
        return Ok(0);
    }
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    match v {
        None => Ok(0),
        Some(s) => s.parse().map_err(|_| StoreError::BadVersion {
            path: path.to_path_buf(),
            value: s,
        }),
    }
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let found = schema_version(conn, path)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS {
        if *version > found {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [version.to_string()],
            )?;
            tx.commit()?;
        }
    }
    Ok(())
}

/// A new `runs` row (status `running`).
#[derive(Debug, Clone)]
pub struct NewRun {
    pub run_id: String,
    pub campaign: String,
    pub service: String,
    pub service_kind: ServiceKind,
    pub status: RunStatus,
    pub started_ns: i64,
    pub arrival: &'static str,
    pub clients: u32,
    /// Total req/s; `None` for an unthrottled closed loop.
    pub target_rate: Option<f64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub seed: u64,
    pub sweep_param: Option<String>,
    pub sweep_value: Option<String>,
    /// The resolved service (serde; secrets serialize redacted).
    pub recipe_json: String,
    pub recipe_sha256: String,
    pub host: String,
    pub tool_version: String,
    pub git_commit: Option<String>,
    pub slurm_job_id: Option<String>,
    pub slurm_array_task: Option<i64>,
}

/// A fresh run id: 32 hex digits from the clock, the pid and a counter (unique across files).
pub fn new_run_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut rng = crate::rng::Rng::new(ns ^ (u64::from(std::process::id()) << 32) ^ n);
    format!("{:016x}{:016x}", ns, rng.next_u64())
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown".into()
    }
}

impl NewRun {
    /// The run row for `svc` (already resolved for its sweep value) of `plan`.
    pub fn for_service(
        plan: &Plan,
        svc: &Service,
        sweep: Option<(SweepParam, String)>,
        started_ns: i64,
    ) -> NewRun {
        let load = &svc.load;
        let target_rate = load.target_rate_total_per_s();
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        NewRun {
            run_id: new_run_id(),
            campaign: plan.benchmark.name.clone(),
            service: svc.name.clone(),
            service_kind: svc.kind,
            status: RunStatus::Running,
            started_ns,
            arrival: match load.arrival {
                crate::recipe::Arrival::Constant => "constant",
                crate::recipe::Arrival::Poisson => "poisson",
                crate::recipe::Arrival::Closed => "closed",
            },
            clients: load.clients,
            target_rate,
            duration_s: load.duration_s,
            warmup_s: load.warmup_s,
            seed: load.seed,
            sweep_param: sweep.as_ref().map(|(p, _)| p.as_str().to_string()),
            sweep_value: sweep.map(|(_, v)| v),
            recipe_json: serde_json::to_string(svc).unwrap_or_else(|_| "{}".into()),
            recipe_sha256: plan.source_sha256.clone(),
            host: hostname(),
            tool_version: crate::version_string().to_string(),
            git_commit: crate::git_commit().map(str::to_string),
            slurm_job_id: env("SLURM_JOB_ID"),
            slurm_array_task: env("SLURM_ARRAY_TASK_ID").and_then(|v| v.parse().ok()),
        }
    }
}

/// A capacity search's row (written at its start, updated at its end).
#[derive(Debug, Clone, PartialEq)]
pub struct CapacitySearchRow {
    pub search_id: String,
    pub service: String,
    pub spec_json: String,
    pub started_ns: i64,
    pub ended_ns: Option<i64>,
    /// `found`, `none_sustainable`, `stopped`; `None` while it runs.
    pub outcome: Option<String>,
    pub sustainable_rate: Option<f64>,
    pub first_failing_rate: Option<f64>,
}

/// One step of a capacity search.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityStepRow {
    pub search_id: String,
    pub step: u32,
    pub run_id: String,
    pub phase: crate::capacity::Phase,
    pub target_rate: f64,
    pub achieved_rate: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub error_rate: Option<f64>,
    pub passed: bool,
    pub reason: Option<String>,
}

/// Final state of a run.
#[derive(Debug, Clone)]
pub struct FinishRun {
    pub run_id: Arc<str>,
    pub status: RunStatus,
    pub failure_stage: Option<FailureStage>,
    pub failure_message: Option<String>,
    pub stop_reason: Option<String>,
    pub measure_start_ns: Option<i64>,
    pub ended_ns: i64,
    pub cpu_user_s: Option<f64>,
    pub cpu_system_s: Option<f64>,
}

/// One `requests` row.
#[derive(Debug, Clone)]
pub struct RequestRow {
    pub run_id: Arc<str>,
    pub worker: u32,
    pub seq: u64,
    pub op: &'static str,
    pub scheduled_ns: i64,
    pub sent_ns: i64,
    pub first_byte_ns: Option<i64>,
    pub done_ns: i64,
    pub error_class: Option<ErrorClass>,
    pub http_status: Option<u16>,
    pub size_bytes: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub warmup: bool,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub tokens_from_server: Option<bool>,
    /// Inter-token gaps, little-endian u32 microseconds.
    pub itl_us: Option<Vec<u8>>,
}

impl RequestRow {
    /// A row from an [`Outcome`] and the engine's timestamps.
    #[allow(clippy::too_many_arguments)]
    pub fn from_outcome(
        run_id: Arc<str>,
        worker: u32,
        seq: u64,
        scheduled_ns: i64,
        sent_ns: i64,
        first_byte_ns: Option<i64>,
        done_ns: i64,
        warmup: bool,
        o: &Outcome,
    ) -> RequestRow {
        let (input_tokens, output_tokens, tokens_from_server, itl_us) = match &o.llm {
            Some(l) => {
                let mut itl = None;
                if !l.token_times_ns.is_empty() {
                    let mut bytes = Vec::with_capacity(l.token_times_ns.len() * 4);
                    let mut prev = first_byte_ns.unwrap_or(sent_ns);
                    for &t in &l.token_times_ns {
                        let gap_us = ((t - prev).max(0) / 1000).min(u32::MAX as i64) as u32;
                        bytes.extend_from_slice(&gap_us.to_le_bytes());
                        prev = t;
                    }
                    itl = Some(bytes);
                }
                (
                    l.input_tokens,
                    l.output_tokens,
                    Some(l.tokens_from_server),
                    itl,
                )
            }
            None => (None, None, None, None),
        };
        RequestRow {
            run_id,
            worker,
            seq,
            op: o.op,
            scheduled_ns,
            sent_ns,
            first_byte_ns,
            done_ns,
            error_class: o.error,
            http_status: o.http_status,
            size_bytes: o.size_bytes,
            bytes_sent: o.bytes_sent,
            bytes_received: o.bytes_received,
            warmup,
            input_tokens,
            output_tokens,
            tokens_from_server,
            itl_us,
        }
    }
}

/// Serialize an HDR histogram in the V2 format (what `histograms.encoded` holds).
pub fn encode_histogram(h: &hdrhistogram::Histogram<u64>) -> Vec<u8> {
    use hdrhistogram::serialization::Serializer;
    let mut out = Vec::new();
    hdrhistogram::serialization::V2Serializer::new()
        .serialize(h, &mut out)
        .expect("serializing to a Vec cannot fail");
    out
}

/// Decode a `histograms.encoded` blob.
pub fn decode_histogram(bytes: &[u8]) -> Result<hdrhistogram::Histogram<u64>, String> {
    let mut d = hdrhistogram::serialization::Deserializer::new();
    d.deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_schema_and_version_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/x.db");
        let c = open(&p).unwrap();
        assert_eq!(schema_version(&c, &p).unwrap(), SCHEMA_VERSION);
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(c);
        let c = open(&p).unwrap();
        assert_eq!(schema_version(&c, &p).unwrap(), SCHEMA_VERSION);
        c.execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        drop(c);
        let e = open(&p).unwrap_err().to_string();
        assert!(e.contains("schema version 99"), "{e}");
    }

    #[test]
    fn histogram_roundtrip() {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for v in 1..1000 {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
    }
}
