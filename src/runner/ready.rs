//! Readiness probes: does a service really answer its health endpoint? Used by
//! `factorybench ready` inside batch scripts between starting a service and measuring it.
//!
//! Each kind is probed with its real, documented health request: the [`Health`] check of its
//! entry in [`crate::kinds`] (or of its vector backend's). An HTTP check `GET`s the kind's path
//! under the endpoint; PostgreSQL is a TCP connect plus a real login with the client's
//! credentials (an authentication error is not ready when the probe has the password the client
//! will use, only when it has none; "starting up" never is); S3 is any HTTP response from the
//! endpoint, HTTP the configured URL answering, file storage the base path existing or being
//! creatable.

use crate::kinds::{server_of, Health};
use crate::recipe::{Secret, Service, Workload};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to ask, and what counts as ready.
#[derive(Debug, Clone)]
pub enum Probe {
    /// `GET url` answers 2xx.
    HttpOk { url: String, bearer: Option<String> },
    /// `GET url` gets any HTTP response (the server speaks HTTP).
    HttpAny { url: String },
    /// A PostgreSQL server completes the startup handshake up to authentication.
    Postgres {
        host: String,
        port: u16,
        user: String,
        database: String,
        password: Option<String>,
    },
    /// The directory exists or can be created.
    Path { path: PathBuf },
    /// Nothing to wait for (an in-process backend such as Faiss).
    Nothing,
}

fn join(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

/// A secret's value for the probe: resolved now, or (generated / file secrets on the node) from
/// the environment variable the batch script exports under `name`.
fn secret_value(name: &str, s: &Secret) -> Option<String> {
    s.resolve().ok().or_else(|| std::env::var(name).ok())
}

impl Probe {
    /// The probe of `svc`: its kind's (or vector backend's) [`Health`] check against the
    /// endpoint resolved at plan time.
    pub fn for_service(svc: &Service) -> Probe {
        let base = svc.endpoint.url.as_deref();
        match (server_of(svc.kind, &svc.workload).health, &svc.workload) {
            (Health::Nothing, _) => Probe::Nothing,
            (Health::HttpOk { path, bearer }, w) => match base {
                Some(b) => Probe::HttpOk {
                    url: join(b, path),
                    // The client's API key (`FB_API_KEY`), when the check sends one.
                    bearer: w
                        .secrets()
                        .into_iter()
                        .find(|(name, _)| bearer && *name == "FB_API_KEY")
                        .and_then(|(name, k)| secret_value(name, k)),
                },
                None => Probe::Nothing,
            },
            (Health::Postgres, Workload::Database(d)) => Probe::Postgres {
                host: svc.endpoint.host.clone(),
                port: svc.endpoint.port.unwrap_or_default(),
                user: d.user.clone(),
                database: d.database.clone(),
                password: d
                    .password
                    .as_ref()
                    .and_then(|p| secret_value("FB_DB_PASSWORD", p)),
            },
            (Health::HttpAny, Workload::S3(s)) => Probe::HttpAny {
                url: s.endpoint_url.clone(),
            },
            (Health::HttpAny, Workload::Http(h)) => {
                let url = if h.url.contains("://") {
                    h.url.clone()
                } else {
                    match base {
                        Some(b) if h.url.starts_with('/') => join(b, &h.url),
                        Some(b) => join(b, &format!("/{}", h.url)),
                        None => h.url.clone(),
                    }
                };
                Probe::HttpAny { url }
            }
            (Health::Path, Workload::FileStorage(f)) => Probe::Path {
                path: f.base_path.clone(),
            },
            // A check that does not fit its workload (no entry of `kinds` pairs them): nothing
            // to ask. Every `Health` is named, so a new check must be placed here.
            (Health::Postgres | Health::HttpAny | Health::Path, _) => Probe::Nothing,
        }
    }

    /// One line for people: what is being asked.
    /// The TCP port the probe reaches (when it reaches one).
    pub fn port(&self) -> Option<u16> {
        match self {
            Probe::HttpOk { url, .. } | Probe::HttpAny { url } => {
                crate::recipe::endpoint::port_of_url(url)
            }
            Probe::Postgres { port, .. } => Some(*port),
            Probe::Path { .. } | Probe::Nothing => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Probe::HttpOk { url, .. } => format!("GET {url} (2xx)"),
            Probe::HttpAny { url } => format!("GET {url} (any HTTP response)"),
            Probe::Postgres { host, port, .. } => format!("PostgreSQL startup at {host}:{port}"),
            Probe::Path { path } => format!("directory {}", path.display()),
            Probe::Nothing => "nothing (no server)".into(),
        }
    }

    /// One attempt, bounded by `timeout`. `Err` says why the service is not ready yet.
    pub async fn attempt(&self, client: &reqwest::Client, timeout: Duration) -> Result<(), String> {
        match self {
            Probe::Nothing => Ok(()),
            Probe::Path { path } => {
                if path.is_dir() {
                    return Ok(());
                }
                std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))
            }
            Probe::HttpOk { url, bearer } => {
                let mut req = client.get(url).timeout(timeout);
                if let Some(b) = bearer {
                    req = req.bearer_auth(b);
                }
                let resp = req.send().await.map_err(|e| http_error(&e))?;
                let status = resp.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP {status}"))
                }
            }
            Probe::HttpAny { url } => client
                .get(url)
                .timeout(timeout)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| http_error(&e)),
            Probe::Postgres {
                host,
                port,
                user,
                database,
                password,
            } => {
                let attempt = async {
                    // First the socket, for a clear "connection refused".
                    let addr = format!("{host}:{port}");
                    tokio::net::TcpStream::connect(&addr)
                        .await
                        .map_err(|e| format!("{addr}: {e}"))?;
                    let mut cfg = tokio_postgres::Config::new();
                    cfg.host(host)
                        .port(*port)
                        .user(user)
                        .dbname(database)
                        .application_name("factorybench-ready")
                        .connect_timeout(timeout)
                        // A wrong or absent password must still reach the server, whose
                        // authentication error proves it answers.
                        .password(
                            password
                                .as_deref()
                                .unwrap_or("factorybench-readiness-probe"),
                        );
                    match cfg.connect(tokio_postgres::NoTls).await {
                        Ok((client, conn)) => {
                            drop(client);
                            let _ = conn.await;
                            Ok(())
                        }
                        Err(e) => match e.as_db_error() {
                            // 57P03 cannot_connect_now: "the database system is starting up".
                            Some(db) if db.code().code() == "57P03" => {
                                Err(format!("server not ready: {}", db.message()))
                            }
                            // With the credentials the client will use, an authentication
                            // or "no such database/role" error is not ready: the job would
                            // fail at setup. Without credentials any answer proves the server.
                            Some(db)
                                if password.is_some() && is_credential_error(db.code().code()) =>
                            {
                                Err(format!(
                                    "PostgreSQL answers but refuses the benchmark's credentials \
                                     (user `{user}`, database `{database}`): {} [{}]",
                                    db.message(),
                                    db.code().code()
                                ))
                            }
                            Some(_) => Ok(()),
                            None => Err(format!("PostgreSQL {addr}: {e}")),
                        },
                    }
                };
                tokio::time::timeout(timeout, attempt)
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
            }
        }
    }
}

/// SQLSTATEs that mean the server runs but the client's user, password or database is wrong:
/// 28000 invalid authorization, 28P01 invalid password, 3D000 no such database.
fn is_credential_error(code: &str) -> bool {
    matches!(code, "28000" | "28P01" | "3D000")
}

fn http_error(e: &reqwest::Error) -> String {
    crate::runner::clients::util::reqwest_error_text(e)
}

/// Whether process `pid` still runs (a zombie counts as exited).
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid_i) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for existence and permission.
    if unsafe { libc::kill(pid_i, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: "Z" is a zombie.
        Ok(stat) => match stat.rsplit_once(')') {
            Some((_, rest)) => !rest.trim_start().starts_with('Z'),
            None => true,
        },
        Err(_) => true,
    }
}

/// Poll `probe` until it succeeds or `budget` is spent, sleeping `interval` between attempts.
/// Returns the time it took, or the last error. `progress` gets a line about every 5 s. With
/// `watch_pid`, gives up as soon as that process (the service) has exited.
pub async fn wait_ready(
    probe: &Probe,
    budget: Duration,
    interval: Duration,
    watch_pid: Option<u32>,
    progress: &mut dyn FnMut(String),
) -> Result<Duration, String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut last_report = start;
    let mut attempts = 0u64;
    progress(format!(
        "ready: waiting up to {:.0} s for {}",
        budget.as_secs_f64(),
        probe.describe()
    ));
    loop {
        attempts += 1;
        let remaining = budget.saturating_sub(start.elapsed());
        let per_attempt = remaining.clamp(Duration::from_millis(200), Duration::from_secs(5));
        let err = match probe.attempt(&client, per_attempt).await {
            Ok(()) => return Ok(start.elapsed()),
            Err(e) => e,
        };
        let elapsed = start.elapsed();
        if let Some(pid) = watch_pid.filter(|p| !process_alive(*p)) {
            return Err(format!(
                "the service process {pid} has exited ({err}); see its log"
            ));
        }
        if elapsed >= budget {
            return Err(format!("{err} ({attempts} attempts)"));
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            progress(format!(
                "ready: not yet after {:.0} s of {:.0} s: {err}",
                elapsed.as_secs_f64(),
                budget.as_secs_f64()
            ));
        }
        tokio::time::sleep(interval.min(budget - elapsed)).await;
    }
}
