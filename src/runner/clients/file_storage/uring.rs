//! Block I/O through io_uring (Linux 5.6+), the file_storage client's `io_engine: io_uring`.
//!
//! One ring per client. A worker pushes its read or write (with an owned, aligned buffer) and
//! submits it from its own task, with no hand-off to a thread pool. Completions signal an
//! eventfd registered with tokio's reactor; a reaper task drains them and wakes the workers on
//! the runtime's own threads. While the kernel may touch a buffer the ring owns it, so a worker
//! that stops waiting (a run cancelled mid-I/O) never frees memory under an I/O.

use super::AlignedBuf;
use io_uring::{opcode, squeue, types, IoUring};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

/// Submission queue entries; more I/Os in flight wait for room (see [`Inner::push`]).
const ENTRIES: u32 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Read,
    Write,
}

struct Pending {
    buf: AlignedBuf,
    done: oneshot::Sender<(AlignedBuf, i32)>,
}

struct Inner {
    ring: IoUring,
    /// Serialises writers of the submission queue.
    sq: Mutex<()>,
    /// I/Os the kernel may still be working on, by `user_data`.
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    /// Set when the last worker is gone: the reaper ends once nothing is in flight.
    finishing: AtomicBool,
}

pub struct Uring {
    inner: Arc<Inner>,
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
        let inner = Arc::new(Inner {
            ring,
            sq: Mutex::new(()),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            finishing: AtomicBool::new(false),
        });
        tokio::spawn(reap(inner.clone(), efd));
        Ok(Uring { inner })
    }

    /// Read into (or write from) `buf[..len]` at `offset` of `fd`; gives the buffer back with
    /// the byte count.
    pub async fn io(
        &self,
        dir: Dir,
        fd: RawFd,
        buf: AlignedBuf,
        len: usize,
        offset: u64,
    ) -> (AlignedBuf, io::Result<usize>) {
        let len = len.min(buf.len).min(u32::MAX as usize);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = match dir {
            Dir::Read => opcode::Read::new(types::Fd(fd), buf.ptr, len as u32)
                .offset(offset)
                .build(),
            Dir::Write => opcode::Write::new(types::Fd(fd), buf.ptr, len as u32)
                .offset(offset)
                .build(),
        }
        .user_data(id);
        let (done, rx) = oneshot::channel();
        let buf_len = buf.len;
        lock(&self.inner.pending).insert(id, Pending { buf, done });
        if let Err(e) = self.inner.push(&entry) {
            // Not queued: the kernel never saw the buffer.
            let p = lock(&self.inner.pending).remove(&id);
            return (
                p.map_or_else(|| AlignedBuf::new(buf_len), |p| p.buf),
                Err(e),
            );
        }
        match rx.await {
            Ok((buf, res)) if res < 0 => (buf, Err(io::Error::from_raw_os_error(-res))),
            Ok((buf, res)) => (buf, Ok(res as usize)),
            Err(_) => (
                AlignedBuf::new(buf_len),
                Err(io::Error::other("the io_uring ring was shut down")),
            ),
        }
    }
}

impl Inner {
    /// Queue `entry` and submit it. An error means it was not queued (the kernel will never see
    /// it); once queued it completes, even if this submission fails: the next one carries it.
    fn push(&self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            {
                let _g = lock(&self.sq);
                // SAFETY: writers of the submission queue are serialised by `sq`, and the
                // buffer `entry` points to is owned by `pending` until its completion.
                let mut sq = unsafe { self.ring.submission_shared() };
                if unsafe { sq.push(entry) }.is_ok() {
                    break;
                }
            }
            // Full: let the kernel take what is queued, then try again.
            submit(&self.ring)?;
        }
        if let Err(e) = submit(&self.ring) {
            tracing::warn!("io_uring submit: {e} (the request stays queued)");
        }
        Ok(())
    }
}

fn submit(ring: &IoUring) -> io::Result<()> {
    loop {
        match ring.submit() {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Completions are backed up: the reaper is draining them.
            Err(e) if e.raw_os_error() == Some(16 /* EBUSY */) => std::thread::yield_now(),
            Err(e) => return Err(e),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// Hand every completed buffer and result back to its worker.
    fn drain(&self) {
        // SAFETY: completions are read by one caller at a time: the reaper task, or Drop
        // once the reaper is gone.
        let done: Vec<(u64, i32)> = unsafe { self.ring.completion_shared() }
            .map(|c| (c.user_data(), c.result()))
            .collect();
        if done.is_empty() {
            return;
        }
        let mut pending = lock(&self.pending);
        for (id, res) in done {
            if let Some(p) = pending.remove(&id) {
                // A worker that stopped waiting drops the buffer here, after the kernel is done.
                let _ = p.done.send((p.buf, res));
            }
        }
    }
}

/// Drain completions whenever the ring's eventfd fires, until the ring is finishing and
/// nothing is in flight.
async fn reap(inner: Arc<Inner>, efd: AsyncFd<OwnedFd>) {
    loop {
        inner.drain();
        if inner.finishing.load(Ordering::Acquire) && lock(&inner.pending).is_empty() {
            return;
        }
        let mut guard = match efd.readable().await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!("io_uring eventfd: {e}");
                return; // Inner's Drop still waits for what is in flight.
            }
        };
        // Reset the counter; WouldBlock clears the readiness, and completions posted after
        // this read signal the eventfd again.
        let _ = guard.try_io(|fd| {
            let mut v = 0u64;
            // SAFETY: reads 8 bytes into `v`, as eventfd(2) requires.
            let n = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        self.inner.finishing.store(true, Ordering::Release);
        // Wake the reaper (the no-op completes at once and signals the eventfd).
        let _ = self
            .inner
            .push(&opcode::Nop::new().build().user_data(u64::MAX));
    }
}

impl Drop for Inner {
    /// Never free a buffer the kernel may still write: wait for every pending I/O.
    fn drop(&mut self) {
        while !lock(&self.pending).is_empty() {
            if let Err(e) = self.ring.submit_and_wait(1) {
                if e.kind() != io::ErrorKind::Interrupted {
                    for (_, p) in lock(&self.pending).drain() {
                        std::mem::forget(p.buf); // leaked, never freed under an I/O
                    }
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
        let fd = f.as_raw_fd();
        let (_, r) = ring
            .io(Dir::Write, fd, filled(4096, 0xAB), 4096, 4096)
            .await;
        assert_eq!(r.unwrap(), 4096);
        let (buf, r) = ring
            .io(Dir::Read, fd, AlignedBuf::new(4096), 4096, 4096)
            .await;
        assert_eq!(r.unwrap(), 4096);
        assert!(buf.as_slice().iter().all(|&b| b == 0xAB));
        // Before and after the written block the file is still zeros.
        let (buf, r) = ring.io(Dir::Read, fd, filled(4096, 1), 4096, 0).await;
        assert_eq!(r.unwrap(), 4096);
        assert!(buf.as_slice().iter().all(|&b| b == 0));
        // At the end of the file a read is short.
        let (_, r) = ring
            .io(Dir::Read, fd, AlignedBuf::new(4096), 4096, 3 * 4096)
            .await;
        assert_eq!(r.unwrap(), 0);
    }

    #[tokio::test]
    async fn errors_come_back_as_io_errors_with_the_buffer() {
        let ring = Uring::new().expect("io_uring");
        let (buf, r) = ring.io(Dir::Read, -1, AlignedBuf::new(4096), 4096, 0).await;
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(buf.as_slice().len(), 4096);
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
                    .io(Dir::Read, f.as_raw_fd(), AlignedBuf::new(4096), 4096, off)
                    .await;
                r.unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 4096);
        }
        // A wait dropped before its completion: the ring keeps the buffer until the kernel is
        // done, and dropping the ring afterwards waits for it.
        let fut = ring.io(Dir::Read, f.as_raw_fd(), AlignedBuf::new(4096), 4096, 0);
        drop(tokio::time::timeout(std::time::Duration::from_nanos(1), fut).await);
        drop(ring);
    }
}
