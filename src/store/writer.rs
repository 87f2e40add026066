//! The single writer thread: every row goes through one channel into batched transactions.

use super::{FinishRun, NewRun, RequestRow, StoreError, COMMIT_INTERVAL};
use crate::model::RunMetric;
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

/// Largest batch per transaction (keeps a commit short when the queue is deep).
const MAX_BATCH: usize = 50_000;

/// How long the writer sleeps when its queue is empty inside a batch.
const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

type Reply = Sender<Result<(), String>>;

enum Msg {
    Request(Box<RequestRow>),
    Sample {
        run_id: Arc<str>,
        t_ns: i64,
        name: &'static str,
        value: f64,
    },
    Histogram {
        run_id: Arc<str>,
        worker: i32,
        name: String,
        op: Option<String>,
        encoded: Vec<u8>,
    },
    Metric {
        run_id: Arc<str>,
        metric: RunMetric,
    },
    CreateRun(Box<NewRun>, Sender<Result<(), String>>),
    FinishRun(Box<FinishRun>, Sender<Result<(), String>>),
    Flush(Sender<Result<(), String>>),
    Shutdown,
}

/// What the writer did (for the benchmark note and debugging).
#[derive(Debug, Clone, Copy, Default)]
pub struct WriterStats {
    pub requests: u64,
    pub samples: u64,
    pub transactions: u64,
}

/// The campaign file's writer: owns the thread. Dropping it without [`Store::close`] still
/// commits what was queued.
pub struct Store {
    path: PathBuf,
    tx: Sender<Msg>,
    failed: Arc<OnceLock<String>>,
    thread: Option<JoinHandle<Result<WriterStats, String>>>,
}

/// A cheap, clonable sender of rows into the writer. Every method except the `*_sync` ones
/// returns at once (the hot path never waits on disk).
#[derive(Clone)]
pub struct StoreHandle {
    tx: Sender<Msg>,
    failed: Arc<OnceLock<String>>,
}

impl Store {
    /// Open (create/upgrade) `path` and start the writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = super::open(path)?;
        let (tx, rx) = mpsc::channel();
        let failed = Arc::new(OnceLock::new());
        let f2 = failed.clone();
        let thread = std::thread::Builder::new()
            .name("fb-store-writer".into())
            .spawn(move || writer_loop(conn, rx, f2))
            .map_err(|e| StoreError::WriterGone(e.to_string()))?;
        Ok(Store {
            path: path.to_path_buf(),
            tx,
            failed,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn handle(&self) -> StoreHandle {
        StoreHandle {
            tx: self.tx.clone(),
            failed: self.failed.clone(),
        }
    }

    /// Commit everything queued and stop the writer.
    pub fn close(mut self) -> Result<WriterStats, StoreError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<WriterStats, StoreError> {
        let _ = self.tx.send(Msg::Shutdown);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| StoreError::WriterGone("writer thread panicked".into()))?
                .map_err(StoreError::WriterGone),
            None => Ok(WriterStats::default()),
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl StoreHandle {
    /// The first write error of the campaign file (a full disk), as soon as the writer met
    /// it: the engine stops the load on it instead of measuring into the void.
    pub fn write_error(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }

    pub fn request(&self, row: RequestRow) {
        let _ = self.tx.send(Msg::Request(Box::new(row)));
    }

    pub fn sample(&self, run_id: &Arc<str>, t_ns: i64, name: &'static str, value: f64) {
        if value.is_finite() {
            let _ = self.tx.send(Msg::Sample {
                run_id: run_id.clone(),
                t_ns,
                name,
                value,
            });
        }
    }

    /// A serialized histogram (`worker` -1 = merged over workers, `op` None = all operations).
    pub fn histogram(
        &self,
        run_id: &Arc<str>,
        worker: i32,
        name: &str,
        op: Option<&str>,
        encoded: Vec<u8>,
    ) {
        let _ = self.tx.send(Msg::Histogram {
            run_id: run_id.clone(),
            worker,
            name: name.to_string(),
            op: op.map(str::to_string),
            encoded,
        });
    }

    pub fn run_metric(&self, run_id: &Arc<str>, metric: RunMetric) {
        if metric.value.is_finite() {
            let _ = self.tx.send(Msg::Metric {
                run_id: run_id.clone(),
                metric,
            });
        }
    }

    /// Insert the run row and wait until it is committed.
    pub fn create_run_sync(&self, run: NewRun) -> Result<(), StoreError> {
        self.call(|reply| Msg::CreateRun(Box::new(run), reply))
    }

    /// Update the run's final state, committing everything queued before; waits.
    pub fn finish_run_sync(&self, fin: FinishRun) -> Result<(), StoreError> {
        self.call(|reply| Msg::FinishRun(Box::new(fin), reply))
    }

    /// Wait until everything sent before is committed; returns the first write error, if any.
    pub fn flush_sync(&self) -> Result<(), StoreError> {
        self.call(Msg::Flush)
    }

    fn call(&self, f: impl FnOnce(Sender<Result<(), String>>) -> Msg) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(f(tx))
            .map_err(|_| StoreError::WriterGone("channel closed".into()))?;
        rx.recv()
            .map_err(|_| StoreError::WriterGone("no reply".into()))?
            .map_err(StoreError::WriterGone)
    }
}

fn writer_loop(
    conn: Connection,
    rx: Receiver<Msg>,
    failed: Arc<OnceLock<String>>,
) -> Result<WriterStats, String> {
    let mut stats = WriterStats::default();
    // The first write error is kept, published to the handles at once, and reported to every
    // later sync call.
    let mut error: Option<String> = None;
    let note = |error: &mut Option<String>, e: String| {
        if error.is_none() {
            let _ = failed.set(e.clone());
            *error = Some(e);
        }
    };
    loop {
        let first = match rx.recv() {
            Ok(m) => m,
            Err(_) => return Ok(stats),
        };
        let deadline = Instant::now() + COMMIT_INTERVAL;
        let mut replies: Vec<(Reply, Result<(), String>)> = Vec::new();
        let mut own_replies: Vec<(Reply, Result<(), String>)> = Vec::new();
        let mut shutdown = false;
        if let Err(e) = conn.execute_batch("BEGIN") {
            note(&mut error, e.to_string());
        }
        let mut n = 0usize;
        let mut msg = Some(first);
        while let Some(m) = msg.take() {
            n += 1;
            let urgent = matches!(
                m,
                Msg::CreateRun(..) | Msg::FinishRun(..) | Msg::Flush(_) | Msg::Shutdown
            );
            match m {
                Msg::Shutdown => shutdown = true,
                Msg::Flush(reply) => replies.push((reply, Ok(()))),
                Msg::CreateRun(run, reply) => {
                    let r = insert_run(&conn, &run).map_err(|e| e.to_string());
                    replies.push((reply, r));
                }
                Msg::FinishRun(fin, reply) => {
                    let r = finish_run(&conn, &fin, error.as_deref());
                    // After a write error (a full disk) the run's end is still recorded if
                    // it can be: it goes alone in a transaction (the failed one was rolled
                    // back, so the journal has room) and its reply is its own result.
                    match (r, &error) {
                        (Ok(()), Some(_)) => {
                            let r = conn.execute_batch("COMMIT; BEGIN");
                            own_replies.push((reply, r.map_err(|e| e.to_string())));
                        }
                        (r, _) => replies.push((reply, r.map_err(|e| e.to_string()))),
                    }
                }
                // After a write error, rows are dropped: retrying each one on a full disk
                // only burns the CPU the load generator needs.
                _ if error.is_some() => {}
                other => {
                    if let Err(e) = insert_row(&conn, other, &mut stats) {
                        note(&mut error, e.to_string());
                        // SQLite rolls a transaction back on SQLITE_FULL; drop what is left
                        // of this batch and start a fresh transaction for what follows.
                        let _ = conn.execute_batch("ROLLBACK");
                        let _ = conn.execute_batch("BEGIN");
                    }
                }
            }
            if urgent || n >= MAX_BATCH {
                break;
            }
            // Poll instead of blocking in recv: a parked receiver makes every send a futex
            // wake-up (a syscall and a context switch per request row on the hot path).
            loop {
                match rx.try_recv() {
                    Ok(m) => {
                        msg = Some(m);
                        break;
                    }
                    Err(TryRecvError::Empty) => {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
                    }
                    Err(TryRecvError::Disconnected) => {
                        shutdown = true;
                        break;
                    }
                }
            }
        }
        if let Err(e) = conn.execute_batch("COMMIT") {
            note(&mut error, e.to_string());
            let _ = conn.execute_batch("ROLLBACK");
        }
        stats.transactions += 1;
        for (reply, r) in replies {
            let r = match (&error, r) {
                (Some(e), Ok(())) => Err(e.clone()),
                (_, r) => r,
            };
            let _ = reply.send(r);
        }
        for (reply, r) in own_replies {
            let _ = reply.send(r);
        }
        if shutdown {
            let _ = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
            return match error {
                Some(e) => Err(e),
                None => Ok(stats),
            };
        }
    }
}

fn insert_row(conn: &Connection, m: Msg, stats: &mut WriterStats) -> rusqlite::Result<()> {
    match m {
        Msg::Request(r) => {
            stats.requests += 1;
            let mut st = conn.prepare_cached(
                "INSERT INTO requests (run_id, worker, seq, op, scheduled_ns, sent_ns,
                 first_byte_ns, done_ns, ok, error_class, http_status, size_bytes, bytes_sent,
                 bytes_received, warmup, input_tokens, output_tokens, tokens_from_server, itl_us)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19)",
            )?;
            st.execute(params![
                &*r.run_id,
                r.worker,
                r.seq as i64,
                r.op,
                r.scheduled_ns,
                r.sent_ns,
                r.first_byte_ns,
                r.done_ns,
                r.error_class.is_none(),
                r.error_class.map(|c| c.as_str()),
                r.http_status,
                r.size_bytes as i64,
                r.bytes_sent as i64,
                r.bytes_received as i64,
                r.warmup,
                r.input_tokens.map(|v| v as i64),
                r.output_tokens.map(|v| v as i64),
                r.tokens_from_server,
                r.itl_us,
            ])?;
        }
        Msg::Sample {
            run_id,
            t_ns,
            name,
            value,
        } => {
            stats.samples += 1;
            conn.prepare_cached(
                "INSERT INTO samples (run_id, t_ns, name, value) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![&*run_id, t_ns, name, value])?;
        }
        Msg::Histogram {
            run_id,
            worker,
            name,
            op,
            encoded,
        } => {
            conn.prepare_cached(
                "INSERT INTO histograms (run_id, worker, name, op, encoded) VALUES (?1,?2,?3,?4,?5)",
            )?
            .execute(params![&*run_id, worker, name, op, encoded])?;
        }
        Msg::Metric { run_id, metric } => {
            conn.prepare_cached(
                "INSERT INTO run_metrics (run_id, name, value, unit) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![&*run_id, metric.name, metric.value, metric.unit])?;
        }
        _ => {}
    }
    Ok(())
}

fn insert_run(conn: &Connection, r: &NewRun) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO runs (run_id, campaign, service, service_kind, status, started_ns, arrival,
         clients, target_rate, duration_s, warmup_s, seed, sweep_param, sweep_value, recipe_json,
         recipe_sha256, host, tool_version, git_commit, slurm_job_id, slurm_array_task)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21)",
        params![
            r.run_id,
            r.campaign,
            r.service,
            r.service_kind.as_str(),
            r.status.as_str(),
            r.started_ns,
            r.arrival,
            r.clients,
            r.target_rate,
            r.duration_s,
            r.warmup_s,
            r.seed as i64,
            r.sweep_param,
            r.sweep_value,
            r.recipe_json,
            r.recipe_sha256,
            r.host,
            r.tool_version,
            r.git_commit,
            r.slurm_job_id,
            r.slurm_array_task,
        ],
    )?;
    Ok(())
}

/// The run's final state. After a write error of the campaign file (`store_error`) the run is
/// failed whatever the caller thought, with that error as its reason.
fn finish_run(conn: &Connection, f: &FinishRun, store_error: Option<&str>) -> rusqlite::Result<()> {
    let store_failure;
    let (status, stage, message) = match store_error {
        Some(e) => {
            store_failure = format!(
                "the campaign file could not be written ({e}); rows committed before are kept"
            );
            (
                super::RunStatus::Failed,
                Some(super::FailureStage::Benchmark.as_str()),
                Some(store_failure.as_str()),
            )
        }
        None => (
            f.status,
            f.failure_stage.map(|s| s.as_str()),
            f.failure_message.as_deref(),
        ),
    };
    conn.execute(
        "UPDATE runs SET status = ?2, failure_stage = ?3, failure_message = ?4, stop_reason = ?5,
         measure_start_ns = COALESCE(?6, measure_start_ns), ended_ns = ?7, cpu_user_s = ?8,
         cpu_system_s = ?9 WHERE run_id = ?1",
        params![
            &*f.run_id,
            status.as_str(),
            stage,
            message,
            f.stop_reason,
            f.measure_start_ns,
            f.ended_ns,
            f.cpu_user_s,
            f.cpu_system_s,
        ],
    )?;
    Ok(())
}
