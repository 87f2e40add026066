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

use super::util::{error_chain, resolve_secret};
use crate::recipe::{DatabaseWorkload, DbOp, Service};
use crate::runner::client::{
    BoxFuture, Client, ClientError, ErrorClass, Outcome, RequestCtx, RunMetric, Worker,
};
use crate::runner::rng::Rng;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client as PgClient, NoTls, Statement};

/// Length of each generated `payload` value, characters.
pub const PAYLOAD_CHARS: usize = 100;
const PAYLOAD_POOL: usize = 256;

pub struct PostgresClient {
    wl: DatabaseWorkload,
    seed: u64,
    shared: Arc<Shared>,
}

struct Shared {
    /// Highest id that may exist (seed rows + inserted rows).
    max_id: AtomicI64,
    payloads: Vec<String>,
    /// How to open a session (workers reopen theirs when the server ends it).
    config: tokio_postgres::Config,
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
        Ok(PostgresClient {
            wl: wl.clone(),
            seed: svc.load.seed,
            shared: Arc::new(Shared {
                max_id: AtomicI64::new(wl.seed_rows as i64),
                payloads,
                config: config(
                    wl,
                    &svc.endpoint.host,
                    svc.endpoint.port.unwrap_or(5432),
                    password.as_deref(),
                    svc.load.timeout_s,
                ),
            }),
        })
    }

    async fn open(&self, stage: &'static str) -> Result<PgClient, ClientError> {
        open(&self.shared.config, &self.wl, stage).await
    }

    fn table(&self) -> &str {
        // Validated as a plain identifier by the recipe decoder; quoted anyway.
        &self.wl.table_name
    }
}

fn config(
    wl: &DatabaseWorkload,
    host: &str,
    port: u16,
    password: Option<&str>,
    timeout_s: f64,
) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(host)
        .port(port)
        .dbname(&wl.database)
        .user(&wl.user)
        .application_name("factorybench")
        .connect_timeout(Duration::from_secs_f64(timeout_s.clamp(0.1, 30.0)));
    if let Some(p) = password {
        c.password(p);
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

/// A worker's session with its four statements prepared.
struct Session {
    c: PgClient,
    select: Statement,
    insert: Statement,
    update: Statement,
    delete: Statement,
}

async fn open_session(
    config: &tokio_postgres::Config,
    wl: &DatabaseWorkload,
    stage: &'static str,
) -> Result<Session, ClientError> {
    let c = open(config, wl, stage).await?;
    let t = &wl.table_name;
    let err = |e: tokio_postgres::Error| setup_error(stage, wl, config, &e);
    let select = c
        .prepare(&format!(
            "SELECT id, k, payload, updated_at FROM \"{t}\" WHERE id = $1"
        ))
        .await
        .map_err(err)?;
    let insert = c
        .prepare(&if wl.batch_size == 1 {
            format!("INSERT INTO \"{t}\" (k, payload) VALUES ($1, $2)")
        } else {
            format!("INSERT INTO \"{t}\" (k, payload) SELECT * FROM unnest($1::int4[], $2::text[])")
        })
        .await
        .map_err(err)?;
    let update = c
        .prepare(&format!(
            "UPDATE \"{t}\" SET k = $2, payload = $3, updated_at = now() WHERE id = $1"
        ))
        .await
        .map_err(err)?;
    let delete = c
        .prepare(&format!("DELETE FROM \"{t}\" WHERE id = $1"))
        .await
        .map_err(err)?;
    Ok(Session {
        c,
        select,
        insert,
        update,
        delete,
    })
}

/// The classified error of a connection or setup statement.
fn setup_error(
    stage: &'static str,
    wl: &DatabaseWorkload,
    cfg: &tokio_postgres::Config,
    e: &tokio_postgres::Error,
) -> ClientError {
    let class = class_of(e);
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => String::new(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let target = format!("postgresql://{}@{}:{}/{}", wl.user, host, port, wl.database);
    let msg = match e.as_db_error() {
        Some(db) if class == ErrorClass::Auth => format!(
            "authentication failed for {target}: {} (check user/password)",
            db.message()
        ),
        Some(db) if db.code() == &SqlState::INVALID_CATALOG_NAME => format!(
            "database `{}` does not exist on {}:{}: {}",
            wl.database,
            host,
            port,
            db.message()
        ),
        Some(db) => format!("{target}: {} ({})", db.message(), db.code().code()),
        None if class == ErrorClass::Connect => {
            format!("cannot connect to {target}: {}", error_chain(e))
        }
        None => format!("{target}: {}", error_chain(e)),
    };
    ClientError::new(class, stage, msg)
}

/// Classify a tokio-postgres error.
pub fn class_of(e: &tokio_postgres::Error) -> ErrorClass {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        return if code == &SqlState::INVALID_PASSWORD
            || code == &SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            || code == &SqlState::INSUFFICIENT_PRIVILEGE
        {
            ErrorClass::Auth
        } else if code == &SqlState::QUERY_CANCELED {
            ErrorClass::Timeout
        } else if code.code().starts_with("08") || code.code().starts_with("57P") {
            // connection exceptions, admin shutdown / crash shutdown
            ErrorClass::Io
        } else {
            ErrorClass::Other
        };
    }
    let chain = error_chain(e);
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::AddrNotAvailable
                | std::io::ErrorKind::NotFound => ErrorClass::Connect,
                std::io::ErrorKind::TimedOut => ErrorClass::Timeout,
                _ => ErrorClass::Io,
            };
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

impl Client for PostgresClient {
    fn setup(&self) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(async move {
            let c = self.open("setup").await?;
            let t = self.table();
            let err =
                |e: tokio_postgres::Error| setup_error("setup", &self.wl, &self.shared.config, &e);
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
            if self.wl.seed_rows > 0 {
                c.execute(
                    &format!(
                        "INSERT INTO \"{t}\" (k, payload) SELECT (g * 7919) % 1000000, \
                         rpad(md5(g::text), {PAYLOAD_CHARS}, md5((g + 1)::text)) \
                         FROM generate_series(1::bigint, $1::bigint) AS g"
                    ),
                    &[&(self.wl.seed_rows as i64)],
                )
                .await
                .map_err(err)?;
            }
            c.batch_execute(&format!("ANALYZE \"{t}\""))
                .await
                .map_err(err)?;
            self.shared
                .max_id
                .store(self.wl.seed_rows as i64, Ordering::Relaxed);
            Ok(())
        })
    }

    fn connect(&self, worker: u32) -> BoxFuture<'_, Result<Box<dyn Worker>, ClientError>> {
        Box::pin(async move {
            let s = open_session(&self.shared.config, &self.wl, "connect").await?;
            Ok(Box::new(PgWorker {
                s,
                wl: self.wl.clone(),
                shared: self.shared.clone(),
                _seed: self.seed ^ worker as u64,
            }) as Box<dyn Worker>)
        })
    }

    fn teardown(&self) -> BoxFuture<'_, Result<Vec<RunMetric>, ClientError>> {
        Box::pin(async move {
            if !self.wl.keep_table {
                let c = self.open("teardown").await?;
                c.batch_execute(&format!("DROP TABLE IF EXISTS \"{}\"", self.table()))
                    .await
                    .map_err(|e| setup_error("teardown", &self.wl, &self.shared.config, &e))?;
            }
            Ok(Vec::new())
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
    s: Session,
    wl: DatabaseWorkload,
    shared: Arc<Shared>,
    _seed: u64,
}

impl PgWorker {
    fn pick_id(&self, rng: &mut Rng) -> i64 {
        let max = self.shared.max_id.load(Ordering::Relaxed).max(1);
        1 + rng.below(max as u64) as i64
    }

    fn payload(&self, rng: &mut Rng) -> &str {
        &self.shared.payloads[rng.below(self.shared.payloads.len() as u64) as usize]
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
            let op = self.wl.mix.pick(ctx.rng.next_f64());
            let name = op_name(op);
            if self.s.c.is_closed() {
                // The server ended this session (idle_session_timeout, a pooler's idle
                // timeout, pg_terminate_backend, a restart): open a new one inside the
                // timing, as a connection pool does, rather than failing every later request.
                match open_session(&self.shared.config, &self.wl, "reconnect").await {
                    Ok(s) => self.s = s,
                    Err(e) => return Outcome::err(name, e.class, e.message),
                }
            }
            let res: Result<u64, tokio_postgres::Error> = match op {
                DbOp::Select => {
                    let id = self.pick_id(ctx.rng);
                    match self.s.c.query(&self.s.select, &[&id]).await {
                        Ok(rows) => {
                            ctx.mark_first_byte();
                            Ok(rows
                                .iter()
                                .map(|r| r.get::<_, &str>(2).len() as u64 + 24)
                                .sum())
                        }
                        Err(e) => Err(e),
                    }
                }
                DbOp::Insert => {
                    let n = self.wl.batch_size as usize;
                    let mut ks = Vec::with_capacity(n);
                    let mut ps = Vec::with_capacity(n);
                    for _ in 0..n {
                        ks.push(ctx.rng.below(1_000_000) as i32);
                        ps.push(self.payload(ctx.rng));
                    }
                    let r = if n == 1 {
                        self.s.c.execute(&self.s.insert, &[&ks[0], &ps[0]]).await
                    } else {
                        self.s.c.execute(&self.s.insert, &[&ks, &ps]).await
                    };
                    if let Ok(rows) = r {
                        self.shared.max_id.fetch_add(rows as i64, Ordering::Relaxed);
                    }
                    r.map(|_| 0)
                }
                DbOp::Update => {
                    let id = self.pick_id(ctx.rng);
                    let k = ctx.rng.below(1_000_000) as i32;
                    let p = self.payload(ctx.rng);
                    self.s
                        .c
                        .execute(&self.s.update, &[&id, &k, &p])
                        .await
                        .map(|_| 0)
                }
                DbOp::Delete => {
                    let id = self.pick_id(ctx.rng);
                    self.s.c.execute(&self.s.delete, &[&id]).await.map(|_| 0)
                }
            };
            match res {
                Ok(received) => {
                    let sent = if op == DbOp::Insert {
                        (self.wl.batch_size as usize * (PAYLOAD_CHARS + 4)) as u64
                    } else {
                        0
                    };
                    Outcome {
                        op: name,
                        size_bytes: sent.max(received),
                        bytes_sent: sent,
                        bytes_received: received,
                        ..Default::default()
                    }
                }
                Err(e) => Outcome::err(name, class_of(&e), error_chain(&e)),
            }
        })
    }
}
