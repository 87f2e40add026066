//! The lean HTTP/1.1 path for plain `http://` (what wrk does per request): the request is
//! serialized once at setup and written with one `write`; the response is read into a buffer
//! the worker keeps and parsed in place (`httparse`), the body counted and dropped (length,
//! chunked, or until close). No allocation, no header map, no channel or task hand-off per
//! request — hyper's client does all of those.
//!
//! Keep-alive as the hyper path does it: before a request goes out on a kept connection that
//! sat idle (a keep-alive timeout closes idle connections), a non-blocking `MSG_PEEK` tells
//! whether the server closed it; then a new connection is opened inside the timed request. A
//! kept connection that fails before any response byte (the close raced the request) is
//! retried once on a new connection when the request is idempotent or the write itself
//! failed. So the peek, one system call per request, is made only where that retry cannot
//! stand in for it: before a request that is not idempotent, or on a connection idle for
//! [`PEEK_AFTER_IDLE_NS`] or more. A closed loop's back-to-back GETs skip it, as wrk does.

use super::http_decode::{Decoder, Progress, ReadError, Response, BUF_BYTES};
use super::http_target::{classify_io, status_outcome, Target};
use crate::runner::client::{BoxFuture, ErrorClass, Outcome, RequestCtx, Worker};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A kept connection idle this long (from the previous request's send to this one's) is
/// checked for a close before an idempotent request goes out on it. Keep-alive timeouts are
/// seconds (nginx 75 s, uvicorn 5 s); 1 ms leaves three orders of magnitude.
pub(crate) const PEEK_AFTER_IDLE_NS: i64 = 1_000_000;

/// The request bytes, built once.
pub(crate) fn serialize_request(t: &Target) -> Vec<u8> {
    let mut w = Vec::with_capacity(256 + t.body.len());
    w.extend_from_slice(t.method.as_str().as_bytes());
    w.push(b' ');
    w.extend_from_slice(t.path_and_query.as_bytes());
    w.extend_from_slice(b" HTTP/1.1\r\n");
    let has = |name: &str| t.headers.iter().any(|(k, _)| k.as_str() == name);
    if !has("host") {
        w.extend_from_slice(b"host: ");
        w.extend_from_slice(t.host_header.as_bytes());
        w.extend_from_slice(b"\r\n");
    }
    for (k, v) in &t.headers {
        w.extend_from_slice(k.as_str().as_bytes());
        w.extend_from_slice(b": ");
        w.extend_from_slice(v.as_bytes());
        w.extend_from_slice(b"\r\n");
    }
    let body_method = matches!(t.method.as_str(), "POST" | "PUT" | "PATCH");
    if !has("content-length") && (!t.body.is_empty() || body_method) {
        w.extend_from_slice(format!("content-length: {}\r\n", t.body.len()).as_bytes());
    }
    w.extend_from_slice(b"\r\n");
    w.extend_from_slice(&t.body);
    w
}

pub(crate) struct LeanWorker {
    t: Arc<Target>,
    stream: Option<TcpStream>,
    buf: Box<[u8]>,
    /// When the previous request on this worker was sent (`i64::MIN` before the first).
    last_sent_ns: i64,
}

/// Whether a kept connection is still open: `recv(MSG_PEEK | MSG_DONTWAIT)` says EOF (0), an
/// error, or unexpected bytes (all: not reusable), or would block (open and quiet).
pub(crate) fn still_open(fd: std::os::fd::RawFd) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: a valid fd and a 1-byte buffer we own.
    let n = unsafe {
        libc::recv(
            fd,
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && {
        let e = std::io::Error::last_os_error();
        e.kind() == std::io::ErrorKind::WouldBlock
    }
}

pub(crate) async fn connect(t: &Target) -> Result<TcpStream, (ErrorClass, String)> {
    let s = TcpStream::connect(&t.authority)
        .await
        .map_err(|e| (classify_io(&e), format!("connect {}: {e}", t.authority)))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

impl LeanWorker {
    pub(crate) fn new(t: Arc<Target>, stream: TcpStream) -> LeanWorker {
        LeanWorker {
            t,
            stream: Some(stream),
            buf: vec![0u8; BUF_BYTES].into_boxed_slice(),
            last_sent_ns: i64::MIN,
        }
    }
}

/// Read one response on `s` into `buf`.
async fn read_response(
    s: &mut TcpStream,
    buf: &mut [u8],
    ctx: &mut RequestCtx<'_>,
    head_request: bool,
) -> Result<Response, ReadError> {
    let mut d = Decoder::new(head_request);
    let mut end = 0usize;
    loop {
        let n = s
            .read(&mut buf[end..])
            .await
            .map_err(|e| d.read_failed(end, &e))?;
        if n == 0 {
            return d.eof(end);
        }
        end += n;
        let p = d.advance(buf, &mut end)?;
        if d.head_done() {
            ctx.mark_first_byte();
        }
        if let Progress::Done(r) = p {
            return Ok(r);
        }
    }
}

impl Worker for LeanWorker {
    fn request<'a>(&'a mut self, ctx: &'a mut RequestCtx<'_>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let t = self.t.clone();
            let op = t.op;
            let head_request = t.method == hyper::Method::HEAD;
            let mut retried = false;
            let idle_ns = ctx.sent_ns.saturating_sub(self.last_sent_ns);
            self.last_sent_ns = ctx.sent_ns;
            let check = !t.method.is_idempotent() || idle_ns >= PEEK_AFTER_IDLE_NS;
            loop {
                let kept = self
                    .stream
                    .take()
                    .filter(|s| !check || still_open(s.as_raw_fd()));
                let reused = kept.is_some();
                let mut s = match kept {
                    Some(s) => s,
                    None => match connect(&t).await {
                        Ok(s) => s,
                        Err((class, m)) => return Outcome::err(op, class, m),
                    },
                };
                if let Err(e) = s.write_all(&t.wire).await {
                    if reused && !retried {
                        retried = true;
                        continue;
                    }
                    return Outcome::err(
                        op,
                        classify_io(&e),
                        format!("{} {}: writing the request: {e}", t.method, t.uri),
                    );
                }
                match read_response(&mut s, &mut self.buf, ctx, head_request).await {
                    Ok(Response {
                        status,
                        body_bytes: n,
                        keep,
                    }) => {
                        if keep {
                            self.stream = Some(s);
                        }
                        let mut o = Outcome::ok(op);
                        o.bytes_sent = t.body.len() as u64;
                        o.size_bytes = t.body.len() as u64;
                        o.bytes_received = n;
                        return status_outcome(&t, o, status);
                    }
                    Err(ReadError::ClosedBeforeResponse(m)) => {
                        if reused && !retried && t.method.is_idempotent() {
                            retried = true;
                            continue;
                        }
                        return Outcome::err(
                            op,
                            ErrorClass::Io,
                            format!("{} {}: connection closed: {m}", t.method, t.uri),
                        );
                    }
                    Err(ReadError::Io(m)) => {
                        return Outcome::err(
                            op,
                            ErrorClass::Io,
                            format!("{} {}: {m}", t.method, t.uri),
                        )
                    }
                    Err(ReadError::Protocol(m)) => {
                        return Outcome::err(
                            op,
                            ErrorClass::Protocol,
                            format!("{} {}: {m}", t.method, t.uri),
                        )
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::clock::Clock;
    use crate::runner::rng::Rng;
    use tokio::io::AsyncWriteExt;

    /// Chunked bodies split across reads, a content-length body and a close-delimited body, on
    /// one kept connection (the first two) and a closed one (the third).
    #[tokio::test]
    async fn chunked_length_and_close_delimited_bodies() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut c, _) = l.accept().await.unwrap();
            let mut b = [0u8; 4096];
            let _ = c.read(&mut b).await.unwrap();
            for part in [
                &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel"[..],
                b"lo\r\n1",
                b"0\r\n0123456789abcdef\r\n0\r\nx-trailer: 1\r\n\r\n",
            ] {
                c.write_all(part).await.unwrap();
                c.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let _ = c.read(&mut b).await.unwrap();
            c.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nabc")
                .await
                .unwrap();
            let _ = c.read(&mut b).await.unwrap();
            c.write_all(b"HTTP/1.0 200 OK\r\n\r\nuntil close")
                .await
                .unwrap();
        });
        let client = super::super::http::HttpClient::for_test(&format!("http://{addr}/x"));
        let t = client.target();
        let s = connect(&t).await.unwrap();
        let mut w = LeanWorker::new(t, s);
        let clock = Clock::new();
        let mut rng = Rng::new(1);
        let mut ctx = RequestCtx {
            worker: 0,
            seq: 0,
            rng: &mut rng,
            clock: &clock,
            sent_ns: clock.now_ns(),
            first_byte_ns: None,
        };
        let o = w.request(&mut ctx).await;
        assert_eq!(
            (o.error, o.http_status, o.bytes_received),
            (None, Some(200), 21)
        );
        assert!(w.stream.is_some(), "kept alive");
        let o = w.request(&mut ctx).await;
        assert_eq!(o.http_status, Some(404));
        assert_eq!(o.bytes_received, 3);
        assert_eq!(o.error, Some(ErrorClass::HttpStatus));
        let o = w.request(&mut ctx).await;
        assert_eq!((o.error, o.bytes_received), (None, 11));
        assert!(
            w.stream.is_none(),
            "HTTP/1.0 without keep-alive is not kept"
        );
        server.await.unwrap();
    }

    /// A server that closes a kept connection without saying so (no `connection: close`),
    /// right after its response. A GET sent back to back (no idle, so no peek) meets the
    /// closed connection and is resent once on a new one; a POST is never resent, so it is
    /// preceded by the peek, which sees the close. Both succeed, each on a second connection.
    #[tokio::test]
    async fn a_silent_close_is_resent_after_a_get_and_seen_before_a_post() {
        for method in ["GET", "POST"] {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let mut served = 0;
                for _ in 0..2 {
                    let (mut c, _) = l.accept().await.unwrap();
                    let mut b = [0u8; 4096];
                    if c.read(&mut b).await.unwrap() > 0 {
                        c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await
                            .unwrap();
                        served += 1;
                    }
                }
                served
            });
            let url = format!("http://{addr}/x");
            let client = super::super::http::HttpClient::for_test_method(
                &url,
                hyper::Method::from_bytes(method.as_bytes()).unwrap(),
            );
            let t = client.target();
            let s = connect(&t).await.unwrap();
            let mut w = LeanWorker::new(t, s);
            let clock = Clock::new();
            let mut rng = Rng::new(1);
            let sent_ns = clock.now_ns();
            for (i, sent_ns) in [sent_ns, sent_ns + 10_000].into_iter().enumerate() {
                let mut ctx = RequestCtx {
                    worker: 0,
                    seq: i as u64,
                    rng: &mut rng,
                    clock: &clock,
                    sent_ns,
                    first_byte_ns: None,
                };
                let o = w.request(&mut ctx).await;
                assert_eq!(
                    (o.error, o.http_status),
                    (None, Some(200)),
                    "{method} {i}: {o:?}"
                );
                // Let the server's close reach this side before the next request.
                tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            }
            assert_eq!(
                server.await.unwrap(),
                2,
                "{method}: one request per connection"
            );
        }
    }
}
