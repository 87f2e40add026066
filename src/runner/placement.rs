//! Where a job writes its run file (see `store::publish`): directly in place, or, when the
//! campaign file's directory is on a network filesystem, on node-local storage with a live
//! copy published into place every few seconds and once more at the end.
//! `FB_RUN_FILES=direct|local` overrides the choice (`auto`, the default, decides by the
//! filesystem type); `FB_PUBLISH_INTERVAL_S` sets the interval (default 5 s, at least 5 times
//! the last publication's duration).

use crate::fsinfo::{run_file_mode, FsType, RunFileMode as Mode};
use crate::store::publish::publish;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The run file of this invocation: where the store writes, and the publisher when it is not
/// the target itself.
pub struct Placement {
    target: PathBuf,
    write: PathBuf,
    publisher: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    finished: bool,
}

impl Placement {
    pub fn new(target: &Path) -> anyhow::Result<Placement> {
        let (mode, fs) = run_file_mode(target);
        if mode == Mode::Direct {
            return Ok(Placement {
                target: target.to_path_buf(),
                write: target.to_path_buf(),
                publisher: None,
                finished: true,
            });
        }
        let base = std::env::var_os("SLURM_TMPDIR")
            .or_else(|| std::env::var_os("TMPDIR"))
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        // SAFETY: getuid(2) has no preconditions.
        let uid = unsafe { libc::getuid() };
        let dir = base.join(format!("factorybench-{uid}")).join(format!(
            "{}-{}",
            std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| "local".into()),
            std::process::id()
        ));
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
        }
        let write = dir.join(target.file_name().unwrap_or_else(|| "run.db".as_ref()));
        // The published copy's directory (the store creates only the node-local one).
        if let Some(p) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(p)?;
        }
        // Earlier runs of the target (a local `run --db` on a network filesystem) are kept.
        if target.is_file() {
            std::fs::copy(target, &write)?;
        }
        eprintln!(
            "run file: {} is on {}: SQLite's WAL needs every reader on one host, so this job writes {} (node-local) and publishes a consistent copy to it every few seconds and at the end",
            target.display(),
            fs.map(FsType::name).unwrap_or_else(|| "a network filesystem".into()),
            write.display()
        );
        let stop = Arc::new(AtomicBool::new(false));
        let interval = std::env::var("FB_PUBLISH_INTERVAL_S")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(5));
        let (s, w, t) = (stop.clone(), write.clone(), target.to_path_buf());
        let handle = std::thread::Builder::new()
            .name("fb-publish".into())
            .spawn(move || {
                let mut wait = interval;
                loop {
                    let t0 = Instant::now();
                    while t0.elapsed() < wait {
                        if s.load(Ordering::SeqCst) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    if w.is_file() {
                        match publish(&w, &t) {
                            // A large file is not copied more than a fifth of the time.
                            Ok(p) => wait = interval.max(p.took * 5),
                            Err(e) => tracing::warn!("publishing {}: {e}", t.display()),
                        }
                    }
                }
            })?;
        Ok(Placement {
            target: target.to_path_buf(),
            write,
            publisher: Some((stop, handle)),
            finished: false,
        })
    }

    /// Where the store writes.
    pub fn write_path(&self) -> &Path {
        &self.write
    }

    /// After the store is closed: the last publication, and the node-local copy removed.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if let Some((stop, h)) = self.publisher.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = h.join();
        }
        let p = publish(&self.write, &self.target)?;
        tracing::info!(
            "published {} ({} bytes in {:.2} s)",
            self.target.display(),
            p.bytes,
            p.took.as_secs_f64()
        );
        if let Some(dir) = self.write.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }
}

impl Drop for Placement {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            eprintln!(
                "error: could not publish the run file {}: {e}; the node-local copy is {}",
                self.target.display(),
                self.write.display()
            );
        }
    }
}
