//! Reports and comparisons computed from the recorded requests.
//!
//! [`analysis`] turns campaign files into [`analysis::CampaignAnalysis`] (one implementation,
//! also used by the runner's terminal summary); [`document`] wraps it with provenance (JSON);
//! [`table`] flattens it for [`text`] (CSV, Prometheus); [`html`] renders a self-contained page
//! with [`svg`] charts; [`compare`] diffs two campaigns; [`integrity`] hashes reports.

pub mod analysis;
pub mod capacity;
pub mod compare;
pub mod document;
pub mod format;
pub mod generator;
pub mod history;
pub mod html;
pub mod integrity;
pub mod judge;
pub mod metric;
pub mod model;
pub mod ops;
pub mod provenance;
pub mod push;
pub mod samples;
pub mod seed;
pub mod service_node;
pub mod statistics;
pub mod summary;
pub mod svg;
pub mod table;
pub mod text;

pub use analysis::{analyze_path, analyze_run, CampaignAnalysis, RunAnalysis};
pub use document::ReportDocument;
