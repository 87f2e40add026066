//! Block I/O through io_uring (Linux 5.6+), the file_storage client's `io_engine: io_uring`.
//!
//! One ring per client, shared by all its workers. A worker takes a slot (no allocation once
//! the slab has grown to the number of I/Os in flight), pushes its read or write (with an owned,
//! aligned buffer) and awaits the slot. Submission is coalesced without waiting: the worker that
//! finds nothing unsubmitted submits at once, and entries queued while it is in the kernel go
//! with its next pass (holding the first entries back for a batch to fill costs a closed loop
//! more in latency than the syscalls it saves). Completions signal
//! an eventfd registered with tokio's reactor; a reaper task drains them in one pass and wakes
//! the workers on the runtime's own threads. Working-set files and worker buffers can be
//! registered with the ring ([`Uring::register_file`], [`Uring::register_buffer`]): reads and
//! writes then use fixed files and `READ_FIXED`/`WRITE_FIXED`, sparing the kernel a file
//! lookup and a page pin per I/O; where the kernel refuses either table, plain descriptors
//! and buffers are used.
//!
//! While the kernel may touch a buffer the ring owns it, so a worker that stops waiting (a run
//! cancelled mid-I/O) never frees memory under an I/O: its slot becomes abandoned and the
//! buffer is dropped when the completion arrives (or, at the latest, when the ring is dropped,
//! which waits for every I/O in flight).

use super::AlignedBuf;
use io_uring::{opcode, squeue, types, IoUring};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::io::unix::AsyncFd;

/// Submission queue entries; more I/Os queued between two submits wait for room (see
/// [`Inner::push`]).
const ENTRIES: u32 = 256;
/// Slots of the registered file and buffer tables (sparse; a full table means plain I/O).
const FIXED_SLOTS: u32 = 1024;
/// `user_data` of the no-op that wakes the reaper at shutdown.
const NOP: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Read,
    Write,
}

/// The file of an I/O: its descriptor, and its index in the ring's file table when registered.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub fd: RawFd,
    pub fixed: Option<u32>,
}

impl Target {
    #[cfg(test)]
    pub fn fd(fd: RawFd) -> Target {
        Target { fd, fixed: None }
    }
}

/// One I/O of the slab.
enum Slot {
    Free,
    /// Queued or in the kernel; the worker waits.
    Waiting {
        buf: AlignedBuf,
        waker: Option<Waker>,
    },
    /// Completed; the worker has not taken it yet.
    Done {
        buf: AlignedBuf,
        res: i32,
    },
    /// In the kernel, and the worker stopped waiting: the buffer is dropped on completion.
    Abandoned {
        buf: AlignedBuf,
    },
}

#[derive(Default)]
struct Slab {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Slots the kernel may still be working on (Waiting or Abandoned).
    in_flight: usize,
}

impl Slab {
    fn insert(&mut self, buf: AlignedBuf) -> u32 {
        self.in_flight += 1;
        let slot = Slot::Waiting { buf, waker: None };
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, i: u32) -> Slot {
        let s = std::mem::replace(&mut self.slots[i as usize], Slot::Free);
        self.free.push(i);
        s
    }

    /// Record the completion of slot `i`; the waker to call, if any.
    fn complete(&mut self, i: u32, res: i32) -> Option<Waker> {
        let slot = self.slots.get_mut(i as usize)?;
        match std::mem::replace(slot, Slot::Free) {
            Slot::Waiting { buf, waker } => {
                self.in_flight -= 1;
                *slot = Slot::Done { buf, res };
                waker
            }
            Slot::Abandoned { buf } => {
                // The kernel is done with it: now the buffer may go.
                self.in_flight -= 1;
                self.free.push(i);
                drop(buf);
                None
            }
            other => {
                *slot = other; // not ours (cannot happen): leave it
                None
            }
        }
    }
}

/// A sparse registered table (files or buffers): the free indices, or None where the kernel
/// refused it.
struct Table {
    free: Option<Vec<u32>>,
}

impl Table {
    fn new(ok: bool) -> Table {
        Table {
            free: ok.then(|| (0..FIXED_SLOTS).rev().collect()),
        }
    }
}

struct Inner {
    ring: IoUring,
    /// Serialises writers of the submission queue.
    sq: Mutex<()>,
    slab: Mutex<Slab>,
    /// Entries queued and not yet covered by a submit (see [`Inner::flush`]).
    unsubmitted: AtomicUsize,
    /// Set when the last worker is gone: the reaper ends once nothing is in flight.
    finishing: AtomicBool,
    files: Mutex<Table>,
    bufs: Mutex<Table>,
}

pub struct Uring {
    inner: Arc<Inner>,
}

/// The submission entry of one read or write (plain or registered file, plain or fixed buffer).
pub(super) fn entry(
    dir: Dir,
    t: Target,
    buf: *mut u8,
    len: u32,
    offset: u64,
    fixed_buf: Option<u16>,
) -> squeue::Entry {
    macro_rules! build {
        ($fd:expr) => {
            match (dir, fixed_buf) {
                (Dir::Read, None) => opcode::Read::new($fd, buf, len).offset(offset).build(),
                (Dir::Write, None) => opcode::Write::new($fd, buf, len).offset(offset).build(),
                (Dir::Read, Some(i)) => opcode::ReadFixed::new($fd, buf, len, i)
                    .offset(offset)
                    .build(),
                (Dir::Write, Some(i)) => opcode::WriteFixed::new($fd, buf, len, i)
                    .offset(offset)
                    .build(),
            }
        };
    }
    match t.fixed {
        Some(f) => build!(types::Fixed(f)),
        None => build!(types::Fd(t.fd)),
    }
}

impl Uring {
    /// A ring and its reaper task (call inside the runtime); an error where the kernel or a
    /// seccomp policy refuses io_uring (the caller falls back to threads or reports it).
    pub fn new() -> io::Result<Uring> {
        let ring = IoUring::builder()
            .setup_cqsize(ENTRIES * 4)
            .build(ENTRIES)?;
        // SAFETY: a plain system call; the descriptor is owned from here on.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `efd` is a fresh descriptor nobody else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        ring.submitter().register_eventfd(efd.as_raw_fd())?;
        // SAFETY: the OwnedFd stays open, and the same descriptor, for the AsyncFd's lifetime.
        let efd = unsafe { AsyncFd::register_with_interest(efd, tokio::io::Interest::READABLE) }?;
        // Sparse tables (Linux 5.13/5.19); refused, the I/O goes without them.
        let files_ok = ring.submitter().register_files_sparse(FIXED_SLOTS).is_ok();
        let bufs_ok = ring
            .submitter()
            .register_buffers_sparse(FIXED_SLOTS)
            .is_ok();
        let inner = Arc::new(Inner {
            ring,
            sq: Mutex::new(()),
            slab: Mutex::new(Slab::default()),
            unsubmitted: AtomicUsize::new(0),
            finishing: AtomicBool::new(false),
            files: Mutex::new(Table::new(files_ok)),
            bufs: Mutex::new(Table::new(bufs_ok)),
        });
        tokio::spawn(reap(inner.clone(), efd));
        Ok(Uring { inner })
    }

    /// Register `fd` in the ring's file table; its index, or None (table refused or full).
    /// The ring holds a reference to the file until [`Uring::unregister_file`] or its drop.
    pub fn register_file(&self, fd: RawFd) -> Option<u32> {
        let mut t = lock(&self.inner.files);
        let i = t.free.as_mut()?.pop()?;
        match self.inner.ring.submitter().register_files_update(i, &[fd]) {
            Ok(_) => Some(i),
            Err(e) => {
                tracing::debug!("io_uring register_files_update: {e}");
                t.free.as_mut()?.push(i);
                None
            }
        }
    }

    pub fn unregister_file(&self, i: u32) {
        let mut t = lock(&self.inner.files);
        if self
            .inner
            .ring
            .submitter()
            .register_files_update(i, &[-1])
            .is_ok()
        {
            if let Some(free) = t.free.as_mut() {
                free.push(i);
            }
        }
    }

    /// Register `buf` in the ring's buffer table; its index for [`Uring::io`], or None.
    ///
    /// # Safety
    /// `buf`'s memory must stay allocated until [`Uring::unregister_buffer`] of the index
    /// returns, or the ring is dropped.
    pub unsafe fn register_buffer(&self, buf: &AlignedBuf) -> Option<u16> {
        let mut t = lock(&self.inner.bufs);
        let i = t.free.as_mut()?.pop()?;
        let iov = libc::iovec {
            iov_base: buf.ptr.cast(),
            iov_len: buf.len,
        };
        // SAFETY: the caller keeps the memory until it unregisters the index.
        match unsafe {
            self.inner
                .ring
                .submitter()
                .register_buffers_update(i, &[iov], None)
        } {
            Ok(()) => Some(i as u16),
            Err(e) => {
                tracing::debug!("io_uring register_buffers_update: {e}");
                t.free.as_mut()?.push(i);
                None
            }
        }
    }

    pub fn unregister_buffer(&self, i: u16) {
        let mut t = lock(&self.inner.bufs);
        let iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        // SAFETY: an empty entry clears the slot; the kernel keeps what an I/O in flight uses.
        if unsafe {
            self.inner
                .ring
                .submitter()
                .register_buffers_update(u32::from(i), &[iov], None)
        }
        .is_ok()
        {
            if let Some(free) = t.free.as_mut() {
                free.push(u32::from(i));
            }
        }
    }

    /// Read into (or write from) `buf[..len]` at `offset` of `file`; gives the buffer back
    /// with the byte count. `fixed_buf`: the index [`Uring::register_buffer`] gave for `buf`.
    pub async fn io(
        &self,
        dir: Dir,
        file: Target,
        buf: AlignedBuf,
        fixed_buf: Option<u16>,
        len: usize,
        offset: u64,
    ) -> (AlignedBuf, io::Result<usize>) {
        let len = len.min(buf.len).min(u32::MAX as usize) as u32;
        let ptr = buf.ptr;
        let idx = lock(&self.inner.slab).insert(buf);
        let e = entry(dir, file, ptr, len, offset, fixed_buf).user_data(u64::from(idx));
        if let Err(e) = self.inner.push(&e) {
            // Not queued: the kernel never saw the buffer.
            let mut slab = lock(&self.inner.slab);
            slab.in_flight -= 1;
            let buf = match slab.release(idx) {
                Slot::Waiting { buf, .. } => buf,
                _ => AlignedBuf::new(len as usize),
            };
            return (buf, Err(e));
        }
        let wait = Wait {
            inner: &self.inner,
            idx,
            taken: false,
        };
        self.inner.flush();
        let (buf, res) = wait.await;
        if res < 0 {
            (buf, Err(io::Error::from_raw_os_error(-res)))
        } else {
            (buf, Ok(res as usize))
        }
    }
}

/// The completion of one slot.
struct Wait<'a> {
    inner: &'a Inner,
    idx: u32,
    taken: bool,
}

impl Future for Wait<'_> {
    type Output = (AlignedBuf, i32);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slab = lock(&self.inner.slab);
        let i = self.idx as usize;
        match &mut slab.slots[i] {
            Slot::Waiting { waker, .. } => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Slot::Done { .. } => {
                let Slot::Done { buf, res } = slab.release(self.idx) else {
                    unreachable!()
                };
                drop(slab);
                self.taken = true;
                Poll::Ready((buf, res))
            }
            Slot::Free | Slot::Abandoned { .. } => {
                // Cannot happen: the slot is this future's until it takes the result.
                drop(slab);
                self.taken = true;
                Poll::Ready((AlignedBuf::empty(), -libc::EIO))
            }
        }
    }
}

impl Drop for Wait<'_> {
    /// A wait dropped before its completion leaves the buffer to the ring until the kernel is
    /// done with it.
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        let mut slab = lock(&self.inner.slab);
        let i = self.idx as usize;
        match std::mem::replace(&mut slab.slots[i], Slot::Free) {
            Slot::Waiting { buf, .. } => slab.slots[i] = Slot::Abandoned { buf },
            Slot::Done { buf, .. } => {
                slab.free.push(self.idx);
                drop(slab);
                drop(buf);
            }
            other => slab.slots[i] = other,
        }
    }
}

impl Inner {
    /// Queue `entry` (submitted by the next submit). An error means it was not queued (the
    /// kernel will never see it); once queued it completes.
    fn push(&self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            {
                let _g = lock(&self.sq);
                // SAFETY: writers of the submission queue are serialised by `sq`, and the
                // buffer `entry` points to is owned by the slab until its completion.
                let mut sq = unsafe { self.ring.submission_shared() };
                if unsafe { sq.push(entry) }.is_ok() {
                    return Ok(());
                }
            }
            // Full: let the kernel take what is queued, then try again.
            submit(&self.ring)?;
        }
    }

    /// Submit the entry just queued, coalesced with those queued meanwhile: one caller at a
    /// time submits (the one that finds nothing unsubmitted), and submits again as long as
    /// others queued more while it was in the kernel; the others go on without a syscall. No
    /// entry waits for a batch to fill (a closed loop's latency is its throughput).
    fn flush(&self) {
        if self.unsubmitted.fetch_add(1, Ordering::AcqRel) != 0 {
            return; // the submitter in the kernel now, or its next pass, takes this one
        }
        let mut covered = 1;
        loop {
            if let Err(e) = submit(&self.ring) {
                tracing::warn!("io_uring submit: {e} (the requests stay queued)");
            }
            // Entries counted before this point were queued before it (AcqRel on one counter),
            // so the submit above or the next pass has them.
            let before = self.unsubmitted.fetch_sub(covered, Ordering::AcqRel);
            if before == covered {
                return;
            }
            covered = before - covered;
        }
    }

    /// Hand every completed buffer and result back to its worker.
    fn drain(&self) {
        let mut wakers: Vec<Waker> = Vec::new();
        loop {
            // SAFETY: completions are read by one caller at a time: the reaper task, or Drop
            // once the reaper is gone.
            let mut cq = unsafe { self.ring.completion_shared() };
            if cq.is_empty() {
                break;
            }
            let mut slab = lock(&self.slab);
            for c in &mut cq {
                if c.user_data() == NOP {
                    continue;
                }
                if let Some(w) = slab.complete(c.user_data() as u32, c.result()) {
                    wakers.push(w);
                }
            }
            drop(slab);
            drop(cq);
            for w in wakers.drain(..) {
                w.wake();
            }
        }
    }
}

fn submit(ring: &IoUring) -> io::Result<()> {
    loop {
        match ring.submit() {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Completions are backed up: the reaper is draining them.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => std::thread::yield_now(),
            Err(e) => return Err(e),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Drain completions whenever the ring's eventfd fires, until the ring is finishing and
/// nothing is in flight.
async fn reap(inner: Arc<Inner>, efd: AsyncFd<OwnedFd>) {
    loop {
        inner.drain();
        if inner.finishing.load(Ordering::Acquire) && lock(&inner.slab).in_flight == 0 {
            return;
        }
        let mut guard = match efd.readable().await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!("io_uring eventfd: {e}");
                return; // Inner's Drop still waits for what is in flight.
            }
        };
        // The counter is never read back: every completion posted from here on signals the
        // eventfd, and each signal is a new edge for the (edge-triggered) reactor, so clearing
        // the readiness is enough (and spares a read(2) or two per wake-up). Completions posted
        // before this point are taken by the drain at the top of the loop.
        guard.clear_ready();
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        self.inner.finishing.store(true, Ordering::Release);
        // Wake the reaper (the no-op completes at once and signals the eventfd).
        if self
            .inner
            .push(&opcode::Nop::new().build().user_data(NOP))
            .is_ok()
        {
            let _ = submit(&self.inner.ring);
        }
    }
}

impl Drop for Inner {
    /// Never free a buffer the kernel may still write: wait for every I/O in flight.
    fn drop(&mut self) {
        while lock(&self.slab).in_flight > 0 {
            if let Err(e) = self.ring.submit_and_wait(1) {
                if e.kind() != io::ErrorKind::Interrupted {
                    let mut slab = lock(&self.slab);
                    for s in slab.slots.drain(..) {
                        if let Slot::Waiting { buf, .. } | Slot::Abandoned { buf } = s {
                            std::mem::forget(buf); // leaked, never freed under an I/O
                        }
                    }
                    slab.in_flight = 0;
                    return;
                }
            }
            self.drain();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn filled(len: usize, byte: u8) -> AlignedBuf {
        let mut b = AlignedBuf::new(len);
        b.as_mut_slice().fill(byte);
        b
    }

    #[tokio::test]
    async fn write_then_read_back_at_an_offset() {
        let ring = Uring::new().expect("io_uring");
        let f = tempfile::tempfile().unwrap();
        f.set_len(3 * 4096).unwrap();
        let t = Target::fd(f.as_raw_fd());
        let (_, r) = ring
            .io(Dir::Write, t, filled(4096, 0xAB), None, 4096, 4096)
            .await;
        assert_eq!(r.unwrap(), 4096);
        let (buf, r) = ring
            .io(Dir::Read, t, AlignedBuf::new(4096), None, 4096, 4096)
            .await;
        assert_eq!(r.unwrap(), 4096);
        assert!(buf.as_slice().iter().all(|&b| b == 0xAB));
        // Before and after the written block the file is still zeros.
        let (buf, r) = ring.io(Dir::Read, t, filled(4096, 1), None, 4096, 0).await;
        assert_eq!(r.unwrap(), 4096);
        assert!(buf.as_slice().iter().all(|&b| b == 0));
        // At the end of the file a read is short.
        let (_, r) = ring
            .io(Dir::Read, t, AlignedBuf::new(4096), None, 4096, 3 * 4096)
            .await;
        assert_eq!(r.unwrap(), 0);
    }

    #[tokio::test]
    async fn errors_come_back_as_io_errors_with_the_buffer() {
        let ring = Uring::new().expect("io_uring");
        let (buf, r) = ring
            .io(
                Dir::Read,
                Target::fd(-1),
                AlignedBuf::new(4096),
                None,
                4096,
                0,
            )
            .await;
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(buf.as_slice().len(), 4096);
    }

    /// Many workers through one ring with a registered file and registered buffers (the
    /// batched path): every read completes with the bytes of its own block, and writes
    /// through fixed buffers land where they should.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batched_fixed_reads_and_writes_get_their_own_bytes() {
        const BLOCKS: u64 = 256;
        let ring = Arc::new(Uring::new().expect("io_uring"));
        let mut f = tempfile::tempfile().unwrap();
        for b in 0..BLOCKS {
            f.write_all(&[b as u8; 4096]).unwrap();
        }
        // Written by the workers, after the blocks they read.
        f.set_len((BLOCKS + 32) * 4096).unwrap();
        let f = Arc::new(f);
        let file = Target {
            fd: f.as_raw_fd(),
            fixed: ring.register_file(f.as_raw_fd()),
        };
        assert!(file.fixed.is_some(), "this kernel has sparse file tables");
        let mut tasks = Vec::new();
        for w in 0..32u64 {
            let (ring, f) = (ring.clone(), f.clone());
            tasks.push(tokio::spawn(async move {
                let _keep = f;
                let mut buf = AlignedBuf::new(4096);
                // SAFETY: `buf` (or the ring, while an I/O holds it) outlives the registration,
                // unregistered below.
                let idx = unsafe { ring.register_buffer(&buf) };
                assert!(idx.is_some(), "this kernel has sparse buffer tables");
                for k in 0..40u64 {
                    let block = (w * 7 + k * 13) % BLOCKS;
                    let (b, r) = ring.io(Dir::Read, file, buf, idx, 4096, block * 4096).await;
                    assert_eq!(r.unwrap(), 4096);
                    assert!(
                        b.as_slice().iter().all(|&x| x == block as u8),
                        "block {block}"
                    );
                    buf = b;
                }
                // Worker w writes block BLOCKS + w with 0xF0 ^ w through its fixed buffer.
                buf.as_mut_slice().fill(0xF0 ^ w as u8);
                let (b, r) = ring
                    .io(Dir::Write, file, buf, idx, 4096, (BLOCKS + w) * 4096)
                    .await;
                assert_eq!(r.unwrap(), 4096);
                ring.unregister_buffer(idx.unwrap());
                drop(b);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for w in 0..32u64 {
            let (b, r) = ring
                .io(
                    Dir::Read,
                    file,
                    AlignedBuf::new(4096),
                    None,
                    4096,
                    (BLOCKS + w) * 4096,
                )
                .await;
            assert_eq!(r.unwrap(), 4096);
            assert!(b.as_slice().iter().all(|&x| x == 0xF0 ^ w as u8));
        }
        assert_eq!(lock(&ring.inner.slab).in_flight, 0);
        ring.unregister_file(file.fixed.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_in_flight_and_abandoned_waits_are_safe() {
        let ring = Arc::new(Uring::new().expect("io_uring"));
        let f = Arc::new(tempfile::tempfile().unwrap());
        f.set_len(1 << 20).unwrap();
        let mut tasks = Vec::new();
        for i in 0..600u64 {
            let (ring, f) = (ring.clone(), f.clone());
            tasks.push(tokio::spawn(async move {
                let off = (i % 256) * 4096;
                let (_, r) = ring
                    .io(
                        Dir::Read,
                        Target::fd(f.as_raw_fd()),
                        AlignedBuf::new(4096),
                        None,
                        4096,
                        off,
                    )
                    .await;
                r.unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 4096);
        }
        // A wait dropped before its completion: the ring keeps the buffer until the kernel is
        // done, and dropping the ring afterwards waits for it.
        let fut = ring.io(
            Dir::Read,
            Target::fd(f.as_raw_fd()),
            AlignedBuf::new(4096),
            None,
            4096,
            0,
        );
        drop(tokio::time::timeout(std::time::Duration::from_nanos(1), fut).await);
        drop(ring);
    }

    /// A read that cannot complete yet (an empty pipe), abandoned by its worker: the ring keeps
    /// the buffer (the kernel will write it) and frees it only after the completion.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_read_keeps_its_buffer_until_the_kernel_is_done() {
        let ring = Uring::new().expect("io_uring");
        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills two fresh descriptors, owned from here on.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: as above.
        let (rx, mut tx) = unsafe {
            (
                OwnedFd::from_raw_fd(fds[0]),
                std::fs::File::from(OwnedFd::from_raw_fd(fds[1])),
            )
        };
        let fut = ring.io(
            Dir::Read,
            Target::fd(rx.as_raw_fd()),
            AlignedBuf::new(4096),
            None,
            4096,
            u64::MAX, // the current position (a pipe has no offsets)
        );
        let r = tokio::time::timeout(std::time::Duration::from_millis(100), fut).await;
        assert!(r.is_err(), "an empty pipe has nothing to read");
        {
            let slab = lock(&ring.inner.slab);
            assert_eq!(slab.in_flight, 1);
            assert!(
                slab.slots
                    .iter()
                    .any(|s| matches!(s, Slot::Abandoned { buf } if buf.len == 4096)),
                "the abandoned read's buffer stays with the ring"
            );
        }
        tx.write_all(b"now").unwrap();
        let t0 = std::time::Instant::now();
        while lock(&ring.inner.slab).in_flight > 0 {
            assert!(t0.elapsed().as_secs() < 10, "the completion never came");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let slab = lock(&ring.inner.slab);
        assert!(slab.slots.iter().all(|s| matches!(s, Slot::Free)));
    }
}
