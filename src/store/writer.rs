//! The single writer thread: batched transactions into the campaign file.
//!
//! Request rows do not travel through the channel one by one: the engine pushes them into a
//! [`RequestSink`] (per-client shards, a mutex each; a row is encoded into the shard's buffer
//! in the request log's compact form, on the engine's thread: no allocation once the buffers
//! have grown, no channel send, no wake-up), and the writer takes each shard's whole buffer
//! in one swap every [`DRAIN_INTERVAL`]. While a run is on, each drain is appended to the
//! request log as one chunk ([`super::log`]: each shard's buffer a segment of it); when the run finishes (its `FinishRun`) the
//! writer moves its rows into `requests` with multi-row prepared statements. Every other message (samples, histograms, run rows, flushes) still goes through the channel;
//! before handling any of them the writer drains the sinks, so a `FinishRun` or `Flush` is
//! always committed after every row pushed before it.
//!
//! The `requests(run_id, scheduled_ns)` index is dropped when the writer opens the file and
//! rebuilt once when it closes (maintaining it per row was ~30 % of the writer's cost), only in
//! a file of several runs (a one-run file is read with sequential scans); a reader that finds it
//! missing (a killed run) builds it ([`super::read::ensure_request_index`]).

use super::raw::RawStatement;
use super::{
    CapacitySearchRow, CapacityStepRow, FinishRun, NewRun, RequestRow, StoreError, COMMIT_INTERVAL,
};
use crate::model::RunMetric;
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

/// Largest batch per transaction (keeps a commit short when the queue is deep).
const MAX_BATCH: usize = 50_000;

/// Rows per multi-row INSERT (14 bound columns each, 18 with the LLM columns, plus the run id
/// bound once: at most 1,153 parameters per statement).
const ROWS_PER_INSERT: usize = 64;

/// How long the writer sleeps when its queue is empty inside a batch.
const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

/// How often the writer takes the sinks' buffers (and always before a sync message and before
/// each commit). Long enough for the rows of a drain to fill multi-row statements: a
/// statement's execution costs about as much as binding 64 rows.
const DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(25);

type Reply = Sender<Result<(), String>>;

enum Msg {
    Request(Box<RequestRow>),
    Attach(Arc<RequestSink>),
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
    Provenance {
        run_id: Arc<str>,
        facts: Vec<(String, String)>,
    },
    CapacitySearch(Box<CapacitySearchRow>),
    CapacityStep(Box<CapacityStepRow>),
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

/// Request rows of one run, buffered per shard (the engine uses one shard per client) until
/// the writer takes them. Pushing is a short uncontended lock and the row's encoding into the
/// shard's buffer (about 18 bytes for an HTTP request; see [`super::log`]): the encoding
/// costs the engine's thread less than moving the whole row would, and leaves the writer,
/// which shares the cores with the load, a quarter of the bytes to write.
pub struct RequestSink {
    run_id: Arc<str>,
    shards: Box<[Mutex<Shard>]>,
}

/// One shard's rows: a segment of the request log being encoded, on cache lines of its own
/// (neighbouring shards belong to different client threads).
#[derive(Default)]
#[repr(align(128))]
struct Shard {
    bytes: Vec<u8>,
    enc: super::log::Encoder,
}

impl RequestSink {
    /// Buffer `row` in shard `shard % shards` (the row's `run_id` must be the sink's).
    pub fn push(&self, shard: usize, row: RequestRow) {
        debug_assert_eq!(&*row.run_id, &*self.run_id);
        let s = &self.shards[shard % self.shards.len()];
        let mut g = s.lock().unwrap_or_else(|e| e.into_inner());
        let Shard { bytes, enc } = &mut *g;
        enc.push(bytes, &row);
    }

    pub fn run_id(&self) -> &Arc<str> {
        &self.run_id
    }

    fn any_pending(&self) -> bool {
        self.shards
            .iter()
            .any(|x| !x.lock().unwrap_or_else(|e| e.into_inner()).bytes.is_empty())
    }
}

impl Store {
    /// Open (create/upgrade) `path` and start the writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = super::open(path)?;
        // Built again when the writer stops (see the module doc).
        conn.execute_batch(super::DROP_REQUEST_INDEX_SQL)?;
        // The bundled SQLite enforces foreign keys by default: every request row would look its
        // run up in `runs` (a cursor opened and an index seek per row, ~15 % of the insert's
        // cost). This writer inserts a run's row (`create_run_sync`) before any of its requests,
        // so the check can never fail here; other connections keep it.
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        // Rows a killed run left in the request log join `requests` before anything new.
        expand_all(&conn, &mut Inserts::new(&conn))?;
        let (tx, rx) = mpsc::channel();
        let failed = Arc::new(OnceLock::new());
        let f2 = failed.clone();
        let reserve = Reserve::create(path);
        let thread = std::thread::Builder::new()
            .name("fb-store-writer".into())
            .spawn(move || writer_loop(conn, rx, f2, reserve))
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

    /// A sink for `run_id`'s request rows with `shards` buffers, attached to the writer (which
    /// drains it until the last other reference is dropped and it is empty).
    pub fn request_sink(&self, run_id: &Arc<str>, shards: usize) -> Arc<RequestSink> {
        let sink = Arc::new(RequestSink {
            run_id: run_id.clone(),
            shards: (0..shards.max(1))
                .map(|_| {
                    Mutex::new(Shard {
                        bytes: Vec::with_capacity(16 * 1024),
                        enc: Default::default(),
                    })
                })
                .collect(),
        });
        let _ = self.tx.send(Msg::Attach(sink.clone()));
        sink
    }

    /// One row through the channel (for callers without a sink; the engine uses a sink).
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

    /// What ran the run (`key`, `value`; a key written again replaces the old value).
    pub fn provenance(&self, run_id: &Arc<str>, facts: Vec<(String, String)>) {
        let _ = self.tx.send(Msg::Provenance {
            run_id: run_id.clone(),
            facts,
        });
    }

    /// Insert or replace a capacity search's row.
    pub fn capacity_search(&self, row: CapacitySearchRow) {
        let _ = self.tx.send(Msg::CapacitySearch(Box::new(row)));
    }

    /// Insert one capacity search step.
    pub fn capacity_step(&self, row: CapacityStepRow) {
        let _ = self.tx.send(Msg::CapacityStep(Box::new(row)));
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

/// The writer's attached sinks and the spare buffer swapped into a shard when it is drained
/// (capacity circulates between shards and the writer: no allocation in steady state).
struct Sinks {
    sinks: Vec<Arc<RequestSink>>,
    spare: Vec<u8>,
    /// The chunk, reused.
    body: Vec<u8>,
}

impl Sinks {
    /// Append every buffered row to the request log (a chunk per sink, a segment per shard:
    /// see [`super::log`]); drop sinks nobody else holds once they are empty.
    /// With `discard` (after a write error: a full disk) the rows are taken and dropped:
    /// retrying each one only burns the CPU the load generator needs.
    fn drain(
        &mut self,
        ins: &mut Inserts<'_>,
        stats: &mut WriterStats,
        discard: bool,
    ) -> rusqlite::Result<usize> {
        let mut n = 0;
        let mut first_err = None;
        for sink in &self.sinks {
            let mut summary = super::log::ChunkSummary::default();
            super::log::begin_chunk(&mut self.body);
            for shard in sink.shards.iter() {
                let seg = {
                    let mut g = shard.lock().unwrap_or_else(|e| e.into_inner());
                    if g.bytes.is_empty() {
                        continue;
                    }
                    std::mem::swap(&mut g.bytes, &mut self.spare);
                    std::mem::take(&mut g.enc).summary()
                };
                summary = summary.merge(seg);
                if !discard && first_err.is_none() {
                    super::log::append_segment(&mut self.body, &self.spare);
                }
                self.spare.clear();
            }
            if summary.rows == 0 || discard || first_err.is_some() {
                continue;
            }
            n += summary.rows as usize;
            stats.requests += summary.rows as u64;
            if let Err(e) = super::log::append(ins.conn, &sink.run_id, summary, &self.body) {
                first_err.get_or_insert(e);
            }
        }
        self.sinks
            .retain(|s| Arc::strong_count(s) > 1 || s.any_pending());
        match first_err {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    fn any_pending(&self) -> bool {
        self.sinks.iter().any(|s| s.any_pending())
    }
}

/// The next message: `None` once the channel is closed, or (`polling`: sinks are attached)
/// when none came within the poll interval.
#[inline]
fn next_message(rx: &Receiver<Msg>, polling: bool, disconnected: &mut bool) -> Option<Msg> {
    if *disconnected {
        None
    } else if !polling {
        match rx.recv() {
            Ok(m) => Some(m),
            Err(_) => {
                *disconnected = true;
                None
            }
        }
    } else {
        match rx.recv_timeout(POLL_INTERVAL) {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                *disconnected = true;
                None
            }
        }
    }
}

/// Answer the sync calls of a committed transaction: after a write error every answer is
/// that error, except the replies that went in a transaction of their own.
#[inline]
fn send_replies(replies: Replies, own_replies: Replies, error: Option<&str>) {
    for (reply, r) in replies {
        let r = match (error, r) {
            (Some(e), Ok(())) => Err(e.to_string()),
            (_, r) => r,
        };
        let _ = reply.send(r);
    }
    for (reply, r) in own_replies {
        let _ = reply.send(r);
    }
}

/// Sync calls waiting for the end of a transaction, with their answers.
type Replies = Vec<(Reply, Result<(), String>)>;

/// Room kept beside the campaign file for recording a run's end after the disk fills: a file
/// of [`RESERVE_BYTES`] written when the store opens, removed at the first write error (so
/// that the end of the run, which is all that is still written, finds space) and when the
/// writer stops. Without it a disk that fills mid-batch can leave no page for the run's
/// `failed` status, and the run would read `running` for ever.
struct Reserve(std::cell::Cell<Option<PathBuf>>);

const RESERVE_BYTES: usize = 512 * 1024;

impl Reserve {
    fn create(db: &Path) -> Reserve {
        let mut name = db.as_os_str().to_owned();
        name.push(".reserve");
        let path = PathBuf::from(name);
        // Best effort: a disk already too full for it runs without (and says so at the end).
        let made = std::fs::write(&path, vec![0u8; RESERVE_BYTES]).is_ok();
        if !made {
            let _ = std::fs::remove_file(&path);
        }
        Reserve(std::cell::Cell::new(made.then_some(path)))
    }

    fn release(&self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        self.release();
    }
}

fn writer_loop(
    conn: Connection,
    rx: Receiver<Msg>,
    failed: Arc<OnceLock<String>>,
    reserve: Reserve,
) -> Result<WriterStats, String> {
    let mut stats = WriterStats::default();
    let mut sinks = Sinks {
        sinks: Vec::new(),
        spare: Vec::with_capacity(16 * 1024),
        body: Vec::new(),
    };
    // The first write error is kept, published to the handles at once, and reported to every
    // later sync call.
    let mut error: Option<String> = None;
    let note = |error: &mut Option<String>, e: String| {
        if error.is_none() {
            reserve.release();
            let _ = failed.set(e.clone());
            *error = Some(e);
        }
    };
    // SQLite rolls a transaction back on SQLITE_FULL: drop what is left of this batch and
    // start a fresh transaction for what follows.
    let restart = |conn: &Connection| {
        let _ = conn.execute_batch("ROLLBACK");
        let _ = conn.execute_batch("BEGIN");
    };
    let mut disconnected = false;
    let mut last_drain = Instant::now();
    let mut inserts = Inserts::new(&conn);
    loop {
        // Wait for a message, or (with sinks attached) for the next poll.
        let first = next_message(&rx, !sinks.sinks.is_empty(), &mut disconnected);
        if first.is_none() && !disconnected && !sinks.any_pending() {
            continue;
        }
        let deadline = Instant::now() + COMMIT_INTERVAL;
        let mut replies: Replies = Vec::new();
        let mut own_replies: Replies = Vec::new();
        let mut shutdown = disconnected;
        if let Err(e) = conn.execute_batch("BEGIN") {
            note(&mut error, e.to_string());
        }
        let mut n = 0usize;
        let mut msg = first;
        loop {
            let urgent = msg.as_ref().is_some_and(|m| {
                matches!(
                    m,
                    Msg::CreateRun(..) | Msg::FinishRun(..) | Msg::Flush(_) | Msg::Shutdown
                )
            });
            // Rows pushed before a sync message are committed with (or before) it.
            if urgent || last_drain.elapsed() >= DRAIN_INTERVAL {
                last_drain = Instant::now();
                match sinks.drain(&mut inserts, &mut stats, error.is_some()) {
                    Ok(k) => n += k,
                    Err(e) => {
                        note(&mut error, e.to_string());
                        restart(&conn);
                    }
                }
            }
            if let Some(m) = msg.take() {
                n += 1;
                match m {
                    Msg::Shutdown => shutdown = true,
                    Msg::Flush(reply) => replies.push((reply, Ok(()))),
                    Msg::Attach(sink) => sinks.sinks.push(sink),
                    Msg::CreateRun(run, reply) => {
                        let r = insert_run(&conn, &run).map_err(|e| e.to_string());
                        replies.push((reply, r));
                    }
                    Msg::FinishRun(fin, reply) => {
                        let r = finish_run(&conn, &fin, error.as_deref());
                        // After a write error (a full disk) the run's end is still recorded
                        // if it can be: it goes alone in a transaction (the failed one was
                        // rolled back, so the journal has room) and its reply is its own.
                        match (r, &error) {
                            (Ok(()), Some(_)) => {
                                let r = conn.execute_batch("COMMIT; BEGIN");
                                own_replies.push((reply, r.map_err(|e| e.to_string())));
                            }
                            (r, _) => replies.push((reply, r.map_err(|e| e.to_string()))),
                        }
                        if error.is_none() {
                            if let Err(e) = move_rows(&conn, &mut inserts, &fin) {
                                note(&mut error, e.to_string());
                                restart(&conn);
                                // Its end says the file could not be written (its rows stay
                                // in the log, read in place).
                                let _ = finish_run(&conn, &fin, error.as_deref())
                                    .and_then(|_| conn.execute_batch("COMMIT; BEGIN"));
                            }
                        }
                    }
                    _ if error.is_some() => {}
                    other => {
                        if let Err(e) = insert_row(&conn, &mut inserts, other, &mut stats) {
                            note(&mut error, e.to_string());
                            restart(&conn);
                        }
                    }
                }
            }
            if urgent || shutdown || n >= MAX_BATCH {
                break;
            }
            // Poll instead of blocking in recv: a parked receiver makes every send a futex
            // wake-up (a syscall and a context switch per message on the hot path).
            match rx.try_recv() {
                Ok(m) => msg = Some(m),
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    std::thread::sleep(POLL_INTERVAL.min(deadline - now));
                }
                Err(TryRecvError::Disconnected) => {
                    disconnected = true;
                    shutdown = true;
                }
            }
        }
        // Whatever the engine pushed since the last drain (at shutdown: what it pushed last).
        last_drain = Instant::now();
        if let Err(e) = sinks.drain(&mut inserts, &mut stats, error.is_some()) {
            note(&mut error, e.to_string());
            restart(&conn);
        }
        if let Err(e) = conn.execute_batch("COMMIT") {
            note(&mut error, e.to_string());
            let _ = conn.execute_batch("ROLLBACK");
        }
        stats.transactions += 1;
        send_replies(replies, own_replies, error.as_deref());
        if shutdown {
            close_file(&conn, &mut inserts, &mut error);
            return match error {
                Some(e) => Err(e),
                None => Ok(stats),
            };
        }
    }
}

/// The columns every request row binds (after `run_id`, which is bound once per statement).
const LEAN_COLUMNS: &str = "worker, seq, op, scheduled_ns, sent_ns, first_byte_ns, done_ns, ok, \
     error_class, http_status, size_bytes, bytes_sent, bytes_received, warmup";

/// The LLM columns, bound only by rows that have one of them (the others leave them to their
/// NULL default: four binds fewer per row).
const LLM_COLUMNS: &str = "input_tokens, output_tokens, tokens_from_server, itl_us";

const LEAN_PARAMS: usize = 14;
const FULL_PARAMS: usize = LEAN_PARAMS + 4;

/// `INSERT ... VALUES (?1, ?2, ...), (?1, ...)` for `rows` rows of `per_row` parameters each:
/// `?1` is the run id, shared by every row of the statement (bound once, not once per row).
fn insert_sql(rows: usize, per_row: usize) -> String {
    let cols = if per_row == LEAN_PARAMS {
        LEAN_COLUMNS.to_string()
    } else {
        format!("{LEAN_COLUMNS}, {LLM_COLUMNS}")
    };
    let values: Vec<String> = (0..rows)
        .map(|i| {
            let ps: Vec<String> = (0..per_row)
                .map(|j| format!("?{}", 2 + i * per_row + j))
                .collect();
            format!("(?1,{})", ps.join(","))
        })
        .collect();
    format!(
        "INSERT INTO requests (run_id, {cols}) VALUES {}",
        values.join(",")
    )
}

/// Rows per statement of the middle size (for what is left after the 64-row statements).
const ROWS_PER_SMALL_INSERT: usize = 8;

/// Row counts of the insert statements, largest first.
const STATEMENT_ROWS: [usize; 3] = [ROWS_PER_INSERT, ROWS_PER_SMALL_INSERT, 1];

/// The writer's request insert statements (lean and full, by [`STATEMENT_ROWS`]), prepared
/// once, when first used.
struct Inserts<'c> {
    conn: &'c Connection,
    lean: [Option<RawStatement<'c>>; 3],
    full: [Option<RawStatement<'c>>; 3],
}

impl<'c> Inserts<'c> {
    fn new(conn: &'c Connection) -> Self {
        Inserts {
            conn,
            lean: [None, None, None],
            full: [None, None, None],
        }
    }

    /// The statement for `STATEMENT_ROWS[k]` rows.
    fn get(&mut self, full: bool, k: usize) -> rusqlite::Result<&mut RawStatement<'c>> {
        let (slot, per_row) = if full {
            (&mut self.full[k], FULL_PARAMS)
        } else {
            (&mut self.lean[k], LEAN_PARAMS)
        };
        if slot.is_none() {
            *slot = Some(RawStatement::prepare(
                self.conn,
                &insert_sql(STATEMENT_ROWS[k], per_row),
            )?);
        }
        Ok(slot.as_mut().expect("prepared above"))
    }
}

/// Whether `r` has none of the LLM columns (it then goes through the lean statement).
fn is_lean(r: &RequestRow) -> bool {
    r.input_tokens.is_none()
        && r.output_tokens.is_none()
        && r.tokens_from_server.is_none()
        && r.itl_us.is_none()
}

/// Bind one row's values at parameter `base + 1 ..` (`full`: the LLM columns too).
fn bind_row(
    st: &mut RawStatement<'_>,
    base: usize,
    r: &RequestRow,
    full: bool,
) -> rusqlite::Result<()> {
    st.int(base + 1, i64::from(r.worker))?;
    st.int(base + 2, r.seq as i64)?;
    st.static_text(base + 3, r.op)?;
    st.int(base + 4, r.scheduled_ns)?;
    st.int(base + 5, r.sent_ns)?;
    st.opt_int(base + 6, r.first_byte_ns)?;
    st.int(base + 7, r.done_ns)?;
    st.int(base + 8, i64::from(r.error_class.is_none()))?;
    match r.error_class {
        Some(c) => st.static_text(base + 9, c.as_str())?,
        None => st.null(base + 9)?,
    }
    st.opt_int(base + 10, r.http_status.map(i64::from))?;
    st.int(base + 11, r.size_bytes as i64)?;
    st.int(base + 12, r.bytes_sent as i64)?;
    st.int(base + 13, r.bytes_received as i64)?;
    st.int(base + 14, i64::from(r.warmup))?;
    if full {
        st.opt_int(base + 15, r.input_tokens.map(|v| v as i64))?;
        st.opt_int(base + 16, r.output_tokens.map(|v| v as i64))?;
        st.opt_int(base + 17, r.tokens_from_server.map(i64::from))?;
        st.opt_blob(base + 18, r.itl_us.as_deref())?;
    }
    Ok(())
}

/// Insert `rows` of `run_id`: [`ROWS_PER_INSERT`] rows per prepared statement, then
/// [`ROWS_PER_SMALL_INSERT`], the rest one by one. A batch without any LLM value (every
/// non-LLM service) goes through the lean statements, which leave the LLM columns NULL.
fn insert_requests(
    ins: &mut Inserts<'_>,
    run_id: &str,
    rows: &[RequestRow],
) -> rusqlite::Result<()> {
    let full = !rows.iter().all(is_lean);
    let per_row = if full { FULL_PARAMS } else { LEAN_PARAMS };
    let mut rest = rows;
    for (k, size) in STATEMENT_ROWS.into_iter().enumerate() {
        let mut chunks = rest.chunks_exact(size);
        if chunks.len() > 0 {
            let st = ins.get(full, k)?;
            st.text(1, run_id)?;
            for chunk in &mut chunks {
                for (i, r) in chunk.iter().enumerate() {
                    bind_row(st, 1 + i * per_row, r, full)?;
                }
                st.execute()?;
            }
        }
        rest = chunks.remainder();
    }
    Ok(())
}

/// What the writer does last: the rows of a run that never finished (its engine failed)
/// leave the request log too, and the index readers use (dropped at open) is built where the
/// file holds several runs.
fn close_file(conn: &Connection, inserts: &mut Inserts<'_>, error: &mut Option<String>) {
    if error.is_none() {
        if let Err(e) = expand_all(conn, inserts) {
            error.get_or_insert(e.to_string());
        }
    }
    if super::wants_request_index(conn) {
        if let Err(e) = conn.execute_batch(super::CREATE_REQUEST_INDEX_SQL) {
            error.get_or_insert(e.to_string());
        }
    }
    let _ = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
}

/// A finished run's logged rows into `requests` (its sink was drained before its
/// `FinishRun`). Its end is committed first: a SLURM time limit's SIGKILL during a long move
/// leaves the run `partial` with the rest of its rows in the log, not a run that never ended.
fn move_rows(conn: &Connection, ins: &mut Inserts<'_>, fin: &FinishRun) -> rusqlite::Result<u64> {
    conn.execute_batch("COMMIT; BEGIN")?;
    expand_log(conn, ins, &fin.run_id)
}

/// Move `run_id`'s logged rows into `requests` (in the current transaction).
fn expand_log(conn: &Connection, ins: &mut Inserts<'_>, run_id: &str) -> rusqlite::Result<u64> {
    // A long run's move takes a while (about a second per million rows): say so first.
    let pending = super::log::logged(conn, run_id)?.rows;
    if pending >= 2_000_000 {
        tracing::info!(
            "storing the {pending} request rows of run {run_id} in the campaign file (about {} s)",
            pending / 1_000_000
        );
    }
    super::log::expand_run(
        conn,
        run_id,
        &mut |run, rows| insert_requests(ins, run, rows),
        &mut || conn.execute_batch("COMMIT; BEGIN"),
    )
}

/// Move every logged row into `requests`, each run in its own transaction: at open (runs of a
/// process that died) and when the writer stops.
fn expand_all(conn: &Connection, ins: &mut Inserts<'_>) -> rusqlite::Result<u64> {
    let mut n = 0;
    for run in super::log::logged_runs(conn)? {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        match expand_log(conn, ins, &run) {
            Ok(k) => {
                conn.execute_batch("COMMIT")?;
                n += k;
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
    Ok(n)
}

fn insert_row(
    conn: &Connection,
    ins: &mut Inserts<'_>,
    m: Msg,
    stats: &mut WriterStats,
) -> rusqlite::Result<()> {
    match m {
        Msg::Request(r) => {
            stats.requests += 1;
            insert_requests(ins, &r.run_id.clone(), std::slice::from_ref(&*r))?;
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
        Msg::Provenance { run_id, facts } => {
            let mut st = conn.prepare_cached(
                "INSERT OR REPLACE INTO provenance (run_id, key, value) VALUES (?1, ?2, ?3)",
            )?;
            for (k, v) in facts {
                st.execute(params![&*run_id, k, v])?;
            }
        }
        Msg::CapacitySearch(r) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO capacity_searches (search_id, service, spec_json,
                 started_ns, ended_ns, outcome, sustainable_rate, first_failing_rate)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            )?
            .execute(params![
                r.search_id,
                r.service,
                r.spec_json,
                r.started_ns,
                r.ended_ns,
                r.outcome,
                r.sustainable_rate,
                r.first_failing_rate
            ])?;
        }
        Msg::CapacityStep(r) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO capacity_steps (search_id, step, run_id, phase,
                 target_rate, achieved_rate, latency_p99_ms, ttft_p99_ms, error_rate, passed,
                 reason) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
            )?
            .execute(params![
                r.search_id,
                r.step,
                r.run_id,
                r.phase.as_str(),
                r.target_rate,
                r.achieved_rate,
                r.latency_p99_ms,
                r.ttft_p99_ms,
                r.error_rate,
                r.passed,
                r.reason
            ])?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::read::{ensure_request_index, open_sqlite_read_only};

    fn row(run_id: &Arc<str>, worker: u32, seq: u64) -> RequestRow {
        RequestRow {
            run_id: run_id.clone(),
            worker,
            seq,
            op: "get",
            scheduled_ns: seq as i64,
            sent_ns: seq as i64,
            first_byte_ns: None,
            done_ns: seq as i64 + 1,
            error_class: None,
            http_status: Some(200),
            size_bytes: 0,
            bytes_sent: 1,
            bytes_received: 2,
            warmup: false,
            input_tokens: None,
            output_tokens: None,
            tokens_from_server: None,
            itl_us: None,
        }
    }

    fn new_run(run_id: &str) -> NewRun {
        NewRun {
            run_id: run_id.into(),
            campaign: "c".into(),
            service: "s".into(),
            service_kind: crate::recipe::ServiceKind::Http,
            status: crate::model::RunStatus::Running,
            started_ns: 0,
            arrival: "constant",
            clients: 3,
            target_rate: Some(1.0),
            duration_s: 1.0,
            warmup_s: 0.0,
            seed: 1,
            sweep_param: None,
            sweep_value: None,
            recipe_json: "{}".into(),
            recipe_sha256: "x".into(),
            host: "h".into(),
            tool_version: "0".into(),
            git_commit: None,
            slurm_job_id: None,
            slurm_array_task: None,
        }
    }

    fn has_index(path: &Path) -> bool {
        open_sqlite_read_only(path)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'requests_run'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            > 0
    }

    fn count(path: &Path) -> (i64, i64) {
        open_sqlite_read_only(path)
            .unwrap()
            .query_row(
                "SELECT count(*), count(DISTINCT worker * 1000000 + seq) FROM requests",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }

    /// Rows pushed into a sink from several threads (more than one multi-row statement, plus
    /// a remainder) are all committed by a flush, each once; the index is absent while the
    /// writer runs and built when it stops (in a file of two runs).
    #[test]
    fn sink_rows_all_committed_and_index_built_at_close() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.db");
        let store = Store::open(&p).unwrap();
        let h = store.handle();
        let run_id: Arc<str> = "run1".into();
        h.create_run_sync(new_run("run1")).unwrap();
        h.create_run_sync(new_run("run2")).unwrap();
        let sink = h.request_sink(&run_id, 3);
        let per_thread = 1000u64;
        std::thread::scope(|s| {
            for w in 0..3u32 {
                let sink = &sink;
                let run_id = &run_id;
                s.spawn(move || {
                    for i in 0..per_thread {
                        sink.push(w as usize, row(run_id, w, i));
                    }
                });
            }
        });
        h.flush_sync().unwrap();
        // Committed, in the request log while the run is on.
        assert_eq!(logged(&p), 3000);
        assert_eq!(count(&p), (0, 0));
        assert!(!has_index(&p), "the index is built when the writer stops");
        // Rows pushed after the flush are kept by close (SIGTERM path).
        for i in 0..(ROWS_PER_INSERT as u64 + 5) {
            sink.push(1, row(&run_id, 7, i));
        }
        drop(sink);
        let stats = store.close().unwrap();
        assert_eq!(stats.requests, 3000 + ROWS_PER_INSERT as u64 + 5);
        assert_eq!(count(&p), (3000 + ROWS_PER_INSERT as i64 + 5, 3000 + 69));
        assert_eq!(logged(&p), 0);
        assert!(has_index(&p));
    }

    /// Rows in the request log of the file.
    fn logged(path: &Path) -> i64 {
        open_sqlite_read_only(path)
            .unwrap()
            .query_row("SELECT coalesce(sum(rows), 0) FROM request_log", [], |r| {
                r.get(0)
            })
            .unwrap()
    }

    /// A run's logged rows move into `requests` when the run finishes, each row once with
    /// every column; another run's rows stay in the log until it finishes too.
    #[test]
    fn finishing_a_run_moves_its_logged_rows_into_requests() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.db");
        let store = Store::open(&p).unwrap();
        let h = store.handle();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        h.create_run_sync(new_run("a")).unwrap();
        h.create_run_sync(new_run("b")).unwrap();
        let (sa, sb) = (h.request_sink(&a, 2), h.request_sink(&b, 1));
        for i in 0..500u64 {
            let mut r = row(&a, (i % 2) as u32, i);
            if i % 7 == 0 {
                r.error_class = Some(crate::model::ErrorClass::Timeout);
                r.first_byte_ns = None;
            }
            sa.push((i % 2) as usize, r);
            sb.push(0, row(&b, 0, i));
        }
        h.flush_sync().unwrap();
        assert_eq!(logged(&p), 1000);
        h.finish_run_sync(finish("a")).unwrap();
        assert_eq!(logged(&p), 500, "b is still running");
        let c = open_sqlite_read_only(&p).unwrap();
        let (n, errors, timeouts): (i64, i64, i64) = c
            .query_row(
                "SELECT count(*), sum(1 - ok), sum(error_class = 'timeout') FROM requests \
                 WHERE run_id = 'a'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((n, errors, timeouts), (500, 72, 72));
        drop((sa, sb));
        store.close().unwrap();
        assert_eq!(logged(&p), 0);
        assert_eq!(count(&p).0, 1000);
    }

    fn finish(run_id: &str) -> FinishRun {
        FinishRun {
            run_id: run_id.into(),
            status: crate::store::RunStatus::Success,
            failure_stage: None,
            failure_message: None,
            stop_reason: Some("duration".into()),
            measure_start_ns: Some(0),
            ended_ns: 1,
            cpu_user_s: None,
            cpu_system_s: None,
        }
    }

    /// A file of one run gets no index: its rows are read with a sequential scan. Every row
    /// is there, LLM columns included, whichever insert statement (lean or full) wrote it.
    #[test]
    fn one_run_file_has_no_index_and_keeps_every_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("one.db");
        let store = Store::open(&p).unwrap();
        let h = store.handle();
        h.create_run_sync(new_run("one")).unwrap();
        let run_id: Arc<str> = "one".into();
        let sink = h.request_sink(&run_id, 2);
        for i in 0..(ROWS_PER_INSERT as u64 + 3) {
            sink.push(0, row(&run_id, 0, i));
            let mut llm = row(&run_id, 1, i);
            llm.first_byte_ns = Some(i as i64);
            llm.input_tokens = Some(3);
            llm.output_tokens = Some(i);
            llm.tokens_from_server = Some(true);
            llm.itl_us = Some(vec![1, 0, 0, 0]);
            llm.error_class = (i % 2 == 1).then_some(crate::model::ErrorClass::Timeout);
            sink.push(1, llm);
        }
        drop(sink);
        store.close().unwrap();
        assert!(!has_index(&p));
        assert!(
            !ensure_request_index(&p),
            "a one-run file is read without it"
        );
        let conn = open_sqlite_read_only(&p).unwrap();
        let q = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        let n = ROWS_PER_INSERT as i64 + 3;
        assert_eq!(
            q("SELECT count(*) FROM requests WHERE run_id = 'one'"),
            2 * n
        );
        assert_eq!(
            q(
                "SELECT count(*) FROM requests WHERE worker = 0 AND input_tokens IS NULL \
               AND output_tokens IS NULL AND tokens_from_server IS NULL AND itl_us IS NULL \
               AND first_byte_ns IS NULL AND ok = 1 AND error_class IS NULL \
               AND http_status = 200 AND bytes_sent = 1 AND bytes_received = 2 AND warmup = 0 \
               AND op = 'get' AND done_ns = seq + 1"
            ),
            n
        );
        assert_eq!(
            q(
                "SELECT count(*) FROM requests WHERE worker = 1 AND input_tokens = 3 \
               AND output_tokens = seq AND tokens_from_server = 1 AND itl_us = x'01000000' \
               AND first_byte_ns = seq AND ok = (error_class IS NULL)"
            ),
            n
        );
        assert_eq!(
            q("SELECT count(*) FROM requests WHERE error_class = 'timeout'"),
            n / 2
        );
    }

    /// A file of several runs whose writer never stopped (SIGKILL) lacks the index; a reader
    /// builds it.
    #[test]
    fn reader_builds_a_missing_index() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.db");
        let store = Store::open(&p).unwrap();
        let h = store.handle();
        h.create_run_sync(new_run("k")).unwrap();
        h.create_run_sync(new_run("k2")).unwrap();
        let run_id: Arc<str> = "k".into();
        h.request(row(&run_id, 0, 1));
        h.flush_sync().unwrap();
        assert!(!has_index(&p));
        assert!(ensure_request_index(&p));
        assert!(has_index(&p));
        drop(store);
    }
}
