//! Process exit codes (documented in the README and `--help`).

/// Everything worked and every run is valid.
pub const OK: i32 = 0;
/// A runtime failure: service unreachable at setup, I/O error, SLURM refused a job.
pub const FAILURE: i32 = 1;
/// Invalid input: a bad recipe, bad arguments, an unknown campaign or service.
pub const INVALID_INPUT: i32 = 2;
/// A run was interrupted (Ctrl-C, SIGTERM, SLURM time limit) and kept as `partial`.
pub const PARTIAL: i32 = 3;
/// `compare` found a regression beyond a threshold.
pub const REGRESSION: i32 = 4;
/// A run finished but failed its validity gates (error rate, target rate not reached, ...).
pub const INVALID_RUN: i32 = 5;
/// `verify`: the report's content does not match its recorded hash (it was edited).
pub const TAMPERED: i32 = 6;
/// The campaign file could not be written (a full disk): the run stopped, rows committed
/// before stay readable, the run row says `failed` with the reason.
pub const STORE_FAILED: i32 = 7;
/// `ready`: a server answers on the service's port, but it is not the one this job started
/// (another job's or user's server holds the port): refused rather than measured.
pub const NOT_OURS: i32 = 8;

/// An error that carries the exit code the process ends with: library functions return it
/// (wrapped in `anyhow::Error`) where the code is not [`FAILURE`], and `cli` maps any error to
/// its code in one place ([`code_of`]) instead of downcasting each domain error.
#[derive(Debug)]
pub struct Failure {
    /// The process exit code.
    pub code: i32,
    /// What went wrong (shown with its causes).
    pub error: anyhow::Error,
    /// Shown as is, without the `error: ` prefix (a recipe's diagnostics are their own text).
    pub plain: bool,
}

impl Failure {
    pub fn new(code: i32, error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code,
            error: error.into(),
            plain: false,
        }
    }

    /// Invalid input (exit 2) with this message.
    pub fn invalid_input(message: impl std::fmt::Display) -> Failure {
        Failure::new(INVALID_INPUT, anyhow::anyhow!("{message}"))
    }

    /// A message printed as is (no `error: ` prefix).
    pub fn plain(code: i32, message: impl std::fmt::Display) -> Failure {
        Failure {
            code,
            error: anyhow::anyhow!("{message}"),
            plain: true,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Failure {}

/// The exit code of an error: the code a [`Failure`] carries (anywhere under added context),
/// else [`FAILURE`].
pub fn code_of(e: &anyhow::Error) -> i32 {
    e.downcast_ref::<Failure>().map_or(FAILURE, |f| f.code)
}
