//! Live monitoring: Pushgateway pushes while a run is in progress ([`push`], fed by [`live`]
//! statistics and [`telemetry`] from /proc and NVML), and the monitoring-stack job
//! (Prometheus + Pushgateway + Alertmanager + Grafana) with its endpoint file and SSH tunnel
//! ([`stack`]), its Alertmanager's receivers, silences and alerts ([`alerting`]).

pub mod alerting;
pub mod auth;
pub mod disk;
pub mod expo;
pub mod job;
pub mod live;
pub mod nvml;
pub mod procfs;
pub mod push;
pub mod service_node;
pub mod session;
pub mod snapshot;
pub mod stack;
pub mod telemetry;
