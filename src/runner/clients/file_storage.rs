//! `file_storage`: real files under `base_path` (local disk, Lustre, GPFS, NFS mounts).
//!
//! - Setup checks that `base_path` is writable (and, with `use_direct_io`, that the
//!   filesystem accepts `O_DIRECT`), then creates a run directory
//!   `base_path/factorybench-<pid>-<ns>/` holding a working set: `working_set_files` files of
//!   every size in `file_sizes`, so reads and stats hit files that exist. Teardown removes the
//!   run directory.
//! - Payloads are generated once per worker (seeded) before the timed region; buffers are
//!   4096-byte aligned so they work with `O_DIRECT`.
//! - Operations: `write` creates a new file of a size drawn from `file_sizes` and writes it
//!   whole; `read` reads a whole working-set file of a drawn size; `stat` stats one; `delete`
//!   removes the oldest file this worker wrote (when it wrote none yet, the delete creates an
//!   empty file and removes it, both inside the timed operation).
//! - With `io_size`, reads and writes move `io_size` bytes at a random `io_size`-aligned offset
//!   inside a working-set file kept open (fio-style random block I/O).
//! - `sync_mode`: `none` (page cache), `fsync`/`fdatasync` after each write (inside the timed
//!   operation), `dsync` opens files with `O_DSYNC` so every write(2) is synchronous.
//! - `io_engine`: block I/O (`io_size`) reads, and writes without fsync/fdatasync, go through
//!   io_uring where the kernel allows it (`auto`, the default; `io_uring` insists, `threads`
//!   never): the worker queues it from its own task on the client's ring, whose submits are
//!   coalesced across workers; its working-set files and buffers are registered with the ring
//!   where the kernel allows. Everything else is blocking I/O on tokio's blocking thread pool,
//!   one call per operation.

mod driver;
mod uring;

use crate::recipe::{FileOp, FileStorageWorkload, IoEngine, SyncMode};
use crate::runner::client::{
    BoxFuture, Client, ClientError, ClosedDriver, ErrorClass, Outcome, RequestCtx, RunMetric,
    Worker,
};
use crate::runner::rng::Rng;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Buffer alignment (covers 512-byte and 4 KiB logical blocks).
const ALIGN: usize = 4096;

/// A heap buffer aligned to [`ALIGN`], as `O_DIRECT` requires.
pub struct AlignedBuf {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like a Vec<u8>.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    pub fn new(len: usize) -> AlignedBuf {
        let len = len.max(1).div_ceil(ALIGN) * ALIGN;
        let layout = std::alloc::Layout::from_size_align(len, ALIGN).expect("valid layout");
        // SAFETY: layout has non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        AlignedBuf { ptr, len }
    }

    /// A buffer of no bytes that owns nothing (what a worker holds while the ring has its own).
    fn empty() -> AlignedBuf {
        AlignedBuf {
            ptr: std::ptr::NonNull::dangling().as_ptr(),
            len: 0,
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for len initialized (zeroed) bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and we hold &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.len == 0 {
            return; // empty(): nothing was allocated
        }
        let layout = std::alloc::Layout::from_size_align(self.len, ALIGN).expect("valid layout");
        // SAFETY: allocated in new() with this layout.
        unsafe { std::alloc::dealloc(self.ptr, layout) }
    }
}

struct Prepared {
    run_dir: PathBuf,
    /// Working-set files per size class, in `file_sizes` order.
    classes: Vec<(u64, Vec<PathBuf>)>,
}

pub struct FileStorageClient {
    w: FileStorageWorkload,
    seed: u64,
    run_dir: PathBuf,
    prepared: OnceLock<Arc<Prepared>>,
    /// The io_uring ring of block I/O, when `io_engine` allows and the kernel agrees.
    ring: OnceLock<Arc<uring::Uring>>,
}

impl FileStorageClient {
    pub fn new(w: &FileStorageWorkload, seed: u64) -> FileStorageClient {
        let ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let run_dir = w
            .base_path
            .join(format!("factorybench-{}-{ns}", std::process::id()));
        FileStorageClient {
            w: w.clone(),
            seed,
            run_dir,
            prepared: OnceLock::new(),
            ring: OnceLock::new(),
        }
    }

    fn open_opts(&self, write: bool, create: bool) -> OpenOptions {
        open_options(&self.w, write, create)
    }

    /// The working set that `setup` prepared (connects come after it).
    fn prepared(&self) -> Result<Arc<Prepared>, ClientError> {
        self.prepared
            .get()
            .cloned()
            .ok_or_else(|| setup_err("connect before setup"))
    }
}

/// Worker `worker`'s write payload: `len` bytes seeded from the run's seed (the same in the
/// engine's workers and in the driver's clients).
fn write_payload(seed: u64, worker: u32, len: usize) -> AlignedBuf {
    let mut b = AlignedBuf::new(len);
    Rng::for_stream(seed, 0xB0F + u64::from(worker)).fill_bytes(b.as_mut_slice());
    b
}

/// The working-set files block I/O of `io` bytes uses (every file at least `io` long), opened
/// for reads and writes, with their sizes.
fn open_block_files(
    w: &FileStorageWorkload,
    prepared: &Prepared,
    io: u64,
) -> Result<Vec<(File, u64)>, ClientError> {
    let mut open = Vec::new();
    for (size, paths) in prepared.classes.iter().filter(|(size, _)| *size >= io) {
        for p in paths {
            let f = open_options(w, true, false).open(p).map_err(|e| {
                ClientError::new(
                    ErrorClass::Io,
                    "connect",
                    format!("cannot open {}: {e}", p.display()),
                )
            })?;
            open.push((f, *size));
        }
    }
    Ok(open)
}

fn open_options(w: &FileStorageWorkload, write: bool, create: bool) -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true);
    if write {
        o.write(true);
    }
    if create {
        o.create(true).truncate(true);
    }
    let mut flags = 0;
    if w.use_direct_io {
        flags |= libc::O_DIRECT;
    }
    if write && w.sync_mode == SyncMode::Dsync {
        flags |= libc::O_DSYNC;
    }
    o.custom_flags(flags);
    o
}

fn setup_err(msg: impl Into<String>) -> ClientError {
    ClientError::new(ErrorClass::Io, "setup", msg)
}

fn setup_blocking(c: &FileStorageClient) -> Result<Prepared, ClientError> {
    let base = &c.w.base_path;
    std::fs::create_dir_all(base).map_err(|e| {
        setup_err(format!(
            "base_path {} does not exist and cannot be created: {e}",
            base.display()
        ))
    })?;
    std::fs::create_dir(&c.run_dir).map_err(|e| {
        setup_err(format!(
            "base_path {} is not writable (cannot create {}): {e}",
            base.display(),
            c.run_dir.display()
        ))
    })?;
    let cleanup_on_err = |e: ClientError| {
        let _ = std::fs::remove_dir_all(&c.run_dir);
        e
    };
    // Probe: create, write, sync, remove.
    let probe = c.run_dir.join(".probe");
    (|| -> std::io::Result<()> {
        let mut f = File::create(&probe)?;
        f.write_all(b"factorybench")?;
        f.sync_all()?;
        std::fs::remove_file(&probe)
    })()
    .map_err(|e| {
        cleanup_on_err(setup_err(format!(
            "base_path {} is not writable: {e}",
            base.display()
        )))
    })?;
    if c.w.use_direct_io {
        for (size, _) in &c.w.file_sizes.weights {
            if size % 512 != 0 {
                return Err(cleanup_on_err(setup_err(format!(
                    "use_direct_io needs file sizes that are multiples of 512 bytes; {size} is not"
                ))));
            }
        }
        let direct_probe = c.run_dir.join(".probe-direct");
        let r = (|| -> std::io::Result<()> {
            let f = c.open_opts(true, true).open(&direct_probe)?;
            let buf = AlignedBuf::new(ALIGN);
            f.write_all_at(buf.as_slice(), 0)?;
            Ok(())
        })();
        let _ = std::fs::remove_file(&direct_probe);
        if let Err(e) = r {
            return Err(cleanup_on_err(setup_err(format!(
                "the filesystem at {} refuses O_DIRECT (use_direct_io: true): {e}. ramfs, tmpfs before Linux 6.6 and some network filesystems do not support direct I/O; put base_path on a disk filesystem or set use_direct_io: false",
                base.display()
            ))));
        }
    }
    if let Some(io) = c.w.io_size_bytes {
        if !c.w.file_sizes.weights.iter().any(|(s, _)| *s >= io) {
            return Err(cleanup_on_err(setup_err(format!(
                "io_size ({io} bytes) is larger than every size in file_sizes"
            ))));
        }
    }
    // Working set.
    let ws = c.run_dir.join("ws");
    let wdir = c.run_dir.join("w");
    for d in [&ws, &wdir] {
        std::fs::create_dir(d).map_err(|e| {
            cleanup_on_err(setup_err(format!("cannot create {}: {e}", d.display())))
        })?;
    }
    let mut rng = Rng::for_stream(c.seed, 0xF11E);
    let max = c.w.file_sizes.max_bytes() as usize;
    let chunk = max.clamp(ALIGN, 8 << 20);
    let mut buf = AlignedBuf::new(chunk);
    rng.fill_bytes(buf.as_mut_slice());
    let mut classes = Vec::new();
    for (size, _) in &c.w.file_sizes.weights {
        let mut files = Vec::new();
        for i in 0..c.w.working_set_files {
            let p = ws.join(format!("{size}-{i}"));
            let r = (|| -> std::io::Result<()> {
                // Written without O_DIRECT/O_DSYNC (preparation is not measured).
                let mut f = File::create(&p)?;
                let mut left = *size as usize;
                while left > 0 {
                    let n = left.min(chunk);
                    f.write_all(&buf.as_slice()[..n])?;
                    left -= n;
                }
                f.sync_all()?;
                drop_cached(&f);
                Ok(())
            })();
            r.map_err(|e| {
                cleanup_on_err(setup_err(format!(
                    "cannot create working-set file {}: {e}",
                    p.display()
                )))
            })?;
            files.push(p);
        }
        classes.push((*size, files));
    }
    Ok(Prepared {
        run_dir: c.run_dir.clone(),
        classes,
    })
}

/// Drop `f`'s pages from the page cache once they are on disk (fio's `invalidate=1`): the
/// working set written at setup is not left in memory for the timed reads to find, and
/// `O_DIRECT` reads do not walk cached pages. Best effort.
fn drop_cached(f: &File) {
    // SAFETY: an advisory call on a descriptor we own; no memory is passed.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

impl Client for FileStorageClient {
    fn setup(&self) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(async move {
            let me = FileStorageClient {
                w: self.w.clone(),
                seed: self.seed,
                run_dir: self.run_dir.clone(),
                prepared: OnceLock::new(),
                ring: OnceLock::new(),
            };
            let p = tokio::task::spawn_blocking(move || setup_blocking(&me))
                .await
                .map_err(|e| setup_err(format!("setup task failed: {e}")))??;
            let _ = self.prepared.set(Arc::new(p));
            if self.w.io_size_bytes.is_some() && self.w.io_engine != IoEngine::Threads {
                match uring::Uring::new() {
                    Ok(r) => {
                        let _ = self.ring.set(Arc::new(r));
                    }
                    Err(e) if self.w.io_engine == IoEngine::IoUring => {
                        return Err(setup_err(format!(
                            "io_engine: io_uring is refused here ({e}); use `io_engine: threads`"
                        )));
                    }
                    Err(e) => tracing::info!("io_uring unavailable ({e}): block I/O uses threads"),
                }
            }
            Ok(())
        })
    }

    fn connect(&self, worker: u32) -> BoxFuture<'_, Result<Box<dyn Worker>, ClientError>> {
        Box::pin(async move {
            let prepared = self.prepared()?;
            let w = self.w.clone();
            let seed = self.seed;
            let ring = self.ring.get().cloned();
            let st = tokio::task::spawn_blocking(move || -> Result<State, ClientError> {
                let buf_len = w
                    .io_size_bytes
                    .unwrap_or_else(|| w.file_sizes.max_bytes())
                    .max(1) as usize;
                let wbuf = write_payload(seed, worker, buf_len);
                let rbuf = AlignedBuf::new(buf_len);
                let open_files = match w.io_size_bytes {
                    Some(io) => open_block_files(&w, &prepared, io)?,
                    None => Vec::new(),
                };
                let fixed = ring
                    .as_ref()
                    .map(|r| Fixed::register(r, &open_files, &rbuf, &wbuf));
                Ok(State {
                    w,
                    prepared,
                    worker,
                    wbuf,
                    rbuf,
                    open_files,
                    written: VecDeque::new(),
                    ring,
                    fixed,
                })
            })
            .await
            .map_err(|e| setup_err(format!("connect task failed: {e}")))??;
            Ok(Box::new(FileWorker { st: Some(st) }) as Box<dyn Worker>)
        })
    }

    fn closed_driver<'a>(
        &'a self,
        clients: &'a [u32],
    ) -> BoxFuture<'a, Result<Option<Box<dyn ClosedDriver>>, ClientError>> {
        Box::pin(async move {
            // Only where the engine path would use the ring too (io_engine and the kernel).
            if self.ring.get().is_none() {
                return Ok(None);
            }
            let prepared = self.prepared()?;
            let w = self.w.clone();
            let seed = self.seed;
            let clients = clients.to_vec();
            tokio::task::spawn_blocking(move || driver::prepare(&w, &prepared, seed, &clients))
                .await
                .map_err(|e| setup_err(format!("connect task failed: {e}")))?
        })
    }

    fn teardown(&self) -> BoxFuture<'_, Result<Vec<RunMetric>, ClientError>> {
        Box::pin(async move {
            let dir = self.run_dir.clone();
            tokio::task::spawn_blocking(move || {
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(|e| {
                        ClientError::new(
                            ErrorClass::Io,
                            "teardown",
                            format!("cannot remove {}: {e}", dir.display()),
                        )
                    })?;
                }
                Ok(Vec::new())
            })
            .await
            .map_err(|e| ClientError::new(ErrorClass::Other, "teardown", e.to_string()))?
        })
    }
}

struct State {
    w: FileStorageWorkload,
    prepared: Arc<Prepared>,
    worker: u32,
    wbuf: AlignedBuf,
    rbuf: AlignedBuf,
    open_files: Vec<(File, u64)>,
    written: VecDeque<PathBuf>,
    ring: Option<Arc<uring::Uring>>,
    /// What of this worker is registered with the ring.
    fixed: Option<Fixed>,
}

/// A worker's registrations with its client's ring: one index per open file (None: plain
/// descriptor) and its read and write buffers, by address.
struct Fixed {
    files: Vec<Option<u32>>,
    bufs: Vec<(usize, u16)>,
}

impl Fixed {
    fn register(
        ring: &uring::Uring,
        files: &[(File, u64)],
        rbuf: &AlignedBuf,
        wbuf: &AlignedBuf,
    ) -> Fixed {
        let files = files
            .iter()
            .map(|(f, _)| ring.register_file(f.as_raw_fd()))
            .collect();
        let bufs = [rbuf, wbuf]
            .into_iter()
            // SAFETY: State owns both buffers (or the ring does while an I/O holds one), and
            // State's Drop unregisters them before they are freed.
            .filter_map(|b| unsafe { ring.register_buffer(b) }.map(|i| (b.ptr as usize, i)))
            .collect();
        Fixed { files, bufs }
    }

    /// The fixed-buffer index of `buf`, if it is the buffer registered.
    fn buf_index(&self, buf: &AlignedBuf) -> Option<u16> {
        let at = buf.ptr as usize;
        self.bufs.iter().find(|(p, _)| *p == at).map(|(_, i)| *i)
    }
}

impl Drop for State {
    fn drop(&mut self) {
        if let (Some(ring), Some(fixed)) = (&self.ring, &self.fixed) {
            for i in fixed.files.iter().flatten() {
                ring.unregister_file(*i);
            }
            for (_, i) in &fixed.bufs {
                ring.unregister_buffer(*i);
            }
        }
    }
}

impl State {
    /// The ring, when this operation goes through it: block I/O reads, and block I/O writes
    /// whose durability needs no separate fsync/fdatasync call.
    fn ring_for(&self, op: FileOp) -> Option<Arc<uring::Uring>> {
        self.w.io_size_bytes?;
        let ok = match op {
            FileOp::Read => true,
            FileOp::Write => ring_writes(self.w.sync_mode),
            FileOp::Stat | FileOp::Delete => false,
        };
        if ok {
            self.ring.clone()
        } else {
            None
        }
    }
}

/// Whether block I/O writes go through the ring under `sync`: their durability needs no
/// separate fsync/fdatasync call.
fn ring_writes(sync: SyncMode) -> bool {
    matches!(sync, SyncMode::None | SyncMode::Dsync)
}

/// The open working-set file and the `io`-aligned offset a block I/O operation of `p` uses.
fn block_target<'s>(files: &'s [(File, u64)], p: &Plan, io: u64) -> (&'s File, u64) {
    let (f, size) = &files[block_file(files, p)];
    let blocks = (size / io).max(1);
    (f, (p.block % blocks) * io)
}

/// The index in `files` of the file a block I/O operation of `p` uses.
fn block_file(files: &[(File, u64)], p: &Plan) -> usize {
    (p.file % files.len() as u64) as usize
}

/// A block I/O read or write of `plan` through the ring (the counterpart of [`perform`]).
async fn perform_ring(st: &mut State, ring: &uring::Uring, p: &Plan) -> Outcome {
    let name = op_name(p.op);
    let io = st.w.io_size_bytes.unwrap_or(ALIGN as u64);
    let (f, off) = block_target(&st.open_files, p, io);
    let target = uring::Target {
        fd: f.as_raw_fd(),
        fixed: st.fixed.as_ref().and_then(|x| {
            x.files
                .get(block_file(&st.open_files, p))
                .copied()
                .flatten()
        }),
    };
    let read = p.op == FileOp::Read;
    let slot = if read { &mut st.rbuf } else { &mut st.wbuf };
    let buf = std::mem::replace(slot, AlignedBuf::empty());
    let fixed_buf = st.fixed.as_ref().and_then(|x| x.buf_index(&buf));
    let dir = if read {
        uring::Dir::Read
    } else {
        uring::Dir::Write
    };
    let (buf, r) = ring.io(dir, target, buf, fixed_buf, io as usize, off).await;
    *(if read { &mut st.rbuf } else { &mut st.wbuf }) = buf;
    match r {
        Ok(n) if n as u64 == io => {
            let mut o = Outcome::ok(name);
            o.size_bytes = io;
            if read {
                o.bytes_received = io;
            } else {
                o.bytes_sent = io;
            }
            o
        }
        Ok(n) => Outcome::err(
            name,
            ErrorClass::Io,
            format!("offset {off}: short {name}: {n} of {io} bytes"),
        ),
        Err(e) => Outcome::err(name, ErrorClass::Io, format!("offset {off}: {e}")),
    }
}

struct FileWorker {
    st: Option<State>,
}

/// What one operation will do, drawn from the RNG before the blocking call.
struct Plan {
    op: FileOp,
    class: usize,
    file: u64,
    block: u64,
    seq: u64,
}

fn io_err(op: &'static str, e: std::io::Error, what: &Path) -> Outcome {
    Outcome::err(op, ErrorClass::Io, format!("{}: {e}", what.display()))
}

fn sync(st: &State, f: &File) -> std::io::Result<()> {
    match st.w.sync_mode {
        SyncMode::Fsync => f.sync_all(),
        SyncMode::Fdatasync => f.sync_data(),
        SyncMode::None | SyncMode::Dsync => Ok(()),
    }
}

fn op_name(op: FileOp) -> &'static str {
    match op {
        FileOp::Write => "write",
        FileOp::Read => "read",
        FileOp::Stat => "stat",
        FileOp::Delete => "delete",
    }
}

fn perform(st: &mut State, p: &Plan) -> Outcome {
    let name = op_name(p.op);
    match (p.op, st.w.io_size_bytes) {
        (FileOp::Read | FileOp::Write, Some(io)) => {
            let (f, off) = block_target(&st.open_files, p, io);
            let n = io as usize;
            let mut o = Outcome::ok(name);
            o.size_bytes = io;
            let r = if p.op == FileOp::Read {
                f.read_exact_at(&mut st.rbuf.as_mut_slice()[..n], off)
                    .map(|_| o.bytes_received = io)
            } else {
                f.write_all_at(&st.wbuf.as_slice()[..n], off)
                    .and_then(|_| sync(st, f))
                    .map(|_| o.bytes_sent = io)
            };
            match r {
                Ok(()) => o,
                Err(e) => Outcome::err(name, ErrorClass::Io, format!("offset {off}: {e}")),
            }
        }
        (FileOp::Read, None) => {
            let (size, files) = &st.prepared.classes[p.class];
            let path = &files[(p.file % files.len() as u64) as usize];
            let r = (|| -> std::io::Result<u64> {
                let mut f = open_options(&st.w, false, false).open(path)?;
                let buf = st.rbuf.as_mut_slice();
                let want = (*size as usize).div_ceil(ALIGN) * ALIGN;
                let want = want.min(buf.len());
                let mut got = 0usize;
                loop {
                    let n = f.read(&mut buf[got..want])?;
                    if n == 0 {
                        break;
                    }
                    got += n;
                    if got >= want {
                        break;
                    }
                }
                Ok(got as u64)
            })();
            match r {
                Ok(n) if n == *size => Outcome {
                    size_bytes: *size,
                    bytes_received: n,
                    ..Outcome::ok(name)
                },
                Ok(n) => Outcome::err(
                    name,
                    ErrorClass::Validation,
                    format!("{}: read {n} bytes, expected {size}", path.display()),
                ),
                Err(e) => io_err(name, e, path),
            }
        }
        (FileOp::Write, None) => {
            let size = st.prepared.classes[p.class].0;
            let path = st
                .prepared
                .run_dir
                .join("w")
                .join(format!("{}-{}", st.worker, p.seq));
            let r = (|| -> std::io::Result<()> {
                let f = open_options(&st.w, true, true).open(&path)?;
                let mut off = 0usize;
                let chunk = st.wbuf.as_slice().len();
                while off < size as usize {
                    let n = (size as usize - off).min(chunk);
                    f.write_all_at(&st.wbuf.as_slice()[..n], off as u64)?;
                    off += n;
                }
                sync(st, &f)
            })();
            match r {
                Ok(()) => {
                    st.written.push_back(path);
                    Outcome {
                        size_bytes: size,
                        bytes_sent: size,
                        ..Outcome::ok(name)
                    }
                }
                Err(e) => io_err(name, e, &path),
            }
        }
        (FileOp::Stat, _) => {
            let (_, files) = &st.prepared.classes[p.class];
            let path = &files[(p.file % files.len() as u64) as usize];
            match std::fs::metadata(path) {
                Ok(m) => Outcome {
                    size_bytes: m.len(),
                    ..Outcome::ok(name)
                },
                Err(e) => io_err(name, e, path),
            }
        }
        (FileOp::Delete, _) => {
            let path = match st.written.pop_front() {
                Some(p) => p,
                None => {
                    let p = st
                        .prepared
                        .run_dir
                        .join("w")
                        .join(format!("{}-{}-d", st.worker, p.seq));
                    if let Err(e) = File::create(&p) {
                        return io_err(name, e, &p);
                    }
                    p
                }
            };
            match std::fs::remove_file(&path) {
                Ok(()) => Outcome::ok(name),
                Err(e) => io_err(name, e, &path),
            }
        }
    }
}

impl Worker for FileWorker {
    fn request<'a>(&'a mut self, ctx: &'a mut RequestCtx<'_>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Some(st) = self.st.take() else {
                return Outcome::err("unknown", ErrorClass::Other, "worker lost its state");
            };
            let op = st.w.mix.pick(ctx.rng.next_f64());
            let size = st.w.file_sizes.pick(ctx.rng.next_f64());
            let class =
                st.w.file_sizes
                    .weights
                    .iter()
                    .position(|(s, _)| *s == size)
                    .unwrap_or(0);
            let plan = Plan {
                op,
                class,
                file: ctx.rng.next_u64(),
                block: ctx.rng.next_u64(),
                seq: ctx.seq,
            };
            if let Some(ring) = st.ring_for(op) {
                let mut st = st;
                let o = perform_ring(&mut st, &ring, &plan).await;
                self.st = Some(st);
                return o;
            }
            let r = tokio::task::spawn_blocking(move || {
                let mut st = st;
                let o = perform(&mut st, &plan);
                (st, o)
            })
            .await;
            match r {
                Ok((st, o)) => {
                    self.st = Some(st);
                    o
                }
                Err(e) => Outcome::err(op_name(op), ErrorClass::Other, e.to_string()),
            }
        })
    }
}
