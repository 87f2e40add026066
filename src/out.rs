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

/// The progress bars on screen, if any: log lines are printed through them so that a bar is
/// cleared before a line and redrawn after it (never drawn over a log line).
static PROGRESS: std::sync::Mutex<Option<indicatif::MultiProgress>> = std::sync::Mutex::new(None);

/// Register (or, with `None`, forget) the progress bars log lines must be printed around.
pub fn set_progress(bars: Option<indicatif::MultiProgress>) {
    *PROGRESS.lock().unwrap_or_else(|e| e.into_inner()) = bars;
}

/// A file that receives a copy of every log line (`run`'s `global.logs_dir` log).
static LOG_FILE: std::sync::Mutex<Option<std::fs::File>> = std::sync::Mutex::new(None);

/// Copy log lines (without colour codes) into `file` from now on; `None` stops.
pub fn set_log_file(file: Option<std::fs::File>) {
    *LOG_FILE.lock().unwrap_or_else(|e| e.into_inner()) = file;
}

/// Append text to the log file, if one is set (e.g. the end-of-run summary).
pub fn append_log_file(text: &str) {
    if let Some(f) = LOG_FILE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let _ = f.write_all(strip_ansi(text.as_bytes()).as_slice());
    }
}

/// `bytes` without ANSI CSI sequences (`ESC [ ... letter`).
fn strip_ansi(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0x1b && bytes.get(i + 1) == Some(&b'[') {
            i += 2;
            while i < bytes.len() && !bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Write one log record to `sink`, around the registered progress bars (and to the log file).
pub fn write_log(sink: &mut dyn Write, buf: &[u8]) -> io::Result<()> {
    if let Some(f) = LOG_FILE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let _ = f.write_all(&strip_ansi(buf));
    }
    let bars = PROGRESS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match bars {
        Some(m) => m.suspend(|| sink.write_all(buf)),
        None => sink.write_all(buf),
    }
}

/// The `tracing` writer of the CLI: stderr, around the progress bars ([`set_progress`]).
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_log(&mut io::stderr().lock(), buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A terminal that records what is drawn, in order.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, n: usize) -> io::Result<()> {
            self.0.lock().unwrap().push(format!("up {n}"));
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.0.lock().unwrap().push(format!("bar {s}"));
            Ok(())
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.0.lock().unwrap().push(format!("bar {s}"));
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            self.0.lock().unwrap().push("clear".into());
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    struct LogSink(Arc<Mutex<Vec<String>>>);
    impl Write for LogSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap()
                .push(format!("log {}", String::from_utf8_lossy(buf).trim_end()));
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn colour_codes_are_stripped_from_the_log_file() {
        assert_eq!(
            strip_ansi(b"\x1b[33m WARN\x1b[0m disk almost full\n"),
            b" WARN disk almost full\n"
        );
    }

    #[test]
    fn a_log_line_clears_the_bars_first_and_they_are_redrawn_after_it() {
        let screen = Screen::default();
        let multi = indicatif::MultiProgress::with_draw_target(
            indicatif::ProgressDrawTarget::term_like(Box::new(screen.clone())),
        );
        let bar = multi.add(indicatif::ProgressBar::new(10));
        bar.set_message("local-files");
        bar.tick();
        set_progress(Some(multi.clone()));
        let before = screen.0.lock().unwrap().len();
        write_log(&mut LogSink(screen.0.clone()), b"WARN something happened\n").unwrap();
        set_progress(None);
        let events = screen.0.lock().unwrap().clone();
        let log_at = events
            .iter()
            .position(|e| e.starts_with("log WARN"))
            .expect("the log line was written");
        assert!(
            events[before..log_at].iter().any(|e| e == "clear"),
            "the bar was not cleared before the log line: {events:?}"
        );
        assert!(
            events[log_at + 1..].iter().any(|e| e.starts_with("bar ")),
            "the bar was not redrawn after the log line: {events:?}"
        );
    }
}
