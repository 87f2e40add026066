//! The closed loop of PostgreSQL requests on one thread, as pgbench runs its clients: every
//! session's socket sits in one epoll set ([`super::super::epoll_driver`]); a reply is parsed
//! in place ([`wire::Codec`]), its client's next request is written at once, and only then is
//! the reply recorded. No task, future or wake-up per request.
//!
//! It behaves as the async worker ([`super::PgWorker`]) does: each request is one
//! `Bind`/`Execute`/`Sync` of a statement the session prepared; an `ErrorResponse` is the
//! request's error and the session goes on; a session that ended before the request reached
//! it (a FATAL first, a close before any reply byte, a failed write) gets the request once
//! more on a new session; a session left in an unknown state (a timeout, a cut reply) is
//! reopened for the client's next request. A new session is opened inside the timed request,
//! off this thread: a task on the run's runtime logs in and prepares, and hands the session
//! back through an eventfd in the epoll set, so that the other clients' requests go on
//! meanwhile.

use super::super::epoll_driver::{self as ed, Core, Epoll, Protocol, Sent};
use super::wire::{self, Codec};
use super::{open_session, Shared};
use crate::recipe::DbOp;
use crate::runner::client::{ClientError, ClosedDriver, DriverCtl, ErrorClass};
use crate::runner::rng::Rng;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

/// The registration token of the eventfd that says a new session is ready.
const OPENED: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request on the session (or no session).
    Idle,
    /// The request is partly written.
    Writing,
    /// The request is written; the reply is awaited.
    Reading,
    /// A new session is being opened for this client.
    Opening,
}

struct Conn {
    fd: Option<OwnedFd>,
    codec: Codec,
    phase: Phase,
    /// The registration asks for writability too (a partial write).
    want_out: bool,
    /// The request in flight, encoded, and how much of it is written.
    request: Vec<u8>,
    written: usize,
    op: DbOp,
}

/// Sessions opened off the driver's thread: (client index, the session or why not).
type Opened = Vec<(usize, Result<(OwnedFd, Codec), ClientError>)>;

struct Mailbox {
    efd: OwnedFd,
    opened: Mutex<Opened>,
}

impl Mailbox {
    fn post(&self, i: usize, r: Result<(OwnedFd, Codec), ClientError>) {
        self.opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((i, r));
        let one = 1u64.to_ne_bytes();
        // SAFETY: a valid eventfd and an 8-byte buffer. A full counter (EAGAIN) still wakes.
        unsafe { libc::write(self.efd.as_raw_fd(), one.as_ptr().cast(), 8) };
    }

    fn take(&self) -> Opened {
        let mut n = [0u8; 8];
        // SAFETY: a valid non-blocking eventfd and an 8-byte buffer.
        unsafe { libc::read(self.efd.as_raw_fd(), n.as_mut_ptr().cast(), 8) };
        std::mem::take(&mut *self.opened.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

pub(super) struct PgDriver {
    core: Core,
    conns: Vec<Conn>,
    shared: Arc<Shared>,
    rt: tokio::runtime::Handle,
    mailbox: Arc<Mailbox>,
}

fn setup_err(m: String) -> ClientError {
    ClientError::new(ErrorClass::Other, "connect", m)
}

impl PgDriver {
    /// Open and prepare a session for each of `clients` (the engine's ids), before the timed
    /// region, and put them in a new epoll set. Sessions opened later go through the runtime
    /// this is called on.
    pub(super) async fn open(
        shared: Arc<Shared>,
        clients: &[u32],
    ) -> Result<PgDriver, ClientError> {
        let opened = futures_util::future::join_all(
            clients.iter().map(|_| open_session(&shared, "connect")),
        )
        .await;
        let epoll = Epoll::new().map_err(|e| setup_err(format!("epoll_create1: {e}")))?;
        // SAFETY: eventfd returns a new descriptor we own, or -1.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            let e = io::Error::last_os_error();
            return Err(setup_err(format!("eventfd: {e}")));
        }
        // SAFETY: as above.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        epoll
            .register(libc::EPOLL_CTL_ADD, efd.as_raw_fd(), OPENED, false)
            .map_err(|e| setup_err(format!("epoll: {e}")))?;
        let mut conns = Vec::with_capacity(clients.len());
        for (i, c) in opened.into_iter().enumerate() {
            let (fd, codec) = c?
                .into_std()
                .map_err(|e| setup_err(format!("session socket: {e}")))?;
            epoll
                .register(libc::EPOLL_CTL_ADD, fd.as_raw_fd(), i as u64, false)
                .map_err(|e| setup_err(format!("epoll: {e}")))?;
            conns.push(Conn {
                fd: Some(fd),
                codec,
                phase: Phase::Idle,
                want_out: false,
                request: Vec::with_capacity(256),
                written: 0,
                op: DbOp::Select,
            });
        }
        Ok(PgDriver {
            core: Core::new(epoll, clients),
            conns,
            shared,
            rt: tokio::runtime::Handle::current(),
            mailbox: Arc::new(Mailbox {
                efd,
                opened: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Ask for writability of client `i`'s socket too, or no longer.
    fn want_out(&mut self, i: usize, out: bool) -> io::Result<()> {
        let c = &mut self.conns[i];
        let fd = c.fd.as_ref().map(|s| s.as_raw_fd());
        self.core.epoll.want_out(fd, i as u64, &mut c.want_out, out)
    }

    /// Send client `i`'s request from its first byte: on its session, or on a new one.
    fn start(&mut self, ctl: &mut dyn DriverCtl, i: usize) {
        let c = &mut self.conns[i];
        match c.phase {
            // The request goes out once the new session is there.
            Phase::Opening => {}
            _ if c.fd.is_none() || !c.codec.usable() => self.reopen(i),
            _ => {
                c.codec.begin();
                c.written = 0;
                self.write(ctl, i);
            }
        }
    }

    /// Open a new session for client `i`, off this thread.
    fn reopen(&mut self, i: usize) {
        self.close(i);
        self.conns[i].phase = Phase::Opening;
        let (shared, mailbox) = (self.shared.clone(), self.mailbox.clone());
        self.rt.spawn(async move {
            // The login has the connect timeout; the statements' preparation gets it again.
            let within = 2 * shared.wire.connect_timeout;
            let r = match tokio::time::timeout(within, open_session(&shared, "reconnect")).await {
                Ok(Ok(c)) => c
                    .into_std()
                    .map_err(|e| ClientError::new(ErrorClass::Io, "reconnect", e.to_string())),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(ClientError::new(
                    ErrorClass::Timeout,
                    "reconnect",
                    format!("no new session within {within:?}"),
                )),
            };
            mailbox.post(i, r);
        });
    }

    /// The sessions opened since the last look: each takes its client's request, if it has
    /// one.
    fn opened(&mut self, ctl: &mut dyn DriverCtl) {
        for (i, r) in self.mailbox.take() {
            let Some(c) = self.conns.get_mut(i) else {
                continue;
            };
            c.phase = Phase::Idle;
            let (fd, codec) = match r {
                Ok(s) => s,
                Err(e) => {
                    ed::fail(self, ctl, i, e.class, e.message);
                    continue;
                }
            };
            let added =
                self.core
                    .epoll
                    .register(libc::EPOLL_CTL_ADD, fd.as_raw_fd(), i as u64, false);
            if let Err(e) = added {
                ed::fail(self, ctl, i, ErrorClass::Other, format!("epoll: {e}"));
                continue;
            }
            let c = &mut self.conns[i];
            c.fd = Some(fd);
            c.codec = codec;
            if self.core.flight(i).is_some() {
                self.start(ctl, i);
            }
        }
    }

    /// Write (the rest of) client `i`'s request.
    fn write(&mut self, ctl: &mut dyn DriverCtl, i: usize) {
        let c = &mut self.conns[i];
        let Some(fd) = c.fd.as_ref().map(|s| s.as_raw_fd()) else {
            return;
        };
        let (phase, out) = match ed::send_rest(fd, &c.request, &mut c.written) {
            Sent::All => (Phase::Reading, false),
            Sent::WouldBlock => (Phase::Writing, true),
            Sent::Failed(e) => {
                let e = c.codec.write_failed(e);
                return self.failed(ctl, i, e);
            }
        };
        c.phase = phase;
        if let Err(e) = self.want_out(i, out) {
            self.failed(ctl, i, wire::WireError::Io(e));
        }
    }

    /// Read what client `i`'s session has and parse it.
    fn read(&mut self, ctl: &mut dyn DriverCtl, i: usize) {
        let c = &mut self.conns[i];
        let Some(fd) = c.fd.as_ref() else {
            return;
        };
        let Some(r) = ed::recv(fd.as_raw_fd(), c.codec.room()) else {
            return;
        };
        let now = ctl.now_ns();
        match c.codec.filled(r) {
            Ok(true) => {
                if let Some(f) = self.core.flight(i) {
                    f.first_byte_ns.get_or_insert(now);
                }
            }
            Ok(false) => {}
            Err(e) => return self.failed(ctl, i, e),
        }
        let reply = match self.conns[i].codec.reply() {
            None => return,
            Some(Err(e)) if !self.conns[i].codec.usable() => return self.failed(ctl, i, e),
            // Well, or an error of the request alone: the session goes on.
            Some(r) => r.map_err(|e| (e.class(), e.to_string())),
        };
        self.conns[i].phase = Phase::Idle;
        let o = self.shared.outcome(self.conns[i].op, reply);
        if self.core.finished(i, o, now) {
            self.issue(ctl, i);
        }
    }

    /// Client `i`'s request failed with `e` and left its session unusable: a request the
    /// ended session never ran goes out once more on a new session; else the error is
    /// recorded (the session is reopened for the next request).
    fn failed(&mut self, ctl: &mut dyn DriverCtl, i: usize, e: wire::WireError) {
        let again = self.conns[i].codec.ended_before_reply();
        if let Some(f) = self.core.flight(i).filter(|f| again && !f.retried) {
            // The first byte is the resent request's reply, not the FATAL.
            f.retried = true;
            f.first_byte_ns = None;
            return self.reopen(i);
        }
        ed::fail(self, ctl, i, e.class(), e.to_string());
    }
}

impl Protocol for PgDriver {
    fn core(&mut self) -> &mut Core {
        &mut self.core
    }

    fn issue(&mut self, ctl: &mut dyn DriverCtl, i: usize) {
        let Some(f) = self.core.next(ctl, i, "") else {
            return;
        };
        let c = &mut self.conns[i];
        let mut rng = Rng::for_stream(ctl.seed(), f.seq);
        c.op = self.shared.encode_request(&mut rng, &mut c.request);
        let op = super::op_name(c.op);
        if let Some(f) = self.core.flight(i) {
            f.op = op;
        }
        self.start(ctl, i);
    }

    fn event(&mut self, ctl: &mut dyn DriverCtl, token: u64, events: u32) {
        if token == OPENED {
            return self.opened(ctl);
        }
        let i = token as usize;
        let Some(c) = self.conns.get(i) else {
            return;
        };
        let out_or_err = ed::out_or_err(events);
        match c.phase {
            // Bytes (or a close) on a session with no request: the server ends it (a FATAL
            // error, then the close) or says something nobody asked for. The client's next
            // request opens a new one.
            Phase::Idle => self.close(i),
            Phase::Writing if out_or_err => self.write(ctl, i),
            Phase::Reading => self.read(ctl, i),
            Phase::Writing | Phase::Opening => {}
        }
    }

    /// Close client `i`'s session (its descriptor leaves the epoll set as it closes); a
    /// session being opened stays on its way.
    fn close(&mut self, i: usize) {
        let c = &mut self.conns[i];
        c.fd = None;
        c.want_out = false;
        if c.phase != Phase::Opening {
            c.phase = Phase::Idle;
        }
    }
}

impl ClosedDriver for PgDriver {
    fn run(mut self: Box<Self>, ctl: &mut dyn DriverCtl) {
        ed::run(&mut *self, ctl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Workload;
    use crate::runner::client::scripted::ctl;
    use crate::runner::client::Outcome;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// What the scripted server does with a request.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Act {
        Ok,
        /// An `ErrorResponse` (ERROR, unique violation), then `ReadyForQuery`.
        Error,
        /// A FATAL `ErrorResponse` (admin shutdown), then the close.
        Fatal,
        /// `BindComplete`, then a FATAL and the close: the session ended during the request.
        FatalMidReply,
        /// No answer, until the client closes.
        Stall,
    }

    fn msg(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
        out.push(tag);
        out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        out.extend_from_slice(body);
    }

    fn error(severity: &str, code: &str) -> Vec<u8> {
        let mut b = Vec::new();
        for (f, v) in [
            (b'S', severity),
            (b'V', severity),
            (b'C', code),
            (b'M', "scripted"),
        ] {
            b.push(f);
            b.extend_from_slice(v.as_bytes());
            b.push(0);
        }
        b.push(0);
        b
    }

    /// Serve one session: trust login, then each `Sync` after `Parse`s answered with
    /// `ReadyForQuery`, each request with `act(the session's request number)`. Returns how
    /// many requests it read.
    fn session(c: &mut TcpStream, act: &dyn Fn(usize) -> Act) -> usize {
        let mut len = [0u8; 4];
        c.read_exact(&mut len).unwrap();
        let mut startup = vec![0; i32::from_be_bytes(len) as usize - 4];
        c.read_exact(&mut startup).unwrap();
        let mut out = Vec::new();
        msg(&mut out, b'R', &0i32.to_be_bytes());
        msg(&mut out, b'Z', b"I");
        c.write_all(&out).unwrap();
        let (mut parsed, mut n) = (false, 0);
        loop {
            let mut head = [0u8; 5];
            if c.read_exact(&mut head).is_err() {
                return n;
            }
            let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            let mut body = vec![0; len - 4];
            if c.read_exact(&mut body).is_err() {
                return n;
            }
            match head[0] {
                b'P' => parsed = true,
                b'S' if std::mem::take(&mut parsed) => {
                    out.clear();
                    msg(&mut out, b'Z', b"I");
                    c.write_all(&out).unwrap();
                }
                b'S' => {
                    n += 1;
                    out.clear();
                    match act(n) {
                        Act::Ok => {
                            msg(&mut out, b'2', b"");
                            msg(&mut out, b'C', b"DELETE 1\0");
                        }
                        Act::Error => msg(&mut out, b'E', &error("ERROR", "23505")),
                        Act::Fatal | Act::FatalMidReply => {
                            if act(n) == Act::FatalMidReply {
                                msg(&mut out, b'2', b"");
                            }
                            msg(&mut out, b'E', &error("FATAL", "57P01"));
                            c.write_all(&out).unwrap();
                            return n;
                        }
                        Act::Stall => {
                            let _ = c.read(&mut [0u8; 64]);
                            return n;
                        }
                    }
                    msg(&mut out, b'Z', b"I");
                    c.write_all(&out).unwrap();
                }
                _ => {}
            }
        }
    }

    /// A server that serves `sessions` sessions, the k-th (from 0) with `act(k, request)`;
    /// returns its port and the requests each session read.
    fn server(
        sessions: usize,
        act: impl Fn(usize, usize) -> Act + Send + Sync + 'static,
    ) -> (u16, std::thread::JoinHandle<Vec<usize>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let act = Arc::new(act);
        let h = std::thread::spawn(move || {
            let mut served = Vec::new();
            for k in 0..sessions {
                let (mut c, _) = l.accept().unwrap();
                let act = act.clone();
                served.push(std::thread::spawn(move || session(&mut c, &|n| act(k, n))));
            }
            drop(l);
            served.into_iter().map(|h| h.join().unwrap()).collect()
        });
        (port, h)
    }

    /// The driver of `clients` clients of a delete-only workload against `port`, opened on
    /// `rt` (which opens its later sessions).
    fn driver(rt: &tokio::runtime::Runtime, port: u16, clients: &[u32]) -> Box<PgDriver> {
        let yaml = format!(
            "benchmark: {{name: t}}\nservices:\n  - service_name: pg\n    service_type: database\n    runtime: external\n    host: 127.0.0.1\n    port: {port}\n    database: d\n    user: u\n    table_name: t\n    operation_mix: {{delete: 1.0}}\n"
        );
        let plan = crate::recipe::parse_str(&yaml, std::path::Path::new("t.yml"))
            .unwrap()
            .plan;
        let svc = &plan.services[0];
        let Workload::Database(wl) = &svc.workload else {
            panic!("not a database service");
        };
        let c = super::super::PostgresClient::new(svc, wl).unwrap();
        Box::new(
            rt.block_on(PgDriver::open(c.shared.clone(), clients))
                .unwrap(),
        )
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    fn classes(done: &[(u32, u64, Option<i64>, Outcome)]) -> Vec<Option<ErrorClass>> {
        done.iter().map(|d| d.3.error).collect()
    }

    /// An `ErrorResponse` is the request's error and the session goes on: two clients, one
    /// session each, every third request refused, nothing reopened.
    #[test]
    fn an_error_response_keeps_the_session() {
        let (port, srv) = server(2, |_, n| if n % 3 == 0 { Act::Error } else { Act::Ok });
        let rt = runtime();
        let mut c = ctl(30, None, 5_000);
        driver(&rt, port, &[0, 1]).run(&mut c);
        assert_eq!(c.done.len(), 30);
        let served = srv.join().unwrap();
        assert_eq!(
            served.iter().sum::<usize>(),
            30,
            "one session each: {served:?}"
        );
        let errors: Vec<_> = c.done.iter().filter(|d| d.3.error.is_some()).collect();
        let refused: usize = served.iter().map(|n| n / 3).sum();
        assert_eq!(errors.len(), refused, "{:?}", classes(&c.done));
        assert!(errors.iter().all(|d| d.3.op == "delete"
            && d.3.error == Some(ErrorClass::Other)
            && d.3
                .error_message
                .as_deref()
                .is_some_and(|m| m.contains("23505"))));
        assert!(
            c.done.iter().all(|d| d.2.is_some()),
            "every reply has a first byte"
        );
    }

    /// A session that ends (a FATAL first) gets the request once more on a new session,
    /// opened off the driver's thread; the request succeeds and its first byte is the new
    /// reply's.
    #[test]
    fn a_fatal_first_is_resent_on_a_new_session() {
        // Session 0 ends at its 3rd request; session 1 serves the rest.
        let (port, srv) = server(2, |k, n| {
            if k == 0 && n == 3 {
                Act::Fatal
            } else {
                Act::Ok
            }
        });
        let rt = runtime();
        let mut c = ctl(10, None, 5_000);
        driver(&rt, port, &[0]).run(&mut c);
        assert_eq!(classes(&c.done), vec![None; 10]);
        assert_eq!(srv.join().unwrap(), vec![3, 8]);
    }

    /// A session that ends during a request (its reply began) fails that request with the
    /// server's error: the request reached the server, which cut it short. The next request
    /// goes out on a new session.
    #[test]
    fn a_fatal_mid_reply_fails_the_request() {
        let (port, srv) = server(2, |k, n| {
            if k == 0 && n == 2 {
                Act::FatalMidReply
            } else {
                Act::Ok
            }
        });
        let rt = runtime();
        let mut c = ctl(4, None, 5_000);
        driver(&rt, port, &[0]).run(&mut c);
        let mut want = vec![None; 4];
        want[1] = Some(ErrorClass::Io);
        assert_eq!(classes(&c.done), want);
        let m = c.done[1].3.error_message.as_deref().unwrap_or_default();
        assert!(m.contains("FATAL") && m.contains("57P01"), "{m}");
        assert!(c.done[1].2.is_some(), "the reply's first byte came");
        assert_eq!(srv.join().unwrap(), vec![2, 2]);
    }

    /// A request unanswered within its timeout is recorded as timed out, its session closed,
    /// and the client's next request goes out on a new one.
    #[test]
    fn an_unanswered_request_times_out_and_the_next_gets_a_new_session() {
        let (port, srv) = server(2, |k, n| {
            if k == 0 && n == 2 {
                Act::Stall
            } else {
                Act::Ok
            }
        });
        let rt = runtime();
        let mut c = ctl(5, None, 200);
        driver(&rt, port, &[0]).run(&mut c);
        let mut want = vec![None; 5];
        want[1] = Some(ErrorClass::Timeout);
        assert_eq!(classes(&c.done), want);
        assert_eq!(c.done[1].3.op, "delete");
        assert_eq!(srv.join().unwrap(), vec![2, 3]);
    }

    /// A new session that cannot be opened fails the request that needed it, with the
    /// connect's error; the client goes on trying.
    #[test]
    fn a_refused_reopen_fails_the_request() {
        // One session, which ends at its 2nd request; the listener is gone by then.
        let (port, srv) = server(1, |_, n| if n == 2 { Act::Fatal } else { Act::Ok });
        let rt = runtime();
        let mut c = ctl(4, None, 5_000);
        driver(&rt, port, &[0]).run(&mut c);
        assert_eq!(c.done.len(), 4);
        assert_eq!(c.done[0].3.error, None);
        assert!(
            c.done[1..]
                .iter()
                .all(|d| d.3.error == Some(ErrorClass::Connect)
                    && d.3
                        .error_message
                        .as_deref()
                        .is_some_and(|m| m.contains("refused"))),
            "{:?}",
            c.done
        );
        assert_eq!(srv.join().unwrap(), vec![2]);
    }
}
