//! A sleep to the microsecond inside the runtime: a `timerfd` registered with Tokio's reactor.
//!
//! Tokio's own timers have a resolution of one millisecond, which at 20,000 arrivals/s is
//! twenty gaps between requests; a thread of its own that sleeps precisely (what the open-loop
//! dispatcher did before) costs a cross-thread wake-up of a runtime worker for every request
//! it hands out. A timerfd wakes the runtime's own reactor at the arrival instant, so the
//! dispatcher runs as a task, and the request it spawns starts on the same worker without
//! waking another thread. Kernel timers set through a timerfd take no timer slack.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;
use tokio::io::unix::AsyncFd;

pub struct PreciseTimer {
    fd: AsyncFd<OwnedFd>,
}

impl PreciseTimer {
    /// A timer on the current runtime's reactor (call inside the runtime); an error where
    /// the kernel refuses a timerfd.
    pub fn new() -> io::Result<PreciseTimer> {
        // SAFETY: a plain system call; the descriptor is owned from here on.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the OwnedFd stays open, and the same descriptor, for the AsyncFd's lifetime.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
        Ok(PreciseTimer { fd })
    }

    /// Sleep for `d` (at least a nanosecond).
    pub async fn sleep(&mut self, d: Duration) -> io::Result<()> {
        let ns = d.as_nanos().clamp(1, i64::MAX as u128) as i64;
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: ns / 1_000_000_000,
                tv_nsec: ns % 1_000_000_000,
            },
        };
        // SAFETY: a valid descriptor and a valid itimerspec; the old value is not asked for.
        let r =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            let mut guard = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            // SAFETY: reading 8 bytes into an 8-byte buffer from our own descriptor.
            let n = unsafe {
                libc::read(
                    guard.get_inner().as_raw_fd(),
                    expirations.as_mut_ptr().cast(),
                    8,
                )
            };
            if n == 8 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                guard.clear_ready();
                continue;
            }
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sleeps_at_least_what_it_was_asked_and_can_be_reused() {
        let mut t = PreciseTimer::new().unwrap();
        for us in [1u64, 300, 2_000] {
            let t0 = std::time::Instant::now();
            t.sleep(Duration::from_micros(us)).await.unwrap();
            assert!(t0.elapsed() >= Duration::from_micros(us));
        }
    }
}
