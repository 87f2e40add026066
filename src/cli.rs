//! Command-line interface: parse arguments, set up logging, dispatch, map errors to exit codes.

use crate::commands;
use crate::exit;
use clap::{CommandFactory, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  factorybench validate recipes/comprehensive.yml
  factorybench explain recipes/comprehensive.yml
  factorybench run recipes/quickstart.yml
  factorybench compile recipes/comprehensive.yml --out build/
  factorybench doctor recipes/comprehensive.yml
  factorybench submit recipes/comprehensive.yml
  factorybench status campaigns/ai-factory-comprehensive-benchmark
  factorybench report metrics.db --format html --out report.html
  factorybench compare baseline.db candidate.db --threshold p99_ms=10%

Exit codes: 0 ok, 1 failure, 2 invalid input (including a recipe file that does not exist),
3 partial run, 4 regression, 5 invalid run, 6 tampered report (verify).";

#[derive(Debug, Parser)]
#[command(
    name = "factorybench",
    version = crate::version_string(),
    about = "Benchmark the services of an HPC AI factory on SLURM + Apptainer",
    long_about = "factorybench validates a campaign recipe, compiles it into SLURM batch scripts with \
Apptainer launch commands, submits and tracks the jobs, drives open-loop load against each \
service while recording every request in SQLite, and reports and compares the results.",
    after_help = EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    /// More log output (-v debug, -vv trace). Overrides global.log_level.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a recipe and list every problem with its location.
    Validate(commands::validate::ValidateArgs),
    /// Summarise what a recipe will do: services, load, node-hours.
    Explain(commands::validate::ExplainArgs),
    /// Render SLURM batch scripts (one per service) into a directory.
    Compile(commands::compile::CompileArgs),
    /// Run the benchmark here, without SLURM (also what batch jobs run on the node).
    Run(commands::run::RunArgs),
    /// Find the highest rate a service sustains under its SLOs (ramp, bisection, repeats).
    Capacity(commands::capacity::CapacityArgs),
    /// Trends over many campaigns: intervals, change points, a gate on the newest.
    History(commands::history::HistoryArgs),
    /// Check before submitting what would fail on the compute node (exit 1 on a failure).
    ///
    /// Container runtime, images, account / partition / QOS / GRES, the binary the jobs run,
    /// the Pushgateway, ports, bind sources, base_path (writable, filesystem type), free space,
    /// GPUs. Without a recipe it checks the site.
    Doctor(commands::doctor::DoctorArgs),
    /// Compile and submit a campaign with sbatch.
    Submit(commands::slurm::SubmitArgs),
    /// Show the SLURM state and progress of a campaign's jobs.
    Status(commands::slurm::StatusArgs),
    /// Show (or follow) the logs of a campaign's jobs.
    Logs(commands::slurm::LogsArgs),
    /// Cancel every job of a campaign (and nothing else).
    Cancel(commands::slurm::CancelArgs),
    /// Turn a campaign file into a JSON, HTML, CSV or Prometheus report.
    Report(commands::report::ReportArgs),
    /// Compare two campaigns or reports; exit 4 on a regression beyond a threshold.
    Compare(commands::report::CompareArgs),
    /// Check a report's content hash (detects edited reports).
    Verify(commands::report::VerifyArgs),
    /// Push a finished campaign's final figures to a Pushgateway (or --delete them).
    Push(commands::push::PushArgs),
    /// The monitoring stack job: Prometheus + Pushgateway + Alertmanager + Grafana.
    #[command(subcommand)]
    Monitor(commands::monitor::MonitorCommand),
    /// Wait until a service answers its real health endpoint (used inside batch scripts).
    #[command(hide = true)]
    Ready(commands::compile::ReadyArgs),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Flags of the earlier Python tool that factorybench does not take, and what replaced them.
pub const REMOVED_FLAGS: &[(&str, &str)] = &[
    (
        "--pushgateway",
        "live metrics go to $PUSHGATEWAY_URL, else the recipe's `global.pushgateway_url`, else \
         the `factorybench monitor up` stack (found by itself); to push a finished campaign: \
         `factorybench push CAMPAIGN --gateway URL`",
    ),
    (
        "--gateway-url",
        "`factorybench push CAMPAIGN --gateway URL` (credentials from the stack, \
         $PUSHGATEWAY_PASSWORD_FILE or $PUSHGATEWAY_PASSWORD, never the command line)",
    ),
    (
        "--push",
        "pushing a finished campaign is its own command: `factorybench push CAMPAIGN`",
    ),
];

/// The message for a flag the earlier tool had, when that is why clap refused the arguments.
fn removed_flag(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split('=').next().unwrap_or_default();
    REMOVED_FLAGS
        .iter()
        .find(|(f, _)| *f == flag)
        .map(|(f, instead)| format!("{f} was an option of the earlier tool and is gone: {instead} (see docs/migrating.md)"))
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = if quiet {
        "error"
    } else {
        match verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("FACTORYBENCH_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("factorybench={level},warn"))
        });
    // Colour only on a terminal: logs of batch jobs and pipes stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| crate::out::LogWriter)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

/// Entry point: returns the process exit code.
pub fn main() -> i32 {
    crate::out::install_panic_guard();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            if let Some(m) = removed_flag(&e) {
                eprintln!("error: {m}");
                return exit::INVALID_INPUT;
            }
            e.exit()
        }
    };
    init_logging(cli.verbose, cli.quiet);
    let result = match &cli.command {
        Command::Validate(a) => commands::validate::validate(a),
        Command::Explain(a) => commands::validate::explain(a),
        Command::Compile(a) => commands::compile::exec(a),
        Command::Run(a) => commands::run::exec(a),
        Command::Capacity(a) => commands::capacity::exec(a),
        Command::History(a) => commands::history::exec(a),
        Command::Doctor(a) => commands::doctor::exec(a),
        Command::Submit(a) => commands::slurm::submit(a),
        Command::Status(a) => commands::slurm::status(a),
        Command::Logs(a) => commands::slurm::logs(a),
        Command::Cancel(a) => commands::slurm::cancel(a),
        Command::Report(a) => commands::report::report(a),
        Command::Compare(a) => commands::report::compare(a),
        Command::Verify(a) => commands::report::verify(a),
        Command::Push(a) => commands::push::exec(a),
        Command::Monitor(c) => commands::monitor::exec(c),
        Command::Ready(a) => commands::compile::ready(a),
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "factorybench", &mut buf);
            crate::out!("{}", String::from_utf8_lossy(&buf))
                .map(|()| exit::OK)
                .map_err(Into::into)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => report_error(&e),
    }
}

/// Print an error for a person and return its exit code (the code a `exit::Failure` carries,
/// else 1). A closed stdout (the reader of a pipe went away) is not an error: quiet exit 0.
pub fn report_error(e: &anyhow::Error) -> i32 {
    if crate::out::is_broken_pipe(e) {
        return exit::OK;
    }
    match e.downcast_ref::<exit::Failure>() {
        Some(f) if f.plain => eprintln!("{e}"),
        _ => eprintln!("error: {e:#}"),
    }
    exit::code_of(e)
}
