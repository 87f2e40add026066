//! PostgreSQL client (`service_type: database`, `backend: postgresql`).
//!
//! # Schema
//! `setup` creates `table_name` (or reuses it when it has exactly this shape, emptying it):
//! ```sql
//! CREATE TABLE <table_name> (
//!     id         bigserial PRIMARY KEY,
//!     k          integer   NOT NULL,
//!     payload    text      NOT NULL,   -- 100 characters
//!     updated_at timestamptz NOT NULL DEFAULT now()
//! )
//! ```
//! and seeds it with `seed_rows` rows (ids 1..=seed_rows, one server-side `generate_series`
//! insert, then `ANALYZE`). `teardown` drops it unless `keep_table: true`.
//!
//! # Statements (prepared once per connection; each request is one autocommit transaction)
//! - select: `SELECT id, k, payload, updated_at FROM t WHERE id = $1`
//! - insert: `INSERT INTO t (k, payload) SELECT * FROM unnest($1::int4[], $2::text[])` with
//!   `batch_size` rows (one multi-row statement); with `batch_size: 1`, the plain
//!   `INSERT INTO t (k, payload) VALUES ($1, $2)` (pgbench's form: no arrays for the server to
//!   build and unpack for one row)
//! - update: `UPDATE t SET k = $2, payload = $3, updated_at = now() WHERE id = $1`
//! - delete: `DELETE FROM t WHERE id = $1`
//!
//! Ids are drawn uniformly from `1..=max_id`, where `max_id` starts at `seed_rows` and grows
//! with every committed insert (like pgbench's `random(1, :scale)`); a select/update/delete of
//! an id deleted earlier touches zero rows and still counts as one transaction. Payloads are
//! generated in `setup`, outside the timed region.
//!
//! # Two protocol paths
//! Setup, teardown and the server facts use tokio-postgres. The timed requests go through
//! [`wire`]: each client's own session, spoken directly (pgbench's way with libpq). An
//! unpaced closed loop runs on [`driver`] threads, each with its clients' sessions in one
//! epoll set (`FB_PG_CLIENT=tasks` keeps the engine's tasks); other loops use async workers
//! ([`PgWorker`]). Both draw their requests and build their outcomes through [`Shared`].

mod driver;
mod wire;

use super::util::{error_chain, resolve_secret};
use crate::recipe::{DatabaseWorkload, DbOp, Service};
use crate::runner::client::{
    BoxFuture, Client, ClientError, ClosedDriver, ErrorClass, Outcome, RequestCtx, RunMetric,
    Worker,
};
use crate::runner::rng::Rng;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client as PgClient, NoTls};
use wire::Param;

/// Length of each generated `payload` value, characters.
pub const PAYLOAD_CHARS: usize = 100;
const PAYLOAD_POOL: usize = 256;

pub struct PostgresClient {
    shared: Arc<Shared>,
}

struct Shared {
    wl: DatabaseWorkload,
    /// Highest id that may exist (seed rows + inserted rows).
    max_id: AtomicI64,
    payloads: Vec<String>,
    /// How setup, teardown and the server facts open a session (tokio-postgres).
    config: tokio_postgres::Config,
    /// How workers open theirs (and reopen it when the server ends it).
    wire: wire::Params,
    /// What every worker's session prepares.
    statements: Statements,
}

impl PostgresClient {
    pub fn new(svc: &Service, wl: &DatabaseWorkload) -> Result<Self, ClientError> {
        let password = match &wl.password {
            Some(s) => Some(resolve_secret(svc, s, "password")?),
            None => std::env::var("FB_DB_PASSWORD").ok(),
        };
        let mut rng = Rng::for_stream(svc.load.seed, 0x5047);
        let payloads = (0..PAYLOAD_POOL)
            .map(|_| {
                (0..PAYLOAD_CHARS)
                    .map(|_| (b'a' + rng.below(26) as u8) as char)
                    .collect()
            })
            .collect();
        let wire = wire::Params {
            host: svc.endpoint.host.clone(),
            port: svc.endpoint.port.unwrap_or(5432),
            user: wl.user.clone(),
            database: wl.database.clone(),
            password,
            // The request timeout, within 0.1–30 s.
            connect_timeout: Duration::from_secs_f64(svc.load.timeout_s.clamp(0.1, 30.0)),
        };
        Ok(PostgresClient {
            shared: Arc::new(Shared {
                wl: wl.clone(),
                max_id: AtomicI64::new(wl.seed_rows as i64),
                payloads,
                config: config(&wire),
                statements: Statements::new(wl),
                wire,
            }),
        })
    }

    async fn open(&self, stage: &'static str) -> Result<PgClient, ClientError> {
        open(&self.shared.config, &self.shared.wl, stage).await
    }

    fn table(&self) -> &str {
        // Validated as a plain identifier by the recipe decoder; quoted anyway.
        &self.shared.wl.table_name
    }
}

/// tokio-postgres's configuration of the same session as the wire path's.
fn config(p: &wire::Params) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(&p.host)
        .port(p.port)
        .dbname(&p.database)
        .user(&p.user)
        .application_name("factorybench")
        .connect_timeout(p.connect_timeout);
    if let Some(pw) = &p.password {
        c.password(pw);
    }
    c
}

async fn open(
    config: &tokio_postgres::Config,
    wl: &DatabaseWorkload,
    stage: &'static str,
) -> Result<PgClient, ClientError> {
    let (client, conn) = config
        .connect(NoTls)
        .await
        .map_err(|e| setup_error(stage, wl, config, &e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// The worker's four prepared statements.
const SELECT: &str = "fb_select";
const INSERT: &str = "fb_insert";
const UPDATE: &str = "fb_update";
const DELETE: &str = "fb_delete";

/// The four statements' text and parameter types, formatted once for every session.
struct Statements {
    select: String,
    insert: String,
    insert_types: &'static [u32],
    update: String,
    delete: String,
}

impl Statements {
    fn new(wl: &DatabaseWorkload) -> Statements {
        let t = &wl.table_name;
        let (insert, insert_types): (String, &[u32]) = if wl.batch_size == 1 {
            (
                format!("INSERT INTO \"{t}\" (k, payload) VALUES ($1, $2)"),
                &[wire::INT4, wire::TEXT],
            )
        } else {
            (
                format!(
                    "INSERT INTO \"{t}\" (k, payload) SELECT * FROM unnest($1::int4[], $2::text[])"
                ),
                &[wire::INT4_ARRAY, wire::TEXT_ARRAY],
            )
        };
        Statements {
            select: format!("SELECT id, k, payload, updated_at FROM \"{t}\" WHERE id = $1"),
            insert,
            insert_types,
            update: format!(
                "UPDATE \"{t}\" SET k = $2, payload = $3, updated_at = now() WHERE id = $1"
            ),
            delete: format!("DELETE FROM \"{t}\" WHERE id = $1"),
        }
    }
}

/// A worker's session (the wire path) with its four statements prepared.
async fn open_session(shared: &Shared, stage: &'static str) -> Result<wire::Conn, ClientError> {
    let (p, wl) = (&shared.wire, &shared.wl);
    let err = |e: wire::WireError| {
        describe_error(stage, wl, &p.host, p.port, e.class(), e.db(), e.to_string())
    };
    let mut c = wire::Conn::connect(p).await.map_err(err)?;
    let s = &shared.statements;
    c.prepare(&[
        (SELECT, &s.select, &[wire::INT8]),
        (INSERT, &s.insert, s.insert_types),
        (UPDATE, &s.update, &[wire::INT8, wire::INT4, wire::TEXT]),
        (DELETE, &s.delete, &[wire::INT8]),
    ])
    .await
    .map_err(err)?;
    Ok(c)
}

/// The classified error of a connection or setup statement (tokio-postgres).
fn setup_error(
    stage: &'static str,
    wl: &DatabaseWorkload,
    cfg: &tokio_postgres::Config,
    e: &tokio_postgres::Error,
) -> ClientError {
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => String::new(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let db = e.as_db_error().map(|d| (d.code().code(), d.message()));
    describe_error(stage, wl, &host, port, class_of(e), db, error_chain(e))
}

/// The message of a connection or setup error, from either path: `db` is the server's
/// SQLSTATE and message, `chain` the error's whole text.
fn describe_error(
    stage: &'static str,
    wl: &DatabaseWorkload,
    host: &str,
    port: u16,
    class: ErrorClass,
    db: Option<(&str, &str)>,
    chain: String,
) -> ClientError {
    let target = format!("postgresql://{}@{}:{}/{}", wl.user, host, port, wl.database);
    let msg = match db {
        Some((_, message)) if class == ErrorClass::Auth => {
            format!("authentication failed for {target}: {message} (check user/password)")
        }
        Some((code, message)) if code == SqlState::INVALID_CATALOG_NAME.code() => format!(
            "database `{}` does not exist on {}:{}: {}",
            wl.database, host, port, message
        ),
        Some((code, message)) => format!("{target}: {message} ({code})"),
        None if class == ErrorClass::Connect => format!("cannot connect to {target}: {chain}"),
        None => format!("{target}: {chain}"),
    };
    ClientError::new(class, stage, msg)
}

/// Classify a tokio-postgres error.
pub fn class_of(e: &tokio_postgres::Error) -> ErrorClass {
    if let Some(db) = e.as_db_error() {
        return class_of_sqlstate(db.code().code());
    }
    let chain = error_chain(e);
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return class_of_io(io.kind());
        }
        src = s.source();
    }
    if chain.contains("timeout") || chain.contains("timed out") {
        ErrorClass::Timeout
    } else if e.is_closed() || chain.contains("closed") {
        ErrorClass::Io
    } else if chain.contains("password") || chain.contains("authentication") {
        ErrorClass::Auth
    } else {
        ErrorClass::Protocol
    }
}

/// Classify an I/O error of either path (a missing Unix socket is a refused connection).
fn class_of_io(kind: std::io::ErrorKind) -> ErrorClass {
    use std::io::ErrorKind::*;
    match kind {
        ConnectionRefused | AddrNotAvailable | NotFound => ErrorClass::Connect,
        TimedOut => ErrorClass::Timeout,
        _ => ErrorClass::Io,
    }
}

/// Classify the server's SQLSTATE.
fn class_of_sqlstate(code: &str) -> ErrorClass {
    if code == SqlState::INVALID_PASSWORD.code()
        || code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION.code()
        || code == SqlState::INSUFFICIENT_PRIVILEGE.code()
    {
        ErrorClass::Auth
    } else if code == SqlState::QUERY_CANCELED.code() {
        ErrorClass::Timeout
    } else if code.starts_with("08") || code.starts_with("57P") {
        // connection exceptions, admin shutdown / crash shutdown
        ErrorClass::Io
    } else {
        ErrorClass::Other
    }
}

impl Client for PostgresClient {
    fn setup(&self) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(async move {
            let c = self.open("setup").await?;
            let t = self.table();
            let err = |e: tokio_postgres::Error| {
                setup_error("setup", &self.shared.wl, &self.shared.config, &e)
            };
            let cols: Vec<(String, String)> = c
                .query(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                    &[&t],
                )
                .await
                .map_err(err)?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let expected = [
                ("id", "bigint"),
                ("k", "integer"),
                ("payload", "text"),
                ("updated_at", "timestamp with time zone"),
            ];
            if cols.is_empty() {
                c.batch_execute(&format!(
                    "CREATE TABLE \"{t}\" (id bigserial PRIMARY KEY, k integer NOT NULL, \
                     payload text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
                ))
                .await
                .map_err(err)?;
            } else if cols.len() == expected.len()
                && cols
                    .iter()
                    .zip(expected)
                    .all(|((n, ty), (en, ety))| n == en && ty == ety)
            {
                c.batch_execute(&format!("TRUNCATE \"{t}\" RESTART IDENTITY"))
                    .await
                    .map_err(err)?;
            } else {
                return Err(ClientError::new(
                    ErrorClass::Validation,
                    "setup",
                    format!(
                        "table `{t}` already exists with another shape ({}); factorybench will not touch it: choose another table_name",
                        cols.iter().map(|(n, ty)| format!("{n} {ty}")).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            if self.shared.wl.seed_rows > 0 {
                c.execute(
                    &format!(
                        "INSERT INTO \"{t}\" (k, payload) SELECT (g * 7919) % 1000000, \
                         rpad(md5(g::text), {PAYLOAD_CHARS}, md5((g + 1)::text)) \
                         FROM generate_series(1::bigint, $1::bigint) AS g"
                    ),
                    &[&(self.shared.wl.seed_rows as i64)],
                )
                .await
                .map_err(err)?;
            }
            c.batch_execute(&format!("ANALYZE \"{t}\""))
                .await
                .map_err(err)?;
            self.shared
                .max_id
                .store(self.shared.wl.seed_rows as i64, Ordering::Relaxed);
            Ok(())
        })
    }

    fn connect(&self, _worker: u32) -> BoxFuture<'_, Result<Box<dyn Worker>, ClientError>> {
        Box::pin(async move {
            let conn = open_session(&self.shared, "connect").await?;
            Ok(Box::new(PgWorker {
                conn,
                shared: self.shared.clone(),
                request: Vec::with_capacity(256),
            }) as Box<dyn Worker>)
        })
    }

    fn teardown(&self) -> BoxFuture<'_, Result<Vec<RunMetric>, ClientError>> {
        Box::pin(async move {
            if !self.shared.wl.keep_table {
                let c = self.open("teardown").await?;
                c.batch_execute(&format!("DROP TABLE IF EXISTS \"{}\"", self.table()))
                    .await
                    .map_err(|e| {
                        setup_error("teardown", &self.shared.wl, &self.shared.config, &e)
                    })?;
            }
            Ok(Vec::new())
        })
    }

    /// The epoll driver ([`driver`]), unless `FB_PG_CLIENT=tasks` asks for the engine's
    /// tasks (for comparisons).
    fn closed_driver<'a>(
        &'a self,
        clients: &'a [u32],
    ) -> BoxFuture<'a, Result<Option<Box<dyn ClosedDriver>>, ClientError>> {
        Box::pin(async move {
            if std::env::var("FB_PG_CLIENT").is_ok_and(|v| v == "tasks") {
                return Ok(None);
            }
            let d = driver::PgDriver::open(self.shared.clone(), clients).await?;
            Ok(Some(Box::new(d) as Box<dyn ClosedDriver>))
        })
    }

    fn service_facts(&self) -> BoxFuture<'_, crate::runner::provenance::Facts> {
        Box::pin(async move {
            let mut f = crate::runner::provenance::Facts::new();
            if let Ok(c) = self.open("provenance").await {
                if let Ok(row) = c.query_one("SHOW server_version", &[]).await {
                    if let Ok(v) = row.try_get::<_, String>(0) {
                        f.insert("service.version".into(), v);
                        f.insert("service.product".into(), "PostgreSQL".into());
                    }
                }
            }
            f
        })
    }
}

struct PgWorker {
    conn: wire::Conn,
    shared: Arc<Shared>,
    /// The request being made, encoded (sent once more as it is when its session had ended).
    request: Vec<u8>,
}

impl Shared {
    fn pick_id(&self, rng: &mut Rng) -> i64 {
        let max = self.max_id.load(Ordering::Relaxed).max(1);
        1 + rng.below(max as u64) as i64
    }

    fn payload(&self, rng: &mut Rng) -> &str {
        &self.payloads[rng.below(self.payloads.len() as u64) as usize]
    }

    /// Draw the next request from `rng` (the operation by the mix, then its parameters) and
    /// encode it into `out`.
    fn encode_request(&self, rng: &mut Rng, out: &mut Vec<u8>) -> DbOp {
        let wl = &self.wl;
        let op = wl.mix.pick(rng.next_f64());
        match op {
            DbOp::Select => {
                let id = self.pick_id(rng);
                wire::encode_execute(out, SELECT, &[Param::Int8(id)]);
            }
            DbOp::Insert => {
                let n = wl.batch_size as usize;
                if n == 1 {
                    let k = rng.below(1_000_000) as i32;
                    let p = self.payload(rng);
                    wire::encode_execute(out, INSERT, &[Param::Int4(k), Param::Text(p)]);
                } else {
                    let mut ks = Vec::with_capacity(n);
                    let mut ps = Vec::with_capacity(n);
                    for _ in 0..n {
                        ks.push(rng.below(1_000_000) as i32);
                        ps.push(self.payload(rng));
                    }
                    let params = [Param::Int4Array(&ks), Param::TextArray(&ps)];
                    wire::encode_execute(out, INSERT, &params);
                }
            }
            DbOp::Update => {
                let id = self.pick_id(rng);
                let k = rng.below(1_000_000) as i32;
                let p = self.payload(rng);
                let params = [Param::Int8(id), Param::Int4(k), Param::Text(p)];
                wire::encode_execute(out, UPDATE, &params);
            }
            DbOp::Delete => {
                let id = self.pick_id(rng);
                wire::encode_execute(out, DELETE, &[Param::Int8(id)]);
            }
        }
        op
    }

    /// The outcome of a request of `op` that ended with `r`; a committed insert raises the
    /// highest id.
    fn outcome(&self, op: DbOp, r: Result<wire::Reply, (ErrorClass, String)>) -> Outcome {
        let name = op_name(op);
        let r = match r {
            Ok(r) => r,
            Err((class, message)) => return Outcome::err(name, class, message),
        };
        let (sent, received) = match op {
            DbOp::Select => (0, r.payload_bytes + 24 * r.data_rows),
            DbOp::Insert => {
                self.max_id.fetch_add(r.rows as i64, Ordering::Relaxed);
                let n = self.wl.batch_size as usize;
                ((n * (PAYLOAD_CHARS + 4)) as u64, 0)
            }
            DbOp::Update | DbOp::Delete => (0, 0),
        };
        Outcome {
            op: name,
            size_bytes: sent.max(received),
            bytes_sent: sent,
            bytes_received: received,
            ..Default::default()
        }
    }
}

fn op_name(op: DbOp) -> &'static str {
    match op {
        DbOp::Select => "select",
        DbOp::Insert => "insert",
        DbOp::Update => "update",
        DbOp::Delete => "delete",
    }
}

impl Worker for PgWorker {
    fn request<'a>(&'a mut self, ctx: &'a mut RequestCtx<'_>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let op = self.shared.encode_request(ctx.rng, &mut self.request);
            let r = execute(&mut self.conn, &self.shared, &self.request, ctx).await;
            self.shared.outcome(op, r)
        })
    }
}

/// Run prepared `statement` with `params` on the worker's session, reopening it first when it
/// is unusable (an earlier error left it so, or the server ended it: idle_session_timeout, a
/// pooler's idle timeout, pg_terminate_backend, a restart) inside the timing, as a connection
/// pool does, rather than failing every later request. A request the ended session never ran
/// ([`wire::Conn::ended_before_reply`]) is sent once more on a new one.
async fn execute(
    conn: &mut wire::Conn,
    shared: &Shared,
    request: &[u8],
    ctx: &mut RequestCtx<'_>,
) -> Result<wire::Reply, (ErrorClass, String)> {
    let mut resent = false;
    loop {
        if !conn.usable() {
            *conn = open_session(shared, "reconnect")
                .await
                .map_err(|e| (e.class, e.message))?;
        }
        match conn.execute(request, ctx).await {
            Err(_) if conn.ended_before_reply() && !resent => {
                // The first byte is the resent request's reply, not the FATAL.
                ctx.first_byte_ns = None;
                resent = true;
            }
            r => return r.map_err(|e| (e.class(), e.to_string())),
        }
    }
}
