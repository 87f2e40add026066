//! The lean PostgreSQL wire path for the timed requests: what pgbench does with libpq. A
//! worker owns its connection and speaks the extended query protocol on it directly: each
//! request is one `Bind`/`Execute`/`Sync` written with one `write`, and the reply is read into
//! a buffer the worker keeps and parsed in place up to `ReadyForQuery`. No connection task, no
//! channel between the worker and its connection, no allocation per request: tokio-postgres
//! does all of those, and they were a third of factorybench's CPU per transaction.
//!
//! Setup, teardown and the server facts keep tokio-postgres (outside the timed region). The
//! login does what tokio-postgres does without TLS: trust, cleartext password, MD5, and
//! SCRAM-SHA-256 (postgres-protocol's, the same code).
//!
//! A session the server ended while it sat idle (`pg_terminate_backend`, `idle_session_timeout`,
//! a restart) shows when the next request goes out: the reply is a FATAL error, or the
//! connection closes before any reply byte. The request did not run; the worker opens a new
//! session and sends it again, inside the timed request, as a connection pool does
//! ([`Conn::ended_before_reply`]). No system call per request looks for it beforehand.

use crate::runner::client::{ErrorClass, RequestCtx};
use postgres_protocol::authentication::{md5_hash, sasl};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// Type OIDs of the statements' parameters (`pg_type`).
pub(super) const INT8: u32 = 20;
pub(super) const INT4: u32 = 23;
pub(super) const TEXT: u32 = 25;
pub(super) const INT4_ARRAY: u32 = 1007;
pub(super) const TEXT_ARRAY: u32 = 1009;

/// Read buffer per connection; a longer message grows it.
const BUF_BYTES: usize = 16 * 1024;

/// Where and as whom to log in.
#[derive(Clone, Debug)]
pub(super) struct Params {
    /// A host name or address, or a directory holding the server's Unix socket (`/…`, as libpq
    /// and tokio-postgres read it).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub password: Option<String>,
    pub connect_timeout: Duration,
}

/// What went wrong on the wire.
#[derive(Debug)]
pub(super) enum WireError {
    Io(io::Error),
    /// The server's `ErrorResponse`.
    Db {
        severity: String,
        code: String,
        message: String,
    },
    /// The server closed the connection.
    Closed,
    /// The connection did not open and log in within the connect timeout.
    ConnectTimeout,
    /// A message the protocol does not allow here.
    Protocol(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "error communicating with the server: {e}"),
            WireError::Db {
                severity,
                code,
                message,
            } => write!(f, "db error: {severity}: {message} ({code})"),
            WireError::Closed => f.write_str("connection closed by the server"),
            WireError::ConnectTimeout => f.write_str("timeout waiting for server"),
            WireError::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e)
    }
}

impl WireError {
    /// The server's SQLSTATE and message, for an `ErrorResponse`.
    pub fn db(&self) -> Option<(&str, &str)> {
        match self {
            WireError::Db { code, message, .. } => Some((code, message)),
            _ => None,
        }
    }

    /// The class of the error, as [`super::class_of`] gives tokio-postgres's.
    pub fn class(&self) -> ErrorClass {
        match self {
            WireError::Db { code, .. } => super::class_of_sqlstate(code),
            WireError::Io(e) => super::class_of_io(e.kind()),
            WireError::Closed => ErrorClass::Io,
            WireError::ConnectTimeout => ErrorClass::Timeout,
            WireError::Protocol(_) => ErrorClass::Protocol,
        }
    }
}

/// A parameter of a request, sent in binary.
pub(super) enum Param<'a> {
    Int8(i64),
    Int4(i32),
    Text(&'a str),
    Int4Array(&'a [i32]),
    TextArray(&'a [&'a str]),
}

/// What a request's reply held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reply {
    /// Rows of the command tag (`SELECT 1`, `INSERT 0 1`, `UPDATE 0`).
    pub rows: u64,
    /// Bytes of the rows' third column (`payload`), summed: the size the client counts.
    pub payload_bytes: u64,
    /// Rows returned (`DataRow` messages).
    pub data_rows: u64,
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf).await,
            Stream::Unix(s) => s.read(buf).await,
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(buf).await,
            Stream::Unix(s) => s.write_all(buf).await,
        }
    }
}

/// One session's protocol state apart from its socket: the received bytes and the reply
/// being read. The async [`Conn`] and the epoll driver ([`super::driver`]) both read through
/// it.
pub(super) struct Codec {
    /// Received bytes; `start..end` is not parsed yet.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// An error left the protocol state unknown: the session must not be used again.
    broken: bool,
    /// See [`Codec::ended_before_reply`].
    ended_before_reply: bool,
    /// The reply being read: what it held so far, its error, whether any byte or message of
    /// it arrived.
    reply: Reply,
    err: Option<WireError>,
    got_bytes: bool,
    seen_any: bool,
}

/// One logged-in session.
pub(super) struct Conn {
    stream: Stream,
    codec: Codec,
    /// The next message(s) to send (login and prepare).
    out: Vec<u8>,
}

/// Start a message with `tag` in `out`; [`end_msg`] writes its length.
fn begin_msg(out: &mut Vec<u8>, tag: u8) -> usize {
    out.push(tag);
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

fn end_msg(out: &mut [u8], at: usize) {
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The fields of an `ErrorResponse` body.
fn db_error(body: &[u8]) -> WireError {
    let (mut severity, mut code, mut message) = (String::new(), String::new(), String::new());
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let n = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        let value = String::from_utf8_lossy(&tail[..n]).into_owned();
        match field {
            // 'V' is the non-localized severity (9.6+); 'S' may be translated.
            b'V' => severity = value,
            b'S' if severity.is_empty() => severity = value,
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
        rest = &tail[(n + 1).min(tail.len())..];
    }
    WireError::Db {
        severity,
        code,
        message,
    }
}

/// The row count at the end of a command tag (`INSERT 0 5` → 5; `BEGIN` → 0).
fn tag_rows(body: &[u8]) -> u64 {
    let tag = body.strip_suffix(&[0]).unwrap_or(body);
    let last = tag.rsplit(|&b| b == b' ').next().unwrap_or(&[]);
    std::str::from_utf8(last)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The length of the third column of a `DataRow` body (0 when it has fewer or it is NULL).
fn third_column_len(body: &[u8]) -> u64 {
    if body.len() < 2 || i16::from_be_bytes([body[0], body[1]]) < 3 {
        return 0;
    }
    let mut at = 2;
    for col in 0..3 {
        let Some(len) = body.get(at..at + 4).map(be_i32) else {
            return 0;
        };
        at += 4;
        if col == 2 {
            return len.max(0) as u64;
        }
        at += len.max(0) as usize;
    }
    0
}

impl Conn {
    /// Open a session and log in, within the connect timeout.
    pub async fn connect(p: &Params) -> Result<Conn, WireError> {
        match tokio::time::timeout(p.connect_timeout, Self::open(p)).await {
            Ok(r) => r,
            Err(_) => Err(WireError::ConnectTimeout),
        }
    }

    async fn open(p: &Params) -> Result<Conn, WireError> {
        let stream = if p.host.starts_with('/') {
            let path = format!("{}/.s.PGSQL.{}", p.host.trim_end_matches('/'), p.port);
            Stream::Unix(UnixStream::connect(path).await?)
        } else {
            let s = TcpStream::connect((p.host.as_str(), p.port)).await?;
            s.set_nodelay(true)?;
            Stream::Tcp(s)
        };
        let mut c = Conn {
            stream,
            codec: Codec::new(),
            out: Vec::with_capacity(512),
        };
        // StartupMessage: no tag, protocol 3.0, then name/value pairs.
        let at = c.out.len();
        c.out.extend_from_slice(&[0; 4]);
        c.out.extend_from_slice(&196_608u32.to_be_bytes());
        for (k, v) in [
            ("user", p.user.as_str()),
            ("database", p.database.as_str()),
            ("application_name", "factorybench"),
            ("client_encoding", "UTF8"),
        ] {
            cstr(&mut c.out, k);
            cstr(&mut c.out, v);
        }
        c.out.push(0);
        end_msg(&mut c.out, at);
        c.send().await?;
        let password = || -> Result<&[u8], WireError> {
            p.password
                .as_deref()
                .map(str::as_bytes)
                .ok_or_else(|| WireError::Db {
                    severity: "FATAL".into(),
                    code: "28P01".into(),
                    message: "the server asks for a password and none is set".into(),
                })
        };
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let (tag, body) = c.next_message().await?;
            match tag {
                b'R' => {
                    let Some(kind) = body.get(..4).map(be_i32) else {
                        return Err(WireError::Protocol("short authentication message".into()));
                    };
                    let data = &body[4..];
                    match kind {
                        0 => {}
                        3 => {
                            let at = begin_msg(&mut c.out, b'p');
                            c.out.extend_from_slice(password()?);
                            c.out.push(0);
                            end_msg(&mut c.out, at);
                            c.send().await?;
                        }
                        5 if data.len() >= 4 => {
                            let salt = [data[0], data[1], data[2], data[3]];
                            let hash = md5_hash(p.user.as_bytes(), password()?, salt);
                            let at = begin_msg(&mut c.out, b'p');
                            cstr(&mut c.out, &hash);
                            end_msg(&mut c.out, at);
                            c.send().await?;
                        }
                        10 => {
                            let offers_scram = data
                                .split(|&b| b == 0)
                                .any(|m| m == sasl::SCRAM_SHA_256.as_bytes());
                            if !offers_scram {
                                return Err(WireError::Protocol(format!(
                                    "the server offers no SASL mechanism factorybench speaks ({}; factorybench speaks {} without TLS)",
                                    String::from_utf8_lossy(&data.split(|&b| b == 0).filter(|m| !m.is_empty()).collect::<Vec<_>>().join(&b", "[..])),
                                    sasl::SCRAM_SHA_256
                                )));
                            }
                            let s = sasl::ScramSha256::new(
                                password()?,
                                sasl::ChannelBinding::unsupported(),
                            );
                            let at = begin_msg(&mut c.out, b'p');
                            cstr(&mut c.out, sasl::SCRAM_SHA_256);
                            c.out
                                .extend_from_slice(&(s.message().len() as i32).to_be_bytes());
                            c.out.extend_from_slice(s.message());
                            end_msg(&mut c.out, at);
                            c.send().await?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                WireError::Protocol("SASL continue before SASL start".into())
                            })?;
                            s.update(data).map_err(|e| WireError::Protocol(e.to_string()))?;
                            let at = begin_msg(&mut c.out, b'p');
                            c.out.extend_from_slice(s.message());
                            end_msg(&mut c.out, at);
                            c.send().await?;
                        }
                        12 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                WireError::Protocol("SASL final before SASL start".into())
                            })?;
                            s.finish(data).map_err(|e| WireError::Protocol(e.to_string()))?;
                        }
                        other => {
                            return Err(WireError::Protocol(format!(
                                "authentication method {other} is not supported (factorybench speaks trust, password, md5 and scram-sha-256)"
                            )))
                        }
                    }
                }
                b'E' => return Err(db_error(&body)),
                b'Z' => return Ok(c),
                // ParameterStatus, BackendKeyData, NoticeResponse.
                b'S' | b'K' | b'N' => {}
                t => {
                    return Err(WireError::Protocol(format!(
                        "unexpected message `{}` while logging in",
                        t as char
                    )))
                }
            }
        }
    }

    /// Prepare named statements (`Parse` each, one `Sync`).
    pub async fn prepare(&mut self, statements: &[(&str, &str, &[u32])]) -> Result<(), WireError> {
        for (name, sql, types) in statements {
            let at = begin_msg(&mut self.out, b'P');
            cstr(&mut self.out, name);
            cstr(&mut self.out, sql);
            self.out
                .extend_from_slice(&(types.len() as i16).to_be_bytes());
            for t in *types {
                self.out.extend_from_slice(&t.to_be_bytes());
            }
            end_msg(&mut self.out, at);
        }
        let at = begin_msg(&mut self.out, b'S');
        end_msg(&mut self.out, at);
        self.send().await?;
        let mut err = None;
        loop {
            let (tag, body) = self.next_message().await?;
            match tag {
                b'1' | b'N' | b'S' => {}
                b'E' => err = Some(db_error(&body)),
                b'Z' => return err.map_or(Ok(()), Err),
                t => {
                    return Err(WireError::Protocol(format!(
                        "unexpected message `{}` after Parse",
                        t as char
                    )))
                }
            }
        }
    }

    /// The session's socket (non-blocking) and protocol state, for the epoll driver.
    pub fn into_std(self) -> io::Result<(std::os::fd::OwnedFd, Codec)> {
        let fd = match self.stream {
            Stream::Tcp(s) => s.into_std()?.into(),
            Stream::Unix(s) => s.into_std()?.into(),
        };
        Ok((fd, self.codec))
    }

    pub fn usable(&self) -> bool {
        self.codec.usable()
    }

    pub fn ended_before_reply(&self) -> bool {
        self.codec.ended_before_reply()
    }

    /// Send `request` (encoded by [`encode_execute`]) and read its reply up to
    /// `ReadyForQuery`. The request's first byte is marked when the first reply bytes arrive.
    pub async fn execute(
        &mut self,
        request: &[u8],
        ctx: &mut RequestCtx<'_>,
    ) -> Result<Reply, WireError> {
        self.codec.begin();
        if let Err(e) = self.stream.write_all(request).await {
            return Err(self.codec.write_failed(e));
        }
        loop {
            if let Some(r) = self.codec.reply() {
                return r;
            }
            let r = self.stream.read(self.codec.room()).await;
            if self.codec.filled(r)? {
                ctx.mark_first_byte();
            }
        }
    }

    /// Write and clear `out`.
    async fn send(&mut self) -> io::Result<()> {
        let r = self.stream.write_all(&self.out).await;
        self.out.clear();
        r
    }

    /// The next message, copied out (login and prepare, not the timed path).
    async fn next_message(&mut self) -> Result<(u8, Vec<u8>), WireError> {
        loop {
            if let Some((tag, b0, b1)) = self.codec.parse_one()? {
                self.codec.start = b1;
                return Ok((tag, self.codec.buf[b0..b1].to_vec()));
            }
            let r = self.stream.read(self.codec.room()).await;
            self.codec.filled(r)?;
        }
    }
}

impl Codec {
    fn new() -> Codec {
        Codec {
            buf: vec![0; BUF_BYTES],
            start: 0,
            end: 0,
            broken: false,
            ended_before_reply: false,
            reply: Reply::default(),
            err: None,
            got_bytes: false,
            seen_any: false,
        }
    }

    /// Whether the session can take a request: no earlier error left its protocol state
    /// unknown.
    pub fn usable(&self) -> bool {
        !self.broken
    }

    /// Whether the last request failed because the session had ended before the request
    /// reached it: the connection closed (or was reset) before any reply byte, the request
    /// could not be written, or the reply began with a FATAL error (the backend ends the
    /// session and aborts what it had not committed: `pg_terminate_backend`,
    /// `idle_session_timeout`, a shutdown). The request did not run, and may run again on a
    /// new session.
    pub fn ended_before_reply(&self) -> bool {
        self.ended_before_reply
    }

    /// A request goes out now: until its reply is whole, a failure leaves the protocol state
    /// unknown.
    pub fn begin(&mut self) {
        self.broken = true;
        self.ended_before_reply = false;
        self.reply = Reply::default();
        self.err = None;
        self.got_bytes = false;
        self.seen_any = false;
    }

    /// The request could not be written: it did not reach the server.
    pub fn write_failed(&mut self, e: io::Error) -> WireError {
        self.broken = true;
        self.ended_before_reply = true;
        WireError::Io(e)
    }

    /// Where the next read goes (at least one byte).
    pub fn room(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// What a read into [`Codec::room`] returned. Ok(true) when these are the reply's first
    /// bytes; a close (0 bytes) or an error breaks the session. A close after an error the
    /// server sent in the reply (a FATAL that cut it short) is that error.
    pub fn filled(&mut self, r: io::Result<usize>) -> Result<bool, WireError> {
        let e = match r {
            Ok(0) => self.err.take().unwrap_or(WireError::Closed),
            Ok(n) => {
                self.end += n;
                return Ok(!std::mem::replace(&mut self.got_bytes, true));
            }
            Err(e) => WireError::Io(e),
        };
        self.broken = true;
        self.ended_before_reply = !self.got_bytes;
        Err(e)
    }

    /// The reply to the request since [`Codec::begin`], once the buffer holds it whole up to
    /// `ReadyForQuery` (an `ErrorResponse` in it is the error, the session usable); None
    /// while it needs more bytes. A FATAL error first, or a protocol error, ends it at once
    /// (the session is broken).
    pub fn reply(&mut self) -> Option<Result<Reply, WireError>> {
        loop {
            let (tag, b0, b1) = match self.parse_one() {
                Ok(Some(m)) => m,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            self.start = b1;
            let body = &self.buf[b0..b1];
            if !std::mem::replace(&mut self.seen_any, true) && tag == b'E' {
                let e = db_error(body);
                if let WireError::Db { severity, .. } = &e {
                    if severity == "FATAL" || severity == "PANIC" {
                        self.ended_before_reply = true;
                        return Some(Err(e));
                    }
                }
            }
            match tag {
                b'D' => {
                    self.reply.data_rows += 1;
                    self.reply.payload_bytes += third_column_len(body);
                }
                b'C' => self.reply.rows = tag_rows(body),
                b'E' => self.err = Some(db_error(body)),
                b'Z' => {
                    self.broken = false;
                    return Some(self.err.take().map_or(Ok(self.reply), Err));
                }
                // BindComplete, EmptyQueryResponse, NoData, notices, parameter status,
                // notifications.
                b'2' | b'I' | b'n' | b'N' | b'S' | b'A' => {}
                t => {
                    self.broken = true;
                    return Some(Err(WireError::Protocol(format!(
                        "unexpected message `{}` in a reply",
                        t as char
                    ))));
                }
            }
        }
    }

    /// The next whole message in the buffer: tag and body range.
    fn parse_one(&mut self) -> Result<Option<(u8, usize, usize)>, WireError> {
        let avail = self.end - self.start;
        if avail < 5 {
            return Ok(None);
        }
        let s = self.start;
        let len = be_i32(&self.buf[s + 1..s + 5]);
        if len < 4 {
            self.broken = true;
            return Err(WireError::Protocol(format!("message length {len}")));
        }
        let total = 1 + len as usize;
        if avail < total {
            if total > self.buf.len() - s {
                // Make room for the whole message.
                self.buf.copy_within(s..self.end, 0);
                self.end -= s;
                self.start = 0;
                if total > self.buf.len() {
                    self.buf.resize(total, 0);
                }
            }
            return Ok(None);
        }
        Ok(Some((self.buf[s], s + 5, s + total)))
    }
}

/// `Bind` (unnamed portal, binary parameters and results), `Execute`, `Sync`: one request
/// of prepared `statement`, in `out` (cleared first).
pub(super) fn encode_execute(out: &mut Vec<u8>, statement: &str, params: &[Param<'_>]) {
    out.clear();
    let at = begin_msg(out, b'B');
    out.push(0);
    cstr(out, statement);
    out.extend_from_slice(&1i16.to_be_bytes());
    out.extend_from_slice(&1i16.to_be_bytes());
    out.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for p in params {
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        match p {
            Param::Int8(v) => out.extend_from_slice(&v.to_be_bytes()),
            Param::Int4(v) => out.extend_from_slice(&v.to_be_bytes()),
            Param::Text(s) => out.extend_from_slice(s.as_bytes()),
            Param::Int4Array(vs) => {
                array_header(out, INT4, vs.len());
                for v in *vs {
                    out.extend_from_slice(&4i32.to_be_bytes());
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Param::TextArray(vs) => {
                array_header(out, TEXT, vs.len());
                for v in *vs {
                    out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    out.extend_from_slice(v.as_bytes());
                }
            }
        }
        let len = (out.len() - len_at - 4) as i32;
        out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&1i16.to_be_bytes());
    out.extend_from_slice(&1i16.to_be_bytes());
    end_msg(out, at);
    let at = begin_msg(out, b'E');
    out.push(0);
    out.extend_from_slice(&0i32.to_be_bytes());
    end_msg(out, at);
    let at = begin_msg(out, b'S');
    end_msg(out, at);
}

/// A one-dimensional binary array's header: dimensions, no NULLs, element type, length,
/// lower bound 1.
fn array_header(out: &mut Vec<u8>, elem: u32, n: usize) {
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&elem.to_be_bytes());
    out.extend_from_slice(&(n as i32).to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn command_tags_give_their_row_counts() {
        assert_eq!(tag_rows(b"INSERT 0 5\0"), 5);
        assert_eq!(tag_rows(b"UPDATE 0\0"), 0);
        assert_eq!(tag_rows(b"SELECT 1\0"), 1);
        assert_eq!(tag_rows(b"BEGIN\0"), 0);
    }

    #[test]
    fn data_row_third_column() {
        // 4 columns: int8, int4, text "abc", NULL.
        let mut b = 4i16.to_be_bytes().to_vec();
        b.extend(8i32.to_be_bytes());
        b.extend(7i64.to_be_bytes());
        b.extend(4i32.to_be_bytes());
        b.extend(9i32.to_be_bytes());
        b.extend(3i32.to_be_bytes());
        b.extend(b"abc");
        b.extend((-1i32).to_be_bytes());
        assert_eq!(third_column_len(&b), 3);
        assert_eq!(third_column_len(&b[..10]), 0);
        assert_eq!(third_column_len(&2i16.to_be_bytes()), 0);
    }

    #[test]
    fn error_response_fields() {
        let body = b"SERROR\0VERROR\0C23505\0Mduplicate key\0\0";
        match db_error(body) {
            WireError::Db {
                severity,
                code,
                message,
            } => {
                assert_eq!((severity.as_str(), code.as_str()), ("ERROR", "23505"));
                assert_eq!(message, "duplicate key");
            }
            e => panic!("{e}"),
        }
    }

    #[test]
    fn bind_execute_sync_encoding() {
        // The bytes of one request, checked against the protocol's layout by hand.
        let mut out = Vec::new();
        let at = begin_msg(&mut out, b'S');
        end_msg(&mut out, at);
        assert_eq!(out, b"S\0\0\0\x04");
        out.clear();
        encode_execute(&mut out, "s", &[Param::Int8(1), Param::Text("hi")]);
        let mut want = b"B".to_vec();
        let body: Vec<u8> = [
            &b"\0s\0"[..],
            &1i16.to_be_bytes(),
            &1i16.to_be_bytes(),
            &2i16.to_be_bytes(),
            &8i32.to_be_bytes(),
            &1i64.to_be_bytes(),
            &2i32.to_be_bytes(),
            b"hi",
            &1i16.to_be_bytes(),
            &1i16.to_be_bytes(),
        ]
        .concat();
        want.extend(((body.len() + 4) as i32).to_be_bytes());
        want.extend(body);
        want.extend(b"E\0\0\0\x09\0\0\0\0\0");
        want.extend(b"S\0\0\0\x04");
        assert_eq!(out, want);
    }

    /// A scripted server: reads the startup message, asks for `auth` (the Authentication
    /// message's code and data), reads the client's answer, then accepts the session. Returns
    /// the client's answer (the password message's body).
    async fn scripted_server(listener: tokio::net::TcpListener, auth: (i32, Vec<u8>)) -> Vec<u8> {
        let (mut s, _) = listener.accept().await.unwrap();
        let len = s.read_i32().await.unwrap();
        let mut startup = vec![0; len as usize - 4];
        s.read_exact(&mut startup).await.unwrap();
        assert_eq!(&startup[..4], &196_608u32.to_be_bytes());
        assert!(startup.windows(6).any(|w| w == b"user\0u"));
        let mut out = Vec::new();
        let at = begin_msg(&mut out, b'R');
        out.extend_from_slice(&auth.0.to_be_bytes());
        out.extend_from_slice(&auth.1);
        end_msg(&mut out, at);
        s.write_all(&out).await.unwrap();
        let mut answer = Vec::new();
        if auth.0 != 0 {
            assert_eq!(s.read_u8().await.unwrap(), b'p');
            let len = s.read_i32().await.unwrap();
            answer = vec![0; len as usize - 4];
            s.read_exact(&mut answer).await.unwrap();
            out.clear();
            let at = begin_msg(&mut out, b'R');
            out.extend_from_slice(&0i32.to_be_bytes());
            end_msg(&mut out, at);
        }
        let at = begin_msg(&mut out, b'S');
        cstr(&mut out, "server_version");
        cstr(&mut out, "15.0");
        end_msg(&mut out, at);
        let at = begin_msg(&mut out, b'Z');
        out.push(b'I');
        end_msg(&mut out, at);
        s.write_all(&out).await.unwrap();
        answer
    }

    async fn login_with(
        auth: (i32, Vec<u8>),
        password: Option<&str>,
    ) -> (Result<(), String>, Vec<u8>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = tokio::spawn(scripted_server(l, auth));
        let p = Params {
            host: "127.0.0.1".into(),
            port,
            user: "u".into(),
            database: "d".into(),
            password: password.map(String::from),
            connect_timeout: Duration::from_secs(5),
        };
        let r = Conn::connect(&p)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        if r.is_err() {
            server.abort();
            return (r, Vec::new());
        }
        (r, server.await.unwrap())
    }

    #[tokio::test]
    async fn logs_in_with_trust_cleartext_and_md5() {
        let (r, _) = login_with((0, Vec::new()), None).await;
        assert_eq!(r, Ok(()));
        let (r, answer) = login_with((3, Vec::new()), Some("pw")).await;
        assert_eq!(r, Ok(()));
        assert_eq!(answer, b"pw\0");
        let (r, answer) = login_with((5, b"salt".to_vec()), Some("pw")).await;
        assert_eq!(r, Ok(()));
        let want = format!("{}\0", md5_hash(b"u", b"pw", *b"salt"));
        assert_eq!(answer, want.as_bytes());
        assert!(want.starts_with("md5"));
    }

    #[tokio::test]
    async fn refuses_what_it_cannot_answer() {
        let (r, _) = login_with((3, Vec::new()), None).await;
        assert!(r
            .unwrap_err()
            .contains("asks for a password and none is set"));
        // GSSAPI.
        let (r, _) = login_with((7, Vec::new()), Some("pw")).await;
        assert!(r
            .unwrap_err()
            .contains("authentication method 7 is not supported"));
        // SASL with channel binding only (TLS).
        let (r, _) = login_with((10, b"SCRAM-SHA-256-PLUS\0\0".to_vec()), Some("pw")).await;
        let e = r.unwrap_err();
        assert!(e.contains("SCRAM-SHA-256-PLUS"), "{e}");
    }
}
