//! Reports and comparisons computed from the recorded requests.
//!
//! [`analysis`] turns campaign files into [`analysis::CampaignAnalysis`] (one implementation,
//! also used by the runner's terminal summary).

pub mod analysis;

pub use analysis::{analyze_path, analyze_run, CampaignAnalysis, RunAnalysis};
