//! Read-only access for reports, status and tests.
//!
//! A campaign is either one `.db` file (a local run's `global.metrics_db`) or a campaign
//! directory whose `runs/*.db` files (one per SLURM job) are read as a union.

use super::{schema_version, DbError, FailureStage, RunStatus, StoreError, SCHEMA_VERSION};
use crate::model::RunMetric;
use crate::recipe::ServiceKind;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{OpenFlags, OptionalExtension, Row};
use std::path::{Path, PathBuf};

pub use rusqlite::Connection;

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

/// Build the `requests(run_id, scheduled_ns)` index when a file of several runs lacks it (the
/// writer builds it when it stops; a killed run leaves it missing; a file of one run is read
/// without it). Best effort: a file this process cannot
/// write is read without it (queries are then full scans, still correct). Returns whether the
/// index exists afterwards.
pub fn ensure_request_index(path: &Path) -> bool {
    let has = |c: &Connection| {
        c.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'requests_run'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    let Ok(ro) = open_sqlite_read_only(path) else {
        return false;
    };
    if !has_table(&ro, "requests") {
        return false;
    }
    if has(&ro).unwrap_or(false) {
        return true;
    }
    if !super::wants_request_index(&ro) {
        return false;
    }
    drop(ro);
    let rw = match Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(
                "{}: cannot open to build the request index: {e}",
                path.display()
            );
            return false;
        }
    };
    let built = rw
        .busy_timeout(super::BUSY_TIMEOUT)
        .and_then(|_| rw.execute_batch(super::CREATE_REQUEST_INDEX_SQL));
    if let Err(e) = built {
        tracing::debug!("{}: request index not built: {e}", path.display());
        return false;
    }
    true
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

/// Whether the open file has table `name`.
pub fn has_table(conn: &Connection, name: &str) -> bool {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |_| Ok(()),
    )
    .optional()
    .ok()
    .flatten()
    .is_some()
}

/// The `.db` files of a campaign: `path` itself when it is a file; for a directory its sorted
/// `runs/*.db`, then its sorted top-level `*.db` (`campaign.db` included: its `jobs` table is
/// part of the campaign; its `runs` table is empty).
pub fn campaign_files(path: &Path) -> Result<Vec<PathBuf>, StoreError> {
    if !path.exists() {
        return Err(StoreError::Missing(path.to_path_buf()));
    }
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for dir in [path.join("runs"), path.to_path_buf()] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut here: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "db"))
            .collect();
        here.sort();
        files.extend(here);
    }
    if files.is_empty() {
        return Err(StoreError::EmptyCampaign(path.to_path_buf()));
    }
    Ok(files)
}

impl FromSql for RunStatus {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = v.as_str()?;
        RunStatus::parse(s)
            .ok_or_else(|| FromSqlError::Other(format!("bad run status `{s}`").into()))
    }
}

impl FromSql for FailureStage {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = v.as_str()?;
        FailureStage::parse(s)
            .ok_or_else(|| FromSqlError::Other(format!("bad failure stage `{s}`").into()))
    }
}

/// `runs.service_kind` → the recipe's kind.
fn service_kind(r: &Row<'_>, idx: usize) -> rusqlite::Result<ServiceKind> {
    let s: String = r.get(idx)?;
    ServiceKind::ALL
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                idx,
                rusqlite::types::Type::Text,
                format!("unknown service kind `{s}`").into(),
            )
        })
}

/// One `runs` row: the only reader of that table ([`RUN_COLUMNS`] + [`run_row`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub run_id: String,
    pub campaign: String,
    pub service: String,
    pub service_kind: ServiceKind,
    pub status: RunStatus,
    pub failure_stage: Option<FailureStage>,
    pub failure_message: Option<String>,
    pub stop_reason: Option<String>,
    pub started_ns: i64,
    pub measure_start_ns: Option<i64>,
    pub ended_ns: Option<i64>,
    pub arrival: String,
    pub clients: i64,
    pub target_rate: Option<f64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub seed: i64,
    pub sweep_param: Option<String>,
    pub sweep_value: Option<String>,
    pub recipe_json: String,
    pub recipe_sha256: String,
    pub host: String,
    pub tool_version: String,
    pub git_commit: Option<String>,
    pub slurm_job_id: Option<String>,
    pub slurm_array_task: Option<i64>,
    pub cpu_user_s: Option<f64>,
    pub cpu_system_s: Option<f64>,
}

/// The columns [`run_row`] reads, in its order (a query may select more after them).
pub(crate) const RUN_COLUMNS: &str = "run_id, campaign, service, service_kind, status, \
     failure_stage, failure_message, stop_reason, started_ns, measure_start_ns, ended_ns, \
     arrival, clients, target_rate, duration_s, warmup_s, seed, sweep_param, sweep_value, \
     recipe_json, recipe_sha256, host, tool_version, git_commit, slurm_job_id, \
     slurm_array_task, cpu_user_s, cpu_system_s";
pub(crate) const RUN_COLUMN_COUNT: usize = 28;

/// Decode the first [`RUN_COLUMN_COUNT`] columns of a row selected with [`RUN_COLUMNS`].
pub(crate) fn run_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        run_id: r.get(0)?,
        campaign: r.get(1)?,
        service: r.get(2)?,
        service_kind: service_kind(r, 3)?,
        status: r.get(4)?,
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
        recipe_json: r.get(19)?,
        recipe_sha256: r.get(20)?,
        host: r.get(21)?,
        tool_version: r.get(22)?,
        git_commit: r.get(23)?,
        slurm_job_id: r.get(24)?,
        slurm_array_task: r.get(25)?,
        cpu_user_s: r.get(26)?,
        cpu_system_s: r.get(27)?,
    })
}

/// One run by id.
pub fn read_run(conn: &Connection, run_id: &str) -> Result<Option<RunRow>, DbError> {
    conn.query_row(
        &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"),
        [run_id],
        run_row,
    )
    .optional()
}

/// Every run in one open file, oldest first.
pub fn list_runs(conn: &Connection) -> Result<Vec<RunRow>, DbError> {
    let mut st = conn.prepare(&format!(
        "SELECT {RUN_COLUMNS} FROM runs ORDER BY started_ns, run_id"
    ))?;
    let rows = st.query_map([], run_row)?;
    rows.collect()
}

/// The run ids of one open file, oldest first.
pub fn run_ids(conn: &Connection) -> Result<Vec<String>, DbError> {
    let mut st = conn.prepare("SELECT run_id FROM runs ORDER BY started_ns, run_id")?;
    let it = st.query_map([], |r| r.get(0))?;
    it.collect()
}

/// Number of runs in one open file.
pub fn count_runs(conn: &Connection) -> Result<i64, DbError> {
    conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
}

/// A `jobs` row as the report lists it (`role` as stored).
#[derive(Debug, Clone, PartialEq)]
pub struct ListedJob {
    pub job_id: String,
    pub service: String,
    pub role: String,
    pub array_size: Option<i64>,
}

/// The `jobs` rows of one open file, in submission order.
pub fn job_rows(conn: &Connection) -> Result<Vec<ListedJob>, DbError> {
    let mut st = conn.prepare(
        "SELECT job_id, service, role, array_size FROM jobs ORDER BY submitted_ns, job_id",
    )?;
    let rows = st.query_map([], |r| {
        Ok(ListedJob {
            job_id: r.get(0)?,
            service: r.get(1)?,
            role: r.get(2)?,
            array_size: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// The last measured completion of a run (for a run that never recorded its end).
pub fn last_measured_done_ns(conn: &Connection, run_id: &str) -> Result<Option<i64>, DbError> {
    let stored: Option<i64> = conn.query_row(
        "SELECT max(done_ns) FROM requests WHERE run_id = ?1 AND warmup = 0",
        [run_id],
        |r| r.get(0),
    )?;
    // And the rows of it still in the request log, if any.
    let mut logged: Option<i64> = None;
    scan_logged_requests(conn, run_id, false, &mut |v: Option<&RequestView<'_>>| {
        if let Some(v) = v {
            logged = Some(logged.map_or(v.done_ns, |t| t.max(v.done_ns)));
        }
    })?;
    Ok(stored.max(logged))
}

/// One measured `requests` row, borrowed from the statement (no copies on the hot path).
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub op: &'a [u8],
    pub scheduled_ns: i64,
    pub sent_ns: i64,
    /// Only read when LLM columns were asked for.
    pub first_byte_ns: Option<i64>,
    pub done_ns: i64,
    pub ok: bool,
    /// `None` when the column is not text.
    pub error_class: Option<&'a [u8]>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub tokens_from_server: Option<i64>,
    /// Little-endian u32 microsecond gaps; `None` unless a blob.
    pub itl_us: Option<&'a [u8]>,
}

/// Scan every `requests` row of a run in file order: `f(None)` for a warmup row (not decoded),
/// `f(Some(row))` for a measured one. LLM columns (first byte, tokens, ITL) are decoded only
/// when `llm_columns` (SQLite decodes each column it is asked for; skipping them makes a
/// non-LLM scan about 20 % faster).
pub fn scan_requests(
    conn: &Connection,
    run_id: &str,
    llm_columns: bool,
    mut f: impl FnMut(Option<&RequestView<'_>>),
) -> Result<(), DbError> {
    // The LLM columns come last and are only asked for (and decoded) for an LLM service:
    // SQLite decodes every column a query names, and each one read costs the scan about as
    // much again through the row API.
    let llm_cols = if llm_columns {
        ", first_byte_ns, input_tokens, output_tokens, tokens_from_server, itl_us"
    } else {
        ""
    };
    // One file per run is the common case (one per SLURM job): a sequential scan is then much
    // faster than walking the (run_id, scheduled_ns) index and fetching every row by rowid.
    let from = if count_runs(conn)? <= 1 {
        "requests NOT INDEXED"
    } else {
        "requests"
    };
    // Read through SQLite's C API: this loop runs once per request of the run.
    let mut st = super::raw::RawStatement::prepare(
        conn,
        &format!(
            "SELECT warmup, op, scheduled_ns, sent_ns, done_ns, ok, error_class, bytes_sent, \
             bytes_received{llm_cols} FROM {from} WHERE run_id = ?1"
        ),
    )?;
    st.text(1, run_id)?;
    while st.next_row()? {
        if st.column_i64(0) != 0 {
            f(None);
            continue;
        }
        let mut view = RequestView {
            op: st
                .column_bytes(1, false)
                .or_else(|| st.column_bytes(1, true))
                .unwrap_or(b""),
            scheduled_ns: st.column_i64(2),
            sent_ns: st.column_i64(3),
            first_byte_ns: None,
            done_ns: st.column_i64(4),
            ok: st.column_i64(5) != 0,
            error_class: st.column_bytes(6, false),
            bytes_sent: st.column_i64(7).max(0) as u64,
            bytes_received: st.column_i64(8).max(0) as u64,
            input_tokens: None,
            output_tokens: None,
            tokens_from_server: None,
            itl_us: None,
        };
        if llm_columns {
            view.first_byte_ns = st.column_opt_i64(9);
            view.input_tokens = st.column_opt_i64(10);
            view.output_tokens = st.column_opt_i64(11);
            view.tokens_from_server = st.column_opt_i64(12);
            view.itl_us = st.column_bytes(13, true);
        }
        f(Some(&view));
    }
    drop(st);
    scan_logged_requests(conn, run_id, llm_columns, &mut f)
}

/// The run's rows still in the request log: a running run's, or a killed run's that could not
/// be moved (the file is read-only to this user, or its disk is full). Decoded in memory.
fn scan_logged_requests(
    conn: &Connection,
    run_id: &str,
    llm_columns: bool,
    f: &mut impl FnMut(Option<&RequestView<'_>>),
) -> Result<(), DbError> {
    if !super::log::has_log(conn) {
        return Ok(());
    }
    let mut st = conn.prepare("SELECT body FROM request_log WHERE run_id = ?1 ORDER BY rowid")?;
    let mut q = st.query([run_id])?;
    let run: std::sync::Arc<str> = run_id.into();
    let mut rows = Vec::new();
    while let Some(r) = q.next()? {
        rows.clear();
        super::log::decode(&run, r.get_ref(0)?.as_blob()?, &mut rows).map_err(|e| {
            DbError::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, e.into())
        })?;
        for row in &rows {
            if row.warmup {
                f(None);
                continue;
            }
            let llm = |v: Option<u64>| v.filter(|_| llm_columns).map(|v| v as i64);
            f(Some(&RequestView {
                op: row.op.as_bytes(),
                scheduled_ns: row.scheduled_ns,
                sent_ns: row.sent_ns,
                first_byte_ns: row.first_byte_ns.filter(|_| llm_columns),
                done_ns: row.done_ns,
                ok: row.error_class.is_none(),
                error_class: row.error_class.map(|c| c.as_str().as_bytes()),
                bytes_sent: row.bytes_sent,
                bytes_received: row.bytes_received,
                input_tokens: llm(row.input_tokens),
                output_tokens: llm(row.output_tokens),
                tokens_from_server: row
                    .tokens_from_server
                    .filter(|_| llm_columns)
                    .map(i64::from),
                itl_us: row.itl_us.as_deref().filter(|_| llm_columns),
            }));
        }
    }
    Ok(())
}

/// The `run_metrics` of a run, in recording order (empty when the file has no such table).
pub fn run_metrics(conn: &Connection, run_id: &str) -> Result<Vec<RunMetric>, DbError> {
    if !has_table(conn, "run_metrics") {
        return Ok(Vec::new());
    }
    let mut st =
        conn.prepare("SELECT name, value, unit FROM run_metrics WHERE run_id = ?1 ORDER BY rowid")?;
    let it = st.query_map([run_id], |r| {
        Ok(RunMetric {
            name: r.get(0)?,
            value: r.get(1)?,
            unit: r.get(2)?,
        })
    })?;
    it.collect()
}

/// The `provenance` facts of a run, sorted by key (empty for files older than schema 2).
pub fn provenance(
    conn: &Connection,
    run_id: &str,
) -> Result<std::collections::BTreeMap<String, String>, DbError> {
    if !has_table(conn, "provenance") {
        return Ok(Default::default());
    }
    let mut st = conn.prepare("SELECT key, value FROM provenance WHERE run_id = ?1")?;
    let it = st.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    it.collect()
}

/// Every capacity search of a file with its steps in order (empty before schema 2).
pub fn capacity_searches(
    conn: &Connection,
) -> Result<Vec<(super::CapacitySearchRow, Vec<super::CapacityStepRow>)>, DbError> {
    if !has_table(conn, "capacity_searches") {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare(
        "SELECT search_id, service, spec_json, started_ns, ended_ns, outcome, sustainable_rate,
         first_failing_rate FROM capacity_searches ORDER BY started_ns",
    )?;
    let searches: Vec<super::CapacitySearchRow> = st
        .query_map([], |r| {
            Ok(super::CapacitySearchRow {
                search_id: r.get(0)?,
                service: r.get(1)?,
                spec_json: r.get(2)?,
                started_ns: r.get(3)?,
                ended_ns: r.get(4)?,
                outcome: r.get(5)?,
                sustainable_rate: r.get(6)?,
                first_failing_rate: r.get(7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut st = conn.prepare(
        "SELECT step, run_id, phase, target_rate, achieved_rate, latency_p99_ms, ttft_p99_ms,
         error_rate, passed, reason FROM capacity_steps WHERE search_id = ?1 ORDER BY step",
    )?;
    let mut out = Vec::new();
    for s in searches {
        let steps = st
            .query_map([&s.search_id], |r| {
                let phase: String = r.get(2)?;
                Ok(super::CapacityStepRow {
                    search_id: s.search_id.clone(),
                    step: r.get(0)?,
                    run_id: r.get(1)?,
                    phase: crate::capacity::Phase::parse(&phase)
                        .unwrap_or(crate::capacity::Phase::Ramp),
                    target_rate: r.get(3)?,
                    achieved_rate: r.get(4)?,
                    latency_p99_ms: r.get(5)?,
                    ttft_p99_ms: r.get(6)?,
                    error_rate: r.get(7)?,
                    passed: r.get(8)?,
                    reason: r.get(9)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        out.push((s, steps));
    }
    Ok(out)
}

/// One sampled series: its name and `(t_ns, value)` points in time order.
pub type SampleSeriesRows = (String, Vec<(i64, f64)>);

/// The `samples` of a run grouped by name (sorted), each in time order (empty when the file
/// has no such table).
pub fn samples(conn: &Connection, run_id: &str) -> Result<Vec<SampleSeriesRows>, DbError> {
    if !has_table(conn, "samples") {
        return Ok(Vec::new());
    }
    let mut st = conn
        .prepare("SELECT name, t_ns, value FROM samples WHERE run_id = ?1 ORDER BY name, t_ns")?;
    let mut rows = st.query([run_id])?;
    let mut series: Vec<SampleSeriesRows> = Vec::new();
    while let Some(r) = rows.next()? {
        let name: String = r.get(0)?;
        let t: i64 = r.get(1)?;
        let v: f64 = r.get(2)?;
        match series.last_mut() {
            Some((n, pts)) if *n == name => pts.push((t, v)),
            _ => series.push((name, vec![(t, v)])),
        }
    }
    Ok(series)
}

/// The encoded stored histograms `name` over all operations of every run of the file: the
/// workers' merge (`worker = -1`) where one exists, else every worker's row (empty when the
/// file has no such table).
pub fn stored_histograms(conn: &Connection, name: &str) -> Result<Vec<Vec<u8>>, DbError> {
    if !has_table(conn, "histograms") {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare(
        "SELECT h.encoded FROM histograms h WHERE h.name = ?1 AND h.op IS NULL AND \
         (h.worker = -1 OR NOT EXISTS (SELECT 1 FROM histograms m WHERE m.run_id = h.run_id \
         AND m.name = h.name AND m.op IS NULL AND m.worker = -1))",
    )?;
    let blobs = st.query_map([name], |r| r.get::<_, Vec<u8>>(0))?;
    blobs.collect()
}

/// Every request row of a run, warmup included (what its load generator sent and finished).
pub fn request_count(conn: &Connection, run_id: &str) -> Result<u64, DbError> {
    let logged = super::log::logged(conn, run_id)?.rows;
    conn.query_row(
        "SELECT count(*) FROM requests WHERE run_id = ?1",
        [run_id],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| (n + logged).max(0) as u64)
}
