//! The closed loop of plain-HTTP requests on one thread, as wrk runs it, on the shared epoll
//! loop ([`super::epoll_driver`]): each response is decoded in place
//! ([`super::http_decode`]), its client's next request is written at once, and only then is
//! the response recorded. No `epoll_ctl` per request (wrk makes two).
//!
//! It behaves as the lean worker ([`super::http_lean`]) does: the connection is kept alive;
//! before a request that is not idempotent, or on a connection idle for
//! [`PEEK_AFTER_IDLE_NS`], a peek tells whether the server closed it; a request whose kept
//! connection closed before any response (or that could not be written on it) goes out once
//! more on a new connection; a closed connection is reopened inside the timed request (a
//! non-blocking connect through the same epoll set). A request that outlives its timeout is
//! recorded as timed out and its connection closed; past a stop's grace, what is still in
//! flight is recorded as cancelled.
//!
//! Used for an unpaced closed loop of the lean path (the default for `http://`); one driver
//! per client thread, each with its share of the clients.

use super::epoll_driver::{self as ed, Core, Epoll, Protocol, Sent};
use super::http_decode::{Decoder, Progress, ReadError, Response, BUF_BYTES};
use super::http_lean::{still_open, PEEK_AFTER_IDLE_NS};
use super::http_target::{classify_io, status_outcome, Target};
use crate::runner::client::{ClientError, ClosedDriver, DriverCtl, ErrorClass, Outcome};
use socket2::{Protocol as IpProtocol, SockAddr, Socket, Type};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request on the connection (or no connection).
    Idle,
    /// A new connection's connect is under way.
    Connecting,
    /// The request is partly written.
    Writing,
    /// The request is written; the response is awaited.
    Reading,
}

struct Conn {
    sock: Option<Socket>,
    phase: Phase,
    /// The registration asks for writability too (a connect or a partial write).
    want_out: bool,
    /// Request bytes written so far.
    written: usize,
    buf: Box<[u8]>,
    /// Response bytes in `buf` not yet consumed by `dec`.
    end: usize,
    dec: Decoder,
    /// When the previous request was sent (`i64::MIN` before the first).
    last_sent_ns: i64,
}

pub(crate) struct HttpDriver {
    t: Arc<Target>,
    /// Where the connections opened at setup went: new ones go there too.
    addr: SockAddr,
    core: Core,
    conns: Vec<Conn>,
    head_request: bool,
    idempotent: bool,
}

fn setup_err(class: ErrorClass, m: String) -> ClientError {
    ClientError::new(class, "connect", m)
}

impl HttpDriver {
    /// Open a kept connection for each of `clients` (the engine's ids), before the timed
    /// region, and put them in a new epoll set.
    pub(crate) async fn open(t: Arc<Target>, clients: &[u32]) -> Result<HttpDriver, ClientError> {
        let opened =
            futures_util::future::join_all(clients.iter().map(|_| super::http_lean::connect(&t)))
                .await;
        let mut socks = Vec::with_capacity(clients.len());
        for s in opened {
            let s = s.map_err(|(class, m)| setup_err(class, m))?;
            let s = s.into_std().map_err(|e| {
                setup_err(ErrorClass::Other, format!("connect {}: {e}", t.authority))
            })?;
            socks.push(Socket::from(s));
        }
        let addr = match socks.first() {
            Some(s) => s.peer_addr().map_err(|e| {
                setup_err(ErrorClass::Connect, format!("connect {}: {e}", t.authority))
            })?,
            None => SockAddr::from(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        };
        let epoll = Epoll::new()
            .map_err(|e| setup_err(ErrorClass::Other, format!("epoll_create1: {e}")))?;
        let mut d = HttpDriver {
            head_request: t.method == hyper::Method::HEAD,
            idempotent: t.method.is_idempotent(),
            t,
            addr,
            core: Core::new(epoll, clients),
            conns: Vec::with_capacity(clients.len()),
        };
        for (i, s) in socks.into_iter().enumerate() {
            s.set_nonblocking(true)
                .and_then(|()| {
                    d.core
                        .epoll
                        .register(libc::EPOLL_CTL_ADD, s.as_raw_fd(), i as u64, false)
                })
                .map_err(|e| setup_err(ErrorClass::Other, format!("epoll: {e}")))?;
            d.conns.push(Conn {
                sock: Some(s),
                phase: Phase::Idle,
                want_out: false,
                written: 0,
                buf: vec![0u8; BUF_BYTES].into_boxed_slice(),
                end: 0,
                dec: Decoder::new(d.head_request),
                last_sent_ns: i64::MIN,
            });
        }
        Ok(d)
    }

    /// Ask for writability of connection `i` too, or no longer.
    fn want_out(&mut self, i: usize, out: bool) -> io::Result<()> {
        let c = &mut self.conns[i];
        let fd = c.sock.as_ref().map(|s| s.as_raw_fd());
        self.core.epoll.want_out(fd, i as u64, &mut c.want_out, out)
    }

    /// Send connection `i`'s request from its first byte: on the kept connection, or on a
    /// new one.
    fn start(&mut self, ctl: &mut dyn DriverCtl, i: usize) {
        let c = &mut self.conns[i];
        c.dec = Decoder::new(self.head_request);
        c.end = 0;
        c.written = 0;
        if c.sock.is_some() {
            self.write(ctl, i);
        } else {
            self.connect(ctl, i);
        }
    }

    /// A new connection for connection `i`'s request (inside the timed request).
    fn connect(&mut self, ctl: &mut dyn DriverCtl, i: usize) {
        if let Some(f) = self.core.flight(i) {
            f.reused = false;
        }
        let opened = Socket::new(
            self.addr.domain(),
            Type::STREAM.nonblocking().cloexec(),
            Some(IpProtocol::TCP),
        );
        let s = match opened {
            Ok(s) => s,
            Err(e) => return self.connect_failed(ctl, i, &e),
        };
        let _ = s.set_tcp_nodelay(true);
        let in_progress = match s.connect(&self.addr) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
            Err(e) => return self.connect_failed(ctl, i, &e),
        };
        let added =
            self.core
                .epoll
                .register(libc::EPOLL_CTL_ADD, s.as_raw_fd(), i as u64, in_progress);
        if let Err(e) = added {
            return self.connect_failed(ctl, i, &e);
        }
        let c = &mut self.conns[i];
        c.sock = Some(s);
        c.want_out = in_progress;
        if in_progress {
            c.phase = Phase::Connecting;
        } else {
            self.write(ctl, i);
        }
    }

    fn connect_failed(&mut self, ctl: &mut dyn DriverCtl, i: usize, e: &io::Error) {
        let m = format!("connect {}: {e}", self.t.authority);
        ed::fail(self, ctl, i, classify_io(e), m);
    }

    /// Write (the rest of) connection `i`'s request.
    fn write(&mut self, ctl: &mut dyn DriverCtl, i: usize) {
        let c = &mut self.conns[i];
        let Some(fd) = c.sock.as_ref().map(|s| s.as_raw_fd()) else {
            return;
        };
        let (phase, out) = match ed::send_rest(fd, &self.t.wire, &mut c.written) {
            Sent::All => (Phase::Reading, false),
            Sent::WouldBlock => (Phase::Writing, true),
            Sent::Failed(e) => {
                if let Some(f) = self.core.flight(i).filter(|f| f.reused && !f.retried) {
                    f.retried = true;
                    self.close(i);
                    return self.start(ctl, i);
                }
                let m = format!("{} {}: writing the request: {e}", self.t.method, self.t.uri);
                return ed::fail(self, ctl, i, classify_io(&e), m);
            }
        };
        c.phase = phase;
        if let Err(e) = self.want_out(i, out) {
            self.read_failed(ctl, i, ReadError::Io(format!("epoll: {e}")));
        }
    }

    /// Read what connection `i` has and decode it.
    fn read(&mut self, ctl: &mut dyn DriverCtl, i: usize) {
        let c = &mut self.conns[i];
        let Some(s) = c.sock.as_ref() else {
            return;
        };
        let n = match ed::recv(s.as_raw_fd(), &mut c.buf[c.end..]) {
            None => return,
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                let err = c.dec.read_failed(c.end, &e);
                return self.read_failed(ctl, i, err);
            }
        };
        let now = ctl.now_ns();
        if n == 0 {
            return match c.dec.eof(c.end) {
                Ok(r) => self.finish(ctl, i, r, now),
                Err(e) => self.read_failed(ctl, i, e),
            };
        }
        c.end += n;
        match c.dec.advance(&mut c.buf, &mut c.end) {
            Ok(p) => {
                if c.dec.head_done() {
                    if let Some(f) = self.core.flight(i) {
                        f.first_byte_ns.get_or_insert(now);
                    }
                }
                if let Progress::Done(r) = p {
                    self.finish(ctl, i, r, now);
                }
            }
            Err(e) => self.read_failed(ctl, i, e),
        }
    }

    /// Connection `i`'s response `r` is whole at `done_ns`: its client's next request goes
    /// out, then the response is recorded.
    fn finish(&mut self, ctl: &mut dyn DriverCtl, i: usize, r: Response, done_ns: i64) {
        if !r.keep {
            self.close(i);
        }
        self.conns[i].phase = Phase::Idle;
        let t = &self.t;
        let mut o = Outcome::ok(t.op);
        o.bytes_sent = t.body.len() as u64;
        o.size_bytes = t.body.len() as u64;
        o.bytes_received = r.body_bytes;
        let o = status_outcome(t, o, r.status);
        if self.core.finished(i, o, done_ns) {
            self.issue(ctl, i);
        }
    }

    /// Connection `i`'s response could not be read: a request cut off on a kept connection
    /// goes out once more on a new one (idempotent requests only), else the error is
    /// recorded.
    fn read_failed(&mut self, ctl: &mut dyn DriverCtl, i: usize, e: ReadError) {
        let (method, uri) = (&self.t.method, &self.t.uri);
        let (class, m) = match e {
            ReadError::ClosedBeforeResponse(m) => {
                let idempotent = self.idempotent;
                if let Some(f) = self.core.flight(i).filter(|f| f.reused && !f.retried) {
                    if idempotent {
                        f.retried = true;
                        self.close(i);
                        return self.start(ctl, i);
                    }
                }
                (
                    ErrorClass::Io,
                    format!("{method} {uri}: connection closed: {m}"),
                )
            }
            ReadError::Io(m) => (ErrorClass::Io, format!("{method} {uri}: {m}")),
            ReadError::Protocol(m) => (ErrorClass::Protocol, format!("{method} {uri}: {m}")),
        };
        ed::fail(self, ctl, i, class, m);
    }
}

impl Protocol for HttpDriver {
    fn core(&mut self) -> &mut Core {
        &mut self.core
    }

    fn issue(&mut self, ctl: &mut dyn DriverCtl, i: usize) {
        let Some(f) = self.core.next(ctl, i, self.t.op) else {
            return;
        };
        let c = &mut self.conns[i];
        let idle_ns = f.sent_ns.saturating_sub(c.last_sent_ns);
        c.last_sent_ns = f.sent_ns;
        let check = !self.idempotent || idle_ns >= PEEK_AFTER_IDLE_NS;
        if check && c.sock.as_ref().is_some_and(|s| !still_open(s.as_raw_fd())) {
            self.close(i);
        }
        let reused = self.conns[i].sock.is_some();
        if let Some(f) = self.core.flight(i) {
            f.reused = reused;
        }
        self.start(ctl, i);
    }

    /// Connection `i` is readable (or its connect ended, or it can take more of the request).
    fn event(&mut self, ctl: &mut dyn DriverCtl, token: u64, events: u32) {
        let i = token as usize;
        let Some(c) = self.conns.get(i) else {
            return;
        };
        let out_or_err = ed::out_or_err(events);
        match c.phase {
            // Bytes (or a close) on a connection with no request: the server closed it or
            // said something nobody asked for. Either way it cannot carry the next request.
            Phase::Idle => self.close(i),
            Phase::Connecting if out_or_err => {
                let err = c.sock.as_ref().map(|s| s.take_error());
                match err {
                    Some(Ok(None)) => {
                        self.conns[i].phase = Phase::Writing;
                        self.write(ctl, i);
                    }
                    Some(Ok(Some(e)) | Err(e)) => self.connect_failed(ctl, i, &e),
                    None => {}
                }
            }
            Phase::Writing if out_or_err => self.write(ctl, i),
            Phase::Reading => self.read(ctl, i),
            Phase::Connecting | Phase::Writing => {}
        }
    }

    /// Close connection `i` (its descriptor leaves the epoll set as it closes).
    fn close(&mut self, i: usize) {
        let c = &mut self.conns[i];
        c.sock = None;
        c.want_out = false;
        c.phase = Phase::Idle;
    }
}

impl ClosedDriver for HttpDriver {
    fn run(mut self: Box<Self>, ctl: &mut dyn DriverCtl) {
        ed::run(&mut *self, ctl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::client::scripted::ctl;
    use crate::runner::clients::http::HttpClient;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// A server on its own thread: it accepts `conns` connections (then closes its listener)
    /// and serves each on a thread of its own with `serve`, which returns how many requests
    /// it read; the server returns their sum once every connection is done.
    fn server(
        conns: usize,
        serve: impl Fn(&mut TcpStream) -> usize + Send + Sync + 'static,
    ) -> (String, std::thread::JoinHandle<usize>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", l.local_addr().unwrap());
        let serve = Arc::new(serve);
        let h = std::thread::spawn(move || {
            let mut served = Vec::new();
            for _ in 0..conns {
                let (mut c, _) = l.accept().unwrap();
                let serve = serve.clone();
                served.push(std::thread::spawn(move || serve(&mut c)));
            }
            drop(l);
            served.into_iter().map(|h| h.join().unwrap()).sum()
        });
        (url, h)
    }

    /// Wait until the client closes `c`.
    fn until_closed(c: &mut TcpStream) {
        let _ = c.read(&mut [0u8; 64]);
    }

    /// Read one request head (the driver's requests have no body); false at EOF.
    fn read_request(c: &mut TcpStream) -> bool {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match c.read(&mut b) {
                Ok(1) => head.push(b[0]),
                _ => return false,
            }
        }
        true
    }

    fn driver(url: &str, method: hyper::Method, clients: &[u32]) -> Box<HttpDriver> {
        let t = HttpClient::for_test_method(url, method).target();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Box::new(rt.block_on(HttpDriver::open(t, clients)).unwrap())
    }

    /// Two clients on kept connections: every framing (length, chunked in pieces, no body),
    /// each response recorded with its status, size and first byte, and no connection opened
    /// beyond the two of the setup.
    #[test]
    fn kept_connections_serve_every_framing() {
        let (url, srv) = server(2, |c| {
            let mut n = 0;
            while read_request(c) {
                n += 1;
                let parts: &[&[u8]] = match n % 3 {
                    0 => &[b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"],
                    1 => &[
                        b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3\r\nab",
                        b"c\r\n0\r\n\r\n",
                    ],
                    _ => &[b"HTTP/1.1 204 No Content\r\n\r\n"],
                };
                for p in parts {
                    c.write_all(p).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            n
        });
        let mut c = ctl(30, None, 5_000);
        driver(&url, hyper::Method::GET, &[4, 9]).run(&mut c);
        assert_eq!(c.done.len(), 30);
        let mut seqs: Vec<u64> = c.done.iter().map(|d| d.1).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..30).collect::<Vec<_>>());
        for (client, _, fb, o) in &c.done {
            assert!([4, 9].contains(client), "{client}");
            assert_eq!(o.error, None, "{o:?}");
            let want = match o.http_status {
                Some(200) => 5,
                Some(201) => 3,
                Some(204) => 0,
                s => panic!("status {s:?}"),
            };
            assert_eq!(o.bytes_received, want);
            assert!(fb.is_some(), "{o:?}");
        }
        // The driver is dropped: both connections close, the server counts every request.
        assert_eq!(srv.join().unwrap(), 30);
    }

    /// A server that closes each connection after one response without saying so: every
    /// request after the first on a connection meets the close and goes out once more on a
    /// new connection (a GET); all succeed.
    #[test]
    fn a_silent_close_is_resent_on_a_new_connection() {
        let (url, srv) = server(5, |c| {
            if !read_request(c) {
                return 0;
            }
            c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .unwrap();
            let _ = c.shutdown(std::net::Shutdown::Both);
            1
        });
        let mut c = ctl(5, None, 5_000);
        driver(&url, hyper::Method::GET, &[0]).run(&mut c);
        assert_eq!(c.done.len(), 5);
        for (_, _, _, o) in &c.done {
            assert_eq!((o.error, o.http_status), (None, Some(200)), "{o:?}");
        }
        drop(TcpStream::connect(
            url.trim_start_matches("http://").trim_end_matches("/x"),
        ));
        assert_eq!(srv.join().unwrap(), 5);
    }

    /// A server that never answers: each request is recorded as timed out at its timeout,
    /// and the client goes on with a new connection.
    #[test]
    fn unanswered_requests_time_out_and_the_client_goes_on() {
        let (url, srv) = server(2, |c| {
            let n = usize::from(read_request(c));
            until_closed(c);
            n
        });
        let mut c = ctl(2, None, 40);
        let t0 = std::time::Instant::now();
        driver(&url, hyper::Method::GET, &[0]).run(&mut c);
        assert_eq!(c.done.len(), 2, "{:?}", c.done);
        for (_, _, _, o) in &c.done {
            assert_eq!(o.error, Some(ErrorClass::Timeout), "{o:?}");
            assert_eq!(o.op, "GET");
        }
        assert!(t0.elapsed() >= std::time::Duration::from_millis(80));
        assert_eq!(srv.join().unwrap(), 2);
    }

    /// A stop while requests are in flight: no more go out; past the grace, what is in
    /// flight is recorded as cancelled.
    #[test]
    fn a_stop_cancels_what_is_in_flight_after_the_grace() {
        let (url, srv) = server(2, |c| {
            let n = usize::from(read_request(c));
            until_closed(c);
            n
        });
        let mut c = ctl(10, Some(2), 60_000);
        driver(&url, hyper::Method::GET, &[0, 1]).run(&mut c);
        assert_eq!(c.done.len(), 2, "{:?}", c.done);
        for (_, _, _, o) in &c.done {
            assert_eq!(o.error, Some(ErrorClass::Cancelled), "{o:?}");
        }
        assert_eq!(srv.join().unwrap(), 2);
    }

    /// The server goes away after the first response (and says `connection: close`): the
    /// next requests cannot connect; each is recorded as a connect error, the loop goes on
    /// until the budget is spent.
    #[test]
    fn a_refused_reconnect_is_an_error_of_that_request() {
        let (url, srv) = server(1, |c| {
            read_request(c);
            c.write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
            1
        });
        let mut c = ctl(4, None, 5_000);
        // The server closes its listener once it has the one connection of the setup.
        driver(&url, hyper::Method::GET, &[0]).run(&mut c);
        assert_eq!(srv.join().unwrap(), 1);
        c.done.sort_by_key(|d| d.1);
        assert_eq!(c.done.len(), 4);
        assert_eq!(c.done[0].3.error, None);
        for (_, _, _, o) in &c.done[1..] {
            assert_eq!(o.error, Some(ErrorClass::Connect), "{o:?}");
            assert!(
                o.error_message.as_deref().unwrap_or("").contains("connect"),
                "{o:?}"
            );
        }
    }

    /// A POST is never resent: before it goes out on a connection idle or not, the peek
    /// looks for a close; with a server that closes after each response, each POST goes out
    /// on a new connection and succeeds.
    #[test]
    fn a_post_is_preceded_by_the_peek() {
        let (url, srv) = server(3, |c| {
            if !read_request(c) {
                return 0;
            }
            c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .unwrap();
            let _ = c.shutdown(std::net::Shutdown::Both);
            1
        });
        let mut c = ctl(3, None, 5_000);
        // Each close reaches the client before its next request: the peek sees it.
        c.pace = std::time::Duration::from_millis(20);
        driver(&url, hyper::Method::POST, &[0]).run(&mut c);
        for (_, _, _, o) in &c.done {
            assert_eq!((o.error, o.http_status), (None, Some(200)), "{o:?}");
        }
        assert_eq!(c.done.len(), 3);
        assert_eq!(srv.join().unwrap(), 3);
    }
}
