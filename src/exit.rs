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
