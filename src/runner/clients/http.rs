//! `http`: a generic HTTP endpoint (method, URL, headers, body, expected status).
//!
//! Plain `http://`: the lean HTTP/1.1 path (`http_lean`: the request serialized once, the
//! response parsed in place, nothing allocated per request; an unpaced closed loop runs on
//! epoll driver threads, `http_driver`, with no task per request; `FB_HTTP_CLIENT=tasks`
//! keeps it on the engine's tasks); `FB_HTTP_CLIENT=hyper` selects hyper instead, as before: one hyper HTTP/1.1 connection per worker, kept alive and reopened when the
//! server closes it (the reopen is inside the timed request). A request that finds its kept
//! connection closed by the server (idle keep-alive timeout) goes out once more on a new
//! connection, as HTTP clients do: when the connection never took it, or when it is idempotent
//! and the close cut it off before any response. `https://`: one reqwest client
//! (rustls) per worker with a one-connection pool. The first byte is the arrival of the
//! response head; the body is read to the end and counted.

pub(crate) use super::http_target::Target;
use super::http_target::{classify_io, status_outcome, PlainClient};
use crate::recipe::{HttpWorkload, Service};
use crate::runner::client::{
    BoxFuture, Client, ClientError, ClosedDriver, ErrorClass, Outcome, RequestCtx, RunMetric,
    Worker,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub struct HttpClient {
    t: Arc<Target>,
    /// How long the driver's connections opened at setup may take (the request timeout, at
    /// least 1 s, as the engine's).
    connect_timeout: std::time::Duration,
}

fn bad(msg: impl Into<String>) -> ClientError {
    ClientError::new(ErrorClass::Other, "setup", msg)
}

fn op_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "HTTP",
    }
}

impl HttpClient {
    pub fn new(svc: &Service, w: &HttpWorkload) -> Result<HttpClient, ClientError> {
        let url = if w.url.contains("://") {
            w.url.clone()
        } else {
            let base = svc.endpoint.url.clone().ok_or_else(|| {
                bad(format!(
                    "url `{}` is a path but the service has no service_url or port",
                    w.url
                ))
            })?;
            format!(
                "{}/{}",
                base.trim_end_matches('/'),
                w.url.trim_start_matches('/')
            )
        };
        // Error messages quote the URL without its credentials.
        let shown = crate::recipe::redact::url(&url);
        let uri: Uri = url
            .parse()
            .map_err(|e| bad(format!("invalid url `{shown}`: {e}")))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            other => {
                return Err(bad(format!(
                    "url `{shown}`: scheme {other:?} is not http or https"
                )))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| bad(format!("url `{shown}` has no host")))?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host_for_connect = host.trim_start_matches('[').trim_end_matches(']');
        let authority = if host_for_connect.contains(':') {
            format!("[{host_for_connect}]:{port}")
        } else {
            format!("{host_for_connect}:{port}")
        };
        // `user:pw@` is never sent in the Host header: it becomes Basic authentication (as
        // curl does) unless the recipe gives its own Authorization header.
        let userinfo = uri
            .authority()
            .and_then(|a| a.as_str().rsplit_once('@'))
            .map(|(u, _)| u.to_string());
        let host_header = HeaderValue::from_str(
            uri.authority()
                .map(|a| a.as_str().rsplit('@').next().unwrap_or_default())
                .unwrap_or(host_for_connect),
        )
        .map_err(|e| bad(format!("bad host in `{shown}`: {e}")))?;
        let method = Method::from_bytes(w.method.as_bytes())
            .map_err(|e| bad(format!("bad method `{}`: {e}", w.method)))?;
        let mut headers = Vec::new();
        for (k, v) in &w.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| bad(format!("bad header name `{k}`: {e}")))?;
            // `${VAR}`: a credential header read from the environment at run time.
            let v = match crate::recipe::decode::env_ref_name(v) {
                Some(var) => std::env::var(var).map_err(|_| {
                    bad(format!(
                        "header `{k}`: environment variable {var} is not set"
                    ))
                })?,
                None => v.clone(),
            };
            let value = HeaderValue::from_str(&v)
                .map_err(|_| bad(format!("bad value for header `{k}`")))?;
            headers.push((name, value));
        }
        if let Some(ui) = userinfo {
            if !headers
                .iter()
                .any(|(n, _)| n == hyper::header::AUTHORIZATION)
            {
                use base64::Engine;
                // `%XX` escapes decoded; invalid ones are kept as written.
                let ui = percent_encoding::percent_decode_str(&ui).decode_utf8_lossy();
                let b64 = base64::engine::general_purpose::STANDARD.encode(ui.as_bytes());
                let mut v = HeaderValue::from_str(&format!("Basic {b64}"))
                    .map_err(|_| bad("bad credentials in the url".to_string()))?;
                v.set_sensitive(true);
                headers.push((hyper::header::AUTHORIZATION, v));
            }
        }
        let mut t = Target {
            op: op_label(&method),
            method,
            path_and_query: uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into()),
            uri,
            authority,
            host_header,
            headers,
            body: Bytes::from(w.body.clone().unwrap_or_default()),
            expect_status: w.expect_status,
            https,
            wire: Vec::new(),
            plain: PlainClient::from_env(),
        };
        t.wire = super::http_lean::serialize_request(&t);
        Ok(HttpClient {
            t: Arc::new(t),
            connect_timeout: std::time::Duration::from_secs_f64(svc.load.timeout_s.max(1.0)),
        })
    }
}

#[cfg(test)]
impl HttpClient {
    /// A GET client for `url` (unit tests).
    pub(crate) fn for_test(url: &str) -> HttpClient {
        Self::for_test_method(url, Method::GET)
    }

    /// A client sending `method` (no body) to `url` (unit tests).
    pub(crate) fn for_test_method(url: &str, method: Method) -> HttpClient {
        let t: Uri = url.parse().unwrap();
        let host = t.authority().unwrap().as_str().to_string();
        let mut target = Target {
            op: op_label(&method),
            method,
            path_and_query: t.path_and_query().unwrap().as_str().to_string(),
            authority: host.clone(),
            host_header: HeaderValue::from_str(&host).unwrap(),
            uri: t,
            headers: Vec::new(),
            body: Bytes::new(),
            expect_status: None,
            https: false,
            wire: Vec::new(),
            plain: PlainClient::Lean,
        };
        target.wire = super::http_lean::serialize_request(&target);
        HttpClient {
            t: Arc::new(target),
            connect_timeout: std::time::Duration::from_secs(1),
        }
    }

    pub(crate) fn target(&self) -> Arc<Target> {
        self.t.clone()
    }
}

/// The connection future, driven inside the request's own task (no hand-off to a separate
/// connection task: one fewer task wake-up per request on the hot path).
type ConnFut = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// The connection future while it runs; `None` once it has finished.
///
/// A finished connection future is dropped at once. It owns hyper's dispatcher, and with it the
/// queue of requests handed to `SendRequest`: dropping it answers a request still queued there
/// with a cancel error that gives the request back (see [`HttpWorker::request`]). Kept alive
/// instead, a request queued on a connection that the server had closed while it sat idle
/// waited for an answer that could never come, until the run's timeout (issue #16).
struct ConnState {
    fut: Option<ConnFut>,
    /// Why the connection failed, for the messages of the requests it fails.
    error: Option<String>,
}

impl ConnState {
    /// Poll an idle connection once, without waiting. Nothing else polls it between requests,
    /// so a close the server made meanwhile (a keep-alive timeout: nginx `keepalive_timeout`,
    /// uvicorn `--timeout-keep-alive`) is found here, before a request is queued on it.
    async fn still_open(&mut self) -> bool {
        let Some(fut) = self.fut.as_mut() else {
            return false;
        };
        let finished =
            std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx).is_ready()))
                .await;
        if finished {
            self.fut = None;
        }
        !finished
    }

    fn context(&self) -> String {
        self.error
            .as_deref()
            .map(|e| format!(" (connection error: {e})"))
            .unwrap_or_default()
    }
}

type Conn = (SendRequest<Full<Bytes>>, ConnState);

/// Await `f` while driving the connection.
///
/// When the connection finishes first (a server that closes after each response, as HTTP/1.0
/// and `Connection: close` do, or a failed connection), it is dropped and `f` is awaited alone:
/// what the connection delivered is already in its channel, and whatever it left unanswered is
/// failed by the drop, so `f` resolves at once either way.
async fn drive<F: Future>(conn: &mut ConnState, f: F) -> F::Output {
    tokio::pin!(f);
    if let Some(fut) = conn.fut.as_mut() {
        tokio::select! {
            biased;
            r = &mut f => return r,
            c = fut.as_mut() => {
                conn.fut = None;
                if let Err(e) = c {
                    conn.error = Some(e.to_string());
                }
            }
        }
    }
    f.await
}

async fn open_conn(t: &Target) -> Result<Conn, (ErrorClass, String)> {
    let stream = tokio::net::TcpStream::connect(&t.authority)
        .await
        .map_err(|e| (classify_io(&e), format!("connect {}: {e}", t.authority)))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| (ErrorClass::Protocol, format!("HTTP handshake: {e}")))?;
    Ok((
        sender,
        ConnState {
            fut: Some(Box::pin(conn)),
            error: None,
        },
    ))
}

/// The connection ended before any part of a response: on a kept-alive connection, the
/// server closed it while the request went out (the keep-alive race that HTTP clients retry
/// for idempotent requests, RFC 9110 section 9.2.2).
fn closed_before_response(e: &hyper::Error) -> bool {
    use std::io::ErrorKind::*;
    if e.is_incomplete_message() || e.is_canceled() {
        return true;
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            );
        }
        src = s.source();
    }
    false
}

fn build_request(t: &Target) -> Result<Request<Full<Bytes>>, String> {
    let mut req = Request::builder()
        .method(t.method.clone())
        .uri(t.path_and_query.as_str());
    if let Some(h) = req.headers_mut() {
        h.insert(HOST, t.host_header.clone());
        for (k, v) in &t.headers {
            h.append(k.clone(), v.clone());
        }
    }
    req.body(Full::new(t.body.clone()))
        .map_err(|e| e.to_string())
}

impl Client for HttpClient {
    fn setup(&self) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(async move { Ok(()) })
    }

    fn connect(&self, _worker: u32) -> BoxFuture<'_, Result<Box<dyn Worker>, ClientError>> {
        Box::pin(async move {
            let t = self.t.clone();
            if t.https {
                let c = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .pool_idle_timeout(super::util::POOL_IDLE_TIMEOUT)
                    .build()
                    .map_err(|e| bad(format!("TLS client: {e}")))?;
                return Ok(Box::new(HttpsWorker { t, c }) as Box<dyn Worker>);
            }
            if t.plain != PlainClient::Hyper {
                let s = super::http_lean::connect(&t)
                    .await
                    .map_err(|(class, m)| ClientError::new(class, "connect", m))?;
                return Ok(Box::new(super::http_lean::LeanWorker::new(t, s)) as Box<dyn Worker>);
            }
            let conn = open_conn(&t)
                .await
                .map_err(|(class, m)| ClientError::new(class, "connect", m))?;
            Ok(Box::new(HttpWorker {
                t,
                conn: Some(conn),
            }) as Box<dyn Worker>)
        })
    }

    fn teardown(&self) -> BoxFuture<'_, Result<Vec<RunMetric>, ClientError>> {
        Box::pin(async move { Ok(Vec::new()) })
    }

    fn closed_driver<'a>(
        &'a self,
        clients: &'a [u32],
    ) -> BoxFuture<'a, Result<Option<Box<dyn ClosedDriver>>, ClientError>> {
        Box::pin(async move {
            if self.t.https || self.t.plain != PlainClient::Lean {
                return Ok(None);
            }
            let open = super::http_driver::HttpDriver::open(self.t.clone(), clients);
            let d = tokio::time::timeout(self.connect_timeout, open)
                .await
                .map_err(|_| {
                    ClientError::new(
                        ErrorClass::Timeout,
                        "connect",
                        format!(
                            "{} connections to {} did not open within {:?}",
                            clients.len(),
                            self.t.authority,
                            self.connect_timeout
                        ),
                    )
                })??;
            Ok(Some(Box::new(d) as Box<dyn ClosedDriver>))
        })
    }
}

struct HttpWorker {
    t: Arc<Target>,
    conn: Option<Conn>,
}

impl Worker for HttpWorker {
    fn request<'a>(&'a mut self, ctx: &'a mut RequestCtx<'_>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let t = &self.t;
            let op = t.op;
            let mut req = match build_request(t) {
                Ok(r) => r,
                Err(e) => return Outcome::err(op, ErrorClass::Other, e),
            };
            let mut retried = false;
            // At most two tries: a second, on a new connection, only when a kept-alive
            // connection turned out closed by the server (reopened inside the timing).
            let (resp, sender, mut conn) = loop {
                let kept = match self.conn.take() {
                    Some((s, mut c)) if !s.is_closed() => c.still_open().await.then_some((s, c)),
                    _ => None,
                };
                let (mut sender, mut conn, reused) = match kept {
                    Some((s, c)) => (s, c, true),
                    None => match open_conn(t).await {
                        Ok((s, c)) => (s, c, false),
                        Err((class, m)) => return Outcome::err(op, class, m),
                    },
                };
                if drive(&mut conn, sender.ready()).await.is_err() {
                    if reused && !retried {
                        retried = true;
                        continue;
                    }
                    return Outcome::err(
                        op,
                        ErrorClass::Io,
                        format!(
                            "{} {}: connection closed{}",
                            t.method,
                            t.uri,
                            conn.context()
                        ),
                    );
                }
                match drive(&mut conn, sender.try_send_request(req)).await {
                    Ok(r) => break (r, sender, conn),
                    Err(mut e) => {
                        let unsent = e.take_message();
                        let err = e.into_error();
                        // Retried: a request the connection never took (it was closed before
                        // writing it), and an idempotent one that the server's close of a kept
                        // connection cut off before any response.
                        let again = reused
                            && !retried
                            && (unsent.is_some()
                                || (t.method.is_idempotent() && closed_before_response(&err)));
                        if again {
                            retried = true;
                            req = match unsent {
                                Some(r) => r,
                                None => match build_request(t) {
                                    Ok(r) => r,
                                    Err(e) => return Outcome::err(op, ErrorClass::Other, e),
                                },
                            };
                            continue;
                        }
                        let class = if err.is_incomplete_message()
                            || err.is_closed()
                            || err.is_canceled()
                        {
                            ErrorClass::Io
                        } else {
                            ErrorClass::Protocol
                        };
                        return Outcome::err(
                            op,
                            class,
                            format!("{} {}: {err}{}", t.method, t.uri, conn.context()),
                        );
                    }
                }
            };
            let mut o = Outcome::ok(op);
            o.bytes_sent = t.body.len() as u64;
            o.size_bytes = t.body.len() as u64;
            ctx.mark_first_byte();
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            let mut n = 0u64;
            while let Some(frame) = drive(&mut conn, body.frame()).await {
                match frame {
                    Ok(f) => {
                        if let Some(d) = f.data_ref() {
                            n += d.len() as u64;
                        }
                    }
                    Err(e) => {
                        return Outcome::err(
                            op,
                            ErrorClass::Io,
                            format!("reading body: {e}{}", conn.context()),
                        );
                    }
                }
            }
            o.bytes_received = n;
            if conn.fut.is_some() {
                self.conn = Some((sender, conn));
            }
            status_outcome(t, o, status)
        })
    }
}

struct HttpsWorker {
    t: Arc<Target>,
    c: reqwest::Client,
}

impl Worker for HttpsWorker {
    fn request<'a>(&'a mut self, ctx: &'a mut RequestCtx<'_>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let t = &self.t;
            let op = t.op;
            let mut rb = self
                .c
                .request(t.method.clone(), t.uri.to_string())
                .body(t.body.clone());
            for (k, v) in &t.headers {
                rb = rb.header(k.clone(), v.clone());
            }
            let mut o = Outcome::ok(op);
            o.bytes_sent = t.body.len() as u64;
            o.size_bytes = t.body.len() as u64;
            let mut resp = match rb.send().await {
                Ok(r) => r,
                Err(e) => {
                    let class = if e.is_connect() {
                        ErrorClass::Connect
                    } else if e.is_timeout() {
                        ErrorClass::Timeout
                    } else {
                        ErrorClass::Protocol
                    };
                    return Outcome::err(op, class, format!("{} {}: {e}", t.method, t.uri));
                }
            };
            ctx.mark_first_byte();
            let status = resp.status().as_u16();
            let mut n = 0u64;
            loop {
                match resp.chunk().await {
                    Ok(Some(c)) => n += c.len() as u64,
                    Ok(None) => break,
                    Err(e) => {
                        return Outcome::err(op, ErrorClass::Io, format!("reading body: {e}"));
                    }
                }
            }
            o.bytes_received = n;
            status_outcome(t, o, status)
        })
    }
}
