//! Standard output that survives a reader who stops reading (`factorybench explain --json |
//! head -1`).
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with `EPIPE` and `println!` panics.
//! Commands print through [`outln!`](crate::outln)/[`out!`](crate::out) instead: a closed
//! stdout is remembered and further output is dropped, so the command finishes its work and
//! exits with its own code, quietly. Any other write error (a full disk behind `> file`) is
//! returned to the caller. [`install_panic_guard`] is the safety net for a `println!` that
//! remains (`run`'s summary, the SLURM commands): a panic caused by a closed stdout ends the
//! process quietly with exit code 0.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether a write to stdout has already met a closed pipe.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Write formatted text to stdout; `EPIPE` is swallowed (and remembered), other errors return.
pub fn write_stdout(args: std::fmt::Arguments<'_>) -> io::Result<()> {
    if stdout_closed() {
        return Ok(());
    }
    let mut o = io::stdout().lock();
    match o.write_fmt(args).and_then(|()| o.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        r => r,
    }
}

/// Whether an error (anywhere in its chain) is a write to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Turn the panic `println!` raises on a closed stdout into a quiet exit 0 (and the one
/// `eprintln!` raises on a closed stderr into a quiet exit 1: what went wrong cannot be said).
pub fn install_panic_guard() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") {
            if msg.starts_with("failed printing to stdout") {
                std::process::exit(crate::exit::OK);
            }
            if msg.starts_with("failed printing to stderr") {
                std::process::exit(crate::exit::FAILURE);
            }
        }
        default(info);
    }));
}

/// `println!` that tolerates a closed stdout; evaluates to `std::io::Result<()>`.
#[macro_export]
macro_rules! outln {
    () => { $crate::out::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` that tolerates a closed stdout; evaluates to `std::io::Result<()>`.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::write_stdout(format_args!($($arg)*)) };
}
