//! The closed loop of block I/O on one thread: every client's read or write goes into one
//! io_uring owned by that thread. One wait reaps every completion there is; each completed
//! client's next I/O is submitted at once (as fio's libaio engine does), and only then are the
//! completions recorded. No task, future, lock or wake-up per I/O: the engine's path costs a
//! runtime wake-up of the reaper and another of the worker for every I/O.
//!
//! Used for an unpaced closed loop whose operations all go through the ring (block I/O reads,
//! and writes without fsync/fdatasync), where the kernel has io_uring with timed waits
//! (Linux 5.11). Every other loop keeps the engine's one task per client.
//!
//! Buffers and files: one read and one write buffer per client (the write buffer seeded as
//! the engine path's), registered with the ring when the kernel agrees; the working-set files
//! are opened once and registered too. An I/O that outlives the request timeout is recorded
//! as timed out and its buffer stays with the ring until the kernel completes it; the client
//! goes on with a fresh buffer. Past a stop's grace, what is still in flight is recorded as
//! cancelled, and its buffers are leaked rather than freed under the kernel.

use super::{block_file, block_target, op_name, uring, AlignedBuf, Plan, Prepared};
use crate::recipe::{FileOp, FileStorageWorkload};
use crate::runner::client::{ClientError, ClosedDriver, DriverCtl, ErrorClass, Outcome};
use crate::runner::rng::Rng;
use io_uring::{cqueue, types, IoUring};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// The longest single wait in the kernel, ns: the loop looks at stops and timeouts this often
/// when no I/O completes.
const WAIT_NS: u32 = 10_000_000;

/// One client's I/O in flight.
#[derive(Clone, Copy)]
struct Flight {
    seq: u64,
    sent_ns: i64,
    op: FileOp,
    offset: u64,
    /// Matches the completion's `user_data` (a completion of an abandoned I/O does not).
    gen: u32,
}

struct ClientIo {
    /// The engine's id of this client.
    id: u32,
    rbuf: AlignedBuf,
    wbuf: AlignedBuf,
    /// Registered buffer indices of `rbuf` and `wbuf` (None: plain buffer).
    rfixed: Option<u16>,
    wfixed: Option<u16>,
    flight: Option<Flight>,
    gen: u32,
    /// No more requests for this client.
    stopped: bool,
}

pub struct FileDriver {
    // Field order is drop order: the ring goes before the buffers and files it may use.
    ring: IoUring,
    w: FileStorageWorkload,
    io: u64,
    files: Vec<(File, u64)>,
    /// Whether the files are registered (the ring's file table index = position in `files`).
    files_fixed: bool,
    clients: Vec<ClientIo>,
    /// Buffers of I/Os that timed out, kept until the kernel completes them (user_data).
    abandoned: Vec<(u64, AlignedBuf)>,
}

/// The driver for the clients `clients` (the engine's ids) of `w`, when this loop can have one: every operation of
/// the mix goes through the ring, and the kernel gives a ring with timed waits. None
/// otherwise (the engine's path); an error when a working-set file cannot be opened.
pub fn prepare(
    w: &FileStorageWorkload,
    prepared: &Prepared,
    seed: u64,
    clients: &[u32],
) -> Result<Option<Box<dyn ClosedDriver>>, ClientError> {
    let Some(io) = w.io_size_bytes else {
        return Ok(None);
    };
    let ring_ops = w.mix.weights.iter().all(|(op, _)| match op {
        FileOp::Read => true,
        FileOp::Write => super::ring_writes(w.sync_mode),
        FileOp::Stat | FileOp::Delete => false,
    });
    if !ring_ops || clients.is_empty() || clients.len() > 4096 {
        return Ok(None);
    }
    let files = super::open_block_files(w, prepared, io)?;
    Ok(FileDriver::new(w, io, files, clients, seed).map(|d| Box::new(d) as Box<dyn ClosedDriver>))
}

impl FileDriver {
    /// A ring for the clients `clients` (the engine's ids) doing `io`-byte I/O on `files` (file, size), with the
    /// files and every client's buffers registered where the kernel agrees. None where the
    /// kernel gives no ring with timed waits.
    fn new(
        w: &FileStorageWorkload,
        io: u64,
        files: Vec<(File, u64)>,
        clients: &[u32],
        seed: u64,
    ) -> Option<FileDriver> {
        let entries = (clients.len() as u32).next_power_of_two().max(8);
        let built = IoUring::builder()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .build(entries);
        let ring = match built.or_else(|_| IoUring::new(entries)) {
            Ok(r) if r.params().is_feature_ext_arg() => r,
            Ok(_) => {
                tracing::debug!("io_uring without timed waits (Linux < 5.11): one task per client");
                return None;
            }
            Err(e) => {
                tracing::debug!("io_uring refused ({e}): one task per client");
                return None;
            }
        };
        let fds: Vec<i32> = files.iter().map(|(f, _)| f.as_raw_fd()).collect();
        let files_fixed = ring.submitter().register_files(&fds).is_ok();
        let mut cs: Vec<ClientIo> = clients
            .iter()
            .map(|&id| {
                ClientIo {
                    id,
                    rbuf: AlignedBuf::new(io as usize),
                    // The engine path's write payload of this worker.
                    wbuf: super::write_payload(seed, id, io as usize),
                    rfixed: None,
                    wfixed: None,
                    flight: None,
                    gen: 0,
                    stopped: false,
                }
            })
            .collect();
        let iovs: Vec<libc::iovec> = cs
            .iter()
            .flat_map(|c| [&c.rbuf, &c.wbuf])
            .map(|b| libc::iovec {
                iov_base: b.ptr.cast(),
                iov_len: b.len,
            })
            .collect();
        // SAFETY: the buffers live in `cs`, which the driver owns and drops after the ring (field
        // order); a buffer replaced after a timeout is kept in `abandoned` until its I/O completes.
        if unsafe { ring.submitter().register_buffers(&iovs) }.is_ok() {
            for (i, c) in cs.iter_mut().enumerate() {
                c.rfixed = Some((2 * i) as u16);
                c.wfixed = Some((2 * i + 1) as u16);
            }
        }
        Some(FileDriver {
            ring,
            w: w.clone(),
            io,
            files,
            files_fixed,
            clients: cs,
            abandoned: Vec::new(),
        })
    }
}

fn user_data(client: u32, gen: u32) -> u64 {
    u64::from(client) | (u64::from(gen) << 32)
}

impl FileDriver {
    /// Queue `client`'s next I/O, if the engine hands one out. False when the client is done.
    fn issue(&mut self, ctl: &mut dyn DriverCtl, client: u32, rng_seed: u64) -> bool {
        let id = self.clients[client as usize].id;
        let Some((seq, sent_ns)) = ctl.next(id) else {
            self.clients[client as usize].stopped = true;
            return false;
        };
        // The engine path's draws, in its order (the size class plays no part in block I/O).
        let mut rng = Rng::for_stream(rng_seed, seq);
        let op = self.w.mix.pick(rng.next_f64());
        let _size = rng.next_f64();
        let plan = Plan {
            op,
            class: 0,
            file: rng.next_u64(),
            block: rng.next_u64(),
            seq,
        };
        let (f, offset) = block_target(&self.files, &plan, self.io);
        let fi = block_file(&self.files, &plan) as u32;
        let c = &mut self.clients[client as usize];
        c.gen = c.gen.wrapping_add(1);
        let read = op == FileOp::Read;
        let (buf, fixed) = if read {
            (c.rbuf.ptr, c.rfixed)
        } else {
            (c.wbuf.ptr, c.wfixed)
        };
        let target = uring::Target {
            fd: f.as_raw_fd(),
            fixed: self.files_fixed.then_some(fi),
        };
        let dir = if read {
            uring::Dir::Read
        } else {
            uring::Dir::Write
        };
        let e = uring::entry(dir, target, buf, self.io as u32, offset, fixed);
        let e = e.user_data(user_data(client, c.gen));
        let flight = Flight {
            seq,
            sent_ns,
            op,
            offset,
            gen: c.gen,
        };
        // At most one I/O per client is queued and the ring has an entry per client, but a
        // full queue is submitted rather than trusted, and a queue that stays full (a ring
        // the kernel no longer serves) ends this client with the error, not in a spin.
        let mut tries = 0;
        // SAFETY: the buffer stays allocated until the completion (or is leaked).
        while unsafe { self.ring.submission().push(&e) }.is_err() {
            tries += 1;
            let submitted = self.ring.submit();
            if tries >= 100 {
                let why = match submitted {
                    Err(err) => format!("io_uring submission queue stays full: {err}"),
                    Ok(_) => "io_uring submission queue stays full".to_string(),
                };
                self.clients[client as usize].stopped = true;
                let o = Outcome::err(op_name(op), ErrorClass::Io, why);
                ctl.done(id, seq, sent_ns, None, ctl.now_ns(), &o);
                return false;
            }
        }
        self.clients[client as usize].flight = Some(flight);
        // Submitted at once, as fio's libaio engine does: on a device that is not CPU-bound,
        // an I/O held back to share a submit with the next ones costs more in the device's
        // idle time than the system call saves (measured in bench/file-vs-fio.sh: batched
        // submits gave 0.86-0.93 of fio's IOPS, one submit per I/O 0.90-1.05). A failed
        // submit leaves the entry queued for the next wait's.
        if let Err(err) = self.ring.submit() {
            tracing::debug!("io_uring submit: {err}");
        }
        true
    }

    /// The outcome of the I/O `f` whose completion says `res` (bytes, or -errno).
    fn outcome(&self, f: &Flight, res: i32) -> Outcome {
        let name = op_name(f.op);
        let io = self.io;
        match res {
            n if n >= 0 && n as u64 == io => {
                let mut o = Outcome::ok(name);
                o.size_bytes = io;
                if f.op == FileOp::Read {
                    o.bytes_received = io;
                } else {
                    o.bytes_sent = io;
                }
                o
            }
            n if n >= 0 => Outcome::err(
                name,
                ErrorClass::Io,
                format!("offset {}: short {name}: {n} of {io} bytes", f.offset),
            ),
            n => Outcome::err(
                name,
                ErrorClass::Io,
                format!("offset {}: {}", f.offset, io::Error::from_raw_os_error(-n)),
            ),
        }
    }

    /// `client`'s I/O in flight ends without its completion (timed out or cancelled): its
    /// buffer stays with the ring until the kernel is done, the client gets a fresh one.
    fn abandon(
        &mut self,
        ctl: &mut dyn DriverCtl,
        client: u32,
        class: ErrorClass,
        message: &str,
        now_ns: i64,
    ) {
        let c = &mut self.clients[client as usize];
        let Some(f) = c.flight else {
            return;
        };
        let o = Outcome::err(op_name(f.op), class, message);
        let len = self.io as usize;
        let (slot, fixed) = if f.op == FileOp::Read {
            (&mut c.rbuf, &mut c.rfixed)
        } else {
            (&mut c.wbuf, &mut c.wfixed)
        };
        let mut fresh = AlignedBuf::new(len);
        if f.op == FileOp::Write {
            fresh.as_mut_slice().copy_from_slice(slot.as_slice());
        }
        let old = std::mem::replace(slot, fresh);
        *fixed = None;
        self.abandoned.push((user_data(client, f.gen), old));
        c.flight = None;
        ctl.done(c.id, f.seq, f.sent_ns, None, now_ns, &o);
    }

    fn in_flight(&self) -> usize {
        self.clients.iter().filter(|c| c.flight.is_some()).count()
    }
}

impl ClosedDriver for FileDriver {
    fn run(mut self: Box<Self>, ctl: &mut dyn DriverCtl) {
        let n = self.clients.len() as u32;
        let seed = ctl.seed();
        let timeout_ns = ctl.timeout_ns();
        let late_message = format!(
            "no answer within {:?}",
            std::time::Duration::from_nanos(timeout_ns.max(0) as u64)
        );
        ctl.wait_start();
        for i in 0..n {
            self.issue(ctl, i, seed);
        }
        let mut done: Vec<(u64, i32)> = Vec::with_capacity(self.clients.len() * 2);
        let mut ended: Vec<(u32, Flight, i32)> = Vec::with_capacity(self.clients.len());
        let mut next_check_ns = ctl.now_ns() + i64::from(WAIT_NS);
        let mut stop_seen_ns: Option<i64> = None;
        loop {
            if self.in_flight() == 0 && self.clients.iter().all(|c| c.stopped) {
                break;
            }
            let ts = types::Timespec::new().nsec(WAIT_NS);
            let args = types::SubmitArgs::new().timespec(&ts);
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ETIME)
                            | Some(libc::EINTR)
                            | Some(libc::EBUSY)
                            | Some(libc::EAGAIN)
                    ) => {}
                Err(e) => {
                    // The ring itself failed: nothing more can be issued or waited for.
                    tracing::warn!("io_uring: {e}; the run stops here");
                    let now = ctl.now_ns();
                    let message = format!("io_uring: {e}");
                    for i in 0..n {
                        self.clients[i as usize].stopped = true;
                        self.abandon(ctl, i, ErrorClass::Io, &message, now);
                    }
                    break;
                }
            }
            let done_ns = ctl.now_ns();
            done.clear();
            {
                let mut cq = self.ring.completion();
                cq.sync();
                done.extend(cq.map(|e: cqueue::Entry| (e.user_data(), e.result())));
            }
            // Every completed client's next I/O goes to the kernel first (each submitted as
            // it is queued), then the completions are recorded: the device is not left short
            // of I/Os while the recorder works.
            ended.clear();
            for &(ud, res) in &done {
                let client = (ud & 0xFFFF_FFFF) as u32;
                let gen = (ud >> 32) as u32;
                let c = self.clients.get_mut(client as usize);
                let Some(f) = c.and_then(|c| c.flight.take_if(|f| f.gen == gen)) else {
                    // An abandoned I/O: now its buffer may go.
                    self.abandoned.retain(|(u, _)| *u != ud);
                    continue;
                };
                ended.push((client, f, res));
                if !self.clients[client as usize].stopped {
                    self.issue(ctl, client, seed);
                }
            }
            for (client, f, res) in &ended {
                let o = self.outcome(f, *res);
                let id = self.clients[*client as usize].id;
                ctl.done(id, f.seq, f.sent_ns, None, done_ns, &o);
            }
            if done_ns < next_check_ns {
                continue;
            }
            next_check_ns = done_ns + i64::from(WAIT_NS);
            // Idle clients (a request budget or the end reached) stay stopped; a stop ends
            // the loop once the grace for what is in flight has passed.
            if ctl.stopping() {
                let since = *stop_seen_ns.get_or_insert(done_ns);
                for c in &mut self.clients {
                    c.stopped = true;
                }
                if done_ns - since >= ctl.grace_ns() {
                    for i in 0..n {
                        let m = "run stopped while in flight";
                        self.abandon(ctl, i, ErrorClass::Cancelled, m, done_ns);
                    }
                    break;
                }
            }
            for i in 0..n {
                let late = self.clients[i as usize]
                    .flight
                    .is_some_and(|f| done_ns - f.sent_ns >= timeout_ns);
                if late {
                    self.abandon(ctl, i, ErrorClass::Timeout, &late_message, done_ns);
                    if !self.clients[i as usize].stopped {
                        self.issue(ctl, i, seed);
                    }
                }
            }
        }
        if !self.abandoned.is_empty() {
            // The kernel may still write into these: never free them under it.
            tracing::debug!(
                "{} I/O still in the kernel at the end: buffers kept",
                self.abandoned.len()
            );
            for (_, b) in self.abandoned.drain(..) {
                std::mem::forget(b);
            }
            // The ring's drop waits for nothing; its registered buffers are leaked with it.
            let me = *self;
            std::mem::forget(me.ring);
            std::mem::forget(me.clients);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::workload::{Mix, SizeMix};
    use crate::recipe::{IoEngine, SyncMode};
    use crate::runner::client::scripted::ctl;
    use std::os::fd::FromRawFd;

    fn workload(op: FileOp) -> FileStorageWorkload {
        FileStorageWorkload {
            base_path: "/nonexistent".into(),
            mix: Mix {
                weights: vec![(op, 1.0)],
            },
            file_sizes: SizeMix {
                weights: vec![(4096, 1.0)],
            },
            use_direct_io: false,
            sync_mode: SyncMode::None,
            working_set_files: 1,
            io_size_bytes: Some(4096),
            io_engine: IoEngine::IoUring,
        }
    }

    /// A pipe's read end as the only "file": a read of it waits until the test writes.
    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two fresh descriptors we then own.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: as above.
        unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
    }

    #[test]
    fn reads_that_complete_are_recorded_whole_with_their_client() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 64 * 1024]).unwrap();
        let f = File::options().read(true).write(true).open(&p).unwrap();
        let w = workload(FileOp::Read);
        let Some(d) = FileDriver::new(&w, 4096, vec![(f, 64 * 1024)], &[0, 1, 2, 3], 1) else {
            eprintln!("no io_uring with timed waits here: nothing to test");
            return;
        };
        let mut c = ctl(100, None, 5_000);
        Box::new(d).run(&mut c);
        assert_eq!(c.done.len(), 100);
        let mut seqs: Vec<u64> = c.done.iter().map(|(_, s, _, _)| *s).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..100).collect::<Vec<_>>());
        for (client, _, _, o) in &c.done {
            assert!(*client < 4);
            assert_eq!(
                (o.error, o.op, o.bytes_received),
                (None, "read", 4096),
                "{o:?}"
            );
        }
    }

    #[test]
    fn an_io_past_the_timeout_is_recorded_as_timed_out_and_the_client_goes_on() {
        let (r, mut wr) = pipe();
        let w = workload(FileOp::Read);
        let Some(d) = FileDriver::new(&w, 4096, vec![(r, 4096)], &[0], 1) else {
            return;
        };
        let mut c = ctl(2, None, 40);
        Box::new(d).run(&mut c);
        // Both reads wait on the empty pipe: each times out, the second on the fresh buffer.
        assert_eq!(c.done.len(), 2, "{:?}", c.done);
        for (_, _, _, o) in &c.done {
            assert_eq!(o.error, Some(ErrorClass::Timeout), "{o:?}");
            assert_eq!(o.op, "read");
        }
        // The kernel still holds both reads; they may now complete into the kept buffers.
        use std::io::Write;
        let _ = wr.write_all(&[0u8; 8192]);
    }

    #[test]
    fn a_stop_cancels_what_is_still_in_flight_after_the_grace() {
        let (r, _wr) = pipe();
        let w = workload(FileOp::Read);
        let Some(d) = FileDriver::new(&w, 4096, vec![(r, 4096)], &[0], 1) else {
            return;
        };
        // The stop comes with the first request; the run's timeout is far away.
        let mut c = ctl(10, Some(1), 60_000);
        let t = std::time::Instant::now();
        Box::new(d).run(&mut c);
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(c.done.len(), 1, "{:?}", c.done);
        assert_eq!(c.done[0].3.error, Some(ErrorClass::Cancelled));
    }
}
