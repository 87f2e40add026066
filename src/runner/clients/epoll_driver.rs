//! The loop every socket closed-loop driver runs on one thread ([`super::http_driver`],
//! [`super::postgres`]'s): each client's connection is a non-blocking socket in one epoll
//! set, registered once (level-triggered, readable). One wait returns every connection with
//! bytes to read; the protocol reads and decodes them, issues each finished client's next
//! request at once, and only then are the finished requests recorded. No task, future, timer
//! or wake-up per request.
//!
//! The protocol ([`Protocol`]) knows its wire; this module knows the closed loop: who is in
//! flight and since when, timeouts (the connection is closed), errors (the client's next
//! request waits for the loop's next turn, so that a refused connection does not spin), a
//! stop (what is in flight gets the grace, then is recorded as cancelled).

use crate::runner::client::{DriverCtl, ErrorClass, Outcome};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The longest wait in the kernel: the loop looks at stops at least this often.
const WAIT_NS: i64 = 10_000_000;

/// An epoll set.
pub(crate) struct Epoll(OwnedFd);

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 returns a new descriptor we own, or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above: a valid descriptor nobody else owns.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Add `fd` (`op` `EPOLL_CTL_ADD`) or change its registration (`EPOLL_CTL_MOD`): readable,
    /// and writable too when `out`, reported with `token`.
    pub(crate) fn register(&self, op: i32, fd: RawFd, token: u64, out: bool) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | if out { libc::EPOLLOUT } else { 0 })
                as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open; `ev` lives across the call.
        if unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Ask for writability of `fd` (registered with `token`) too, or no longer, when
    /// `*registered` (what its registration asks for now) says otherwise.
    pub(crate) fn want_out(
        &self,
        fd: Option<RawFd>,
        token: u64,
        registered: &mut bool,
        out: bool,
    ) -> io::Result<()> {
        let Some(fd) = fd.filter(|_| *registered != out) else {
            return Ok(());
        };
        self.register(libc::EPOLL_CTL_MOD, fd, token, out)?;
        *registered = out;
        Ok(())
    }

    fn wait(&self, events: &mut [libc::epoll_event], wait_ms: i32) -> io::Result<usize> {
        // SAFETY: the epoll descriptor is open; `events` has room for `len` entries.
        let k = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                wait_ms,
            )
        };
        if k < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(k as usize)
    }
}

/// How far [`send_rest`] got.
pub(crate) enum Sent {
    All,
    /// The socket's buffer is full: the rest goes once it is writable.
    WouldBlock,
    Failed(io::Error),
}

/// Send `buf[*written..]` on the non-blocking socket `fd`, advancing `*written`, until all of
/// it is out, the socket is full, or an error.
pub(crate) fn send_rest(fd: RawFd, buf: &[u8], written: &mut usize) -> Sent {
    while *written < buf.len() {
        let rest = &buf[*written..];
        // SAFETY: a valid descriptor and a buffer we own, `rest.len()` bytes long.
        let n = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
        if n >= 0 {
            *written += n as usize;
            continue;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => return Sent::WouldBlock,
            _ => return Sent::Failed(e),
        }
    }
    Sent::All
}

/// Read what the non-blocking socket `fd` has into `room`: the byte count (0: the peer
/// closed) or the error; None when there was nothing after all.
pub(crate) fn recv(fd: RawFd, room: &mut [u8]) -> Option<io::Result<usize>> {
    // SAFETY: a valid descriptor and a buffer we own, `room.len()` bytes long.
    let n = unsafe { libc::recv(fd, room.as_mut_ptr().cast(), room.len(), 0) };
    if n >= 0 {
        return Some(Ok(n as usize));
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => None,
        _ => Some(Err(e)),
    }
}

/// Whether `events` (of a connection being connected or written) say it can go on: writable,
/// or an error or hang-up for the next write or connect check to report.
pub(crate) fn out_or_err(events: u32) -> bool {
    events & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0
}

/// A client's request in flight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flight {
    pub seq: u64,
    pub sent_ns: i64,
    pub first_byte_ns: Option<i64>,
    /// The operation, for the outcome of a timeout or a cancel.
    pub op: &'static str,
    /// It went out on a kept connection, not one opened for it (HTTP: only such a request is
    /// resent when its connection closes before answering).
    pub reused: bool,
    /// It went out once more on a new connection already.
    pub retried: bool,
}

/// What the loop keeps of one client.
pub(crate) struct Slot {
    /// The engine's id of this client.
    pub id: u32,
    pub flight: Option<Flight>,
    /// No more requests for this client.
    pub stopped: bool,
}

/// The closed loop's state, beside the protocol's connections (index `i` is the same client
/// in both).
pub(crate) struct Core {
    pub epoll: Epoll,
    slots: Vec<Slot>,
    /// Clients whose next request waits for the loop's next turn (after an error: issuing it
    /// at once could fail at once again).
    pending: Vec<usize>,
    /// Requests ended in this turn of the loop, recorded once every connection with
    /// something to read has had its next request sent: (client, request, done, outcome).
    ended: Vec<(u32, Flight, i64, Outcome)>,
}

impl Core {
    pub(crate) fn new(epoll: Epoll, clients: &[u32]) -> Core {
        Core {
            epoll,
            slots: clients
                .iter()
                .map(|&id| Slot {
                    id,
                    flight: None,
                    stopped: false,
                })
                .collect(),
            pending: Vec::new(),
            ended: Vec::new(),
        }
    }

    /// Client `i`'s next request, if the engine hands it one (it is then in flight); None
    /// once the client is done.
    pub(crate) fn next(
        &mut self,
        ctl: &mut dyn DriverCtl,
        i: usize,
        op: &'static str,
    ) -> Option<Flight> {
        let s = &mut self.slots[i];
        if s.stopped {
            return None;
        }
        let Some((seq, sent_ns)) = ctl.next(s.id) else {
            s.stopped = true;
            return None;
        };
        let f = Flight {
            seq,
            sent_ns,
            first_byte_ns: None,
            op,
            reused: false,
            retried: false,
        };
        s.flight = Some(f);
        Some(f)
    }

    /// Client `i`'s request ended well at `done_ns`; the protocol issues the client's next
    /// request before the loop records this one.
    pub(crate) fn finished(&mut self, i: usize, o: Outcome, done_ns: i64) -> bool {
        let s = &mut self.slots[i];
        let Some(f) = s.flight.take() else {
            return false;
        };
        self.ended.push((s.id, f, done_ns, o));
        true
    }

    pub(crate) fn flight(&mut self, i: usize) -> Option<&mut Flight> {
        self.slots[i].flight.as_mut()
    }

    fn in_flight(&self) -> bool {
        self.slots.iter().any(|s| s.flight.is_some())
    }

    fn record(&mut self, ctl: &mut dyn DriverCtl) {
        for (id, f, done_ns, o) in self.ended.drain(..) {
            ctl.done(id, f.seq, f.sent_ns, f.first_byte_ns, done_ns, &o);
        }
    }
}

/// A wire protocol driven by [`run`].
pub(crate) trait Protocol {
    fn core(&mut self) -> &mut Core;
    /// Hand out client `i`'s next request ([`Core::next`]), if the engine has one, and start
    /// it.
    fn issue(&mut self, ctl: &mut dyn DriverCtl, i: usize);
    /// The registration `token` has `events`.
    fn event(&mut self, ctl: &mut dyn DriverCtl, token: u64, events: u32);
    /// Close client `i`'s connection: its request ended other than well (its session's
    /// state is unknown).
    fn close(&mut self, i: usize);
}

/// Client `i`'s request ends with `o` at `done_ns` (an error, a timeout, a cancel): its
/// connection is closed, and its next request waits for the loop's next turn.
fn end_with<P: Protocol + ?Sized>(p: &mut P, i: usize, o: Outcome, done_ns: i64) {
    p.close(i);
    let core = p.core();
    let s = &mut core.slots[i];
    let Some(f) = s.flight.take() else {
        return;
    };
    let id = s.id;
    core.pending.push(i);
    core.ended.push((id, f, done_ns, o));
}

/// Client `i`'s request fails now with `class` and `m`.
pub(crate) fn fail<P: Protocol + ?Sized>(
    p: &mut P,
    ctl: &mut dyn DriverCtl,
    i: usize,
    class: ErrorClass,
    m: String,
) {
    let Some(op) = p.core().slots[i].flight.map(|f| f.op) else {
        return p.close(i);
    };
    let now = ctl.now_ns();
    end_with(p, i, Outcome::err(op, class, m), now);
}

/// The outcome of a request of `op` that had no answer within `timeout_ns`.
fn timed_out(op: &'static str, timeout_ns: i64) -> Outcome {
    let d = std::time::Duration::from_nanos(timeout_ns.max(0) as u64);
    Outcome::err(op, ErrorClass::Timeout, format!("no answer within {d:?}"))
}

/// Requests past their timeout are recorded as timed out (their connections closed);
/// returns the earliest deadline of those still in flight.
fn expire<P: Protocol + ?Sized>(p: &mut P, now: i64, timeout_ns: i64) -> Option<i64> {
    let mut earliest: Option<i64> = None;
    for i in 0..p.core().slots.len() {
        let Some(f) = p.core().slots[i].flight else {
            continue;
        };
        let deadline = f.sent_ns.saturating_add(timeout_ns);
        if now >= deadline {
            end_with(p, i, timed_out(f.op, timeout_ns), now);
        } else {
            earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
        }
    }
    earliest
}

/// End every request in flight now, each with `outcome(its flight)`; no client gets another.
fn end_all<P: Protocol + ?Sized>(
    p: &mut P,
    ctl: &mut dyn DriverCtl,
    outcome: impl Fn(&Flight) -> Outcome,
) {
    let now = ctl.now_ns();
    for i in 0..p.core().slots.len() {
        p.core().slots[i].stopped = true;
        if let Some(f) = p.core().slots[i].flight {
            end_with(p, i, outcome(&f), now);
        }
    }
    let core = p.core();
    core.pending.clear();
    core.record(ctl);
}

/// Run the closed loop of `p`'s clients until the engine hands out no more requests and
/// every request issued is recorded.
pub(crate) fn run<P: Protocol + ?Sized>(p: &mut P, ctl: &mut dyn DriverCtl) {
    let n = p.core().slots.len();
    let timeout_ns = ctl.timeout_ns().max(1);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; n.max(1) + 1];
    ctl.wait_start();
    for i in 0..n {
        p.issue(ctl, i);
    }
    let mut next_check_ns = ctl.now_ns() + timeout_ns.min(WAIT_NS);
    let mut stop_seen_ns: Option<i64> = None;
    loop {
        for i in std::mem::take(&mut p.core().pending) {
            p.issue(ctl, i);
        }
        let core = p.core();
        core.record(ctl);
        if !core.in_flight() && core.pending.is_empty() {
            break;
        }
        let now = ctl.now_ns();
        let wait_ms = if core.pending.is_empty() {
            ((next_check_ns - now).max(0) as u64).div_ceil(1_000_000) as i32
        } else {
            0
        };
        let k = match core.epoll.wait(&mut events, wait_ms) {
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => {
                // The epoll set itself failed: nothing more can be waited for.
                tracing::warn!("epoll_wait: {e}; the run stops here");
                let m = format!("epoll_wait: {e}");
                end_all(p, ctl, |f| Outcome::err(f.op, ErrorClass::Io, m.clone()));
                break;
            }
        };
        for ev in &events[..k] {
            let (token, evs) = (ev.u64, ev.events);
            p.event(ctl, token, evs);
        }
        // Every connection that had a response has its next request out: now record.
        p.core().record(ctl);
        let now = ctl.now_ns();
        if now < next_check_ns {
            continue;
        }
        // A stop ends the loop once the grace for what is in flight has passed.
        if ctl.stopping() {
            let since = *stop_seen_ns.get_or_insert(now);
            if now - since >= ctl.grace_ns() {
                end_all(p, ctl, |f| {
                    if now - f.sent_ns >= timeout_ns {
                        timed_out(f.op, timeout_ns)
                    } else {
                        let m = "run stopped while in flight";
                        Outcome::err(f.op, ErrorClass::Cancelled, m)
                    }
                });
                break;
            }
            for s in &mut p.core().slots {
                s.stopped = true;
            }
        }
        let earliest = expire(p, now, timeout_ns);
        next_check_ns = now + timeout_ns.min(WAIT_NS);
        if let Some(e) = earliest {
            next_check_ns = next_check_ns.min(e);
        }
    }
    p.core().record(ctl);
}
