use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// Submit the monitoring job (Prometheus + Pushgateway + Grafana).
    Up,
    /// Show where the monitoring stack runs.
    Status,
    /// Cancel the monitoring job.
    Down,
    /// Print the SSH tunnel command to reach Grafana from a laptop.
    Tunnel,
}

pub fn exec(_c: &MonitorCommand) -> anyhow::Result<i32> {
    anyhow::bail!("monitor is not implemented yet")
}
