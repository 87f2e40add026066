//! The output formats of `report` and `compare`, and the dispatch to each format's renderer.

use super::compare::{self, Comparison};
use super::document::ReportDocument;
use super::{html, text};
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Versioned JSON (schemas/report.schema.json).
    Json,
    /// One self-contained HTML page with inline SVG charts.
    Html,
    /// One row per service/run/operation.
    Csv,
    /// Prometheus text exposition format.
    Prom,
    /// A concise human summary (no content hash): the default on a terminal.
    Text,
}

impl ReportFormat {
    /// The format a file name asks for (`.html`, `.csv`, `.prom`, `.txt`), else JSON.
    pub fn from_path(p: &std::path::Path) -> ReportFormat {
        match p.extension().and_then(|e| e.to_str()) {
            Some("html" | "htm") => ReportFormat::Html,
            Some("csv") => ReportFormat::Csv,
            Some("prom") => ReportFormat::Prom,
            Some("txt") => ReportFormat::Text,
            _ => ReportFormat::Json,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareFormat {
    Text,
    Markdown,
    Html,
    Json,
}

/// Render a report document in a format.
pub fn render(doc: &ReportDocument, format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => doc.to_json(),
        ReportFormat::Html => html::to_html(doc),
        ReportFormat::Csv => text::to_csv(doc),
        ReportFormat::Prom => text::to_prom(doc),
        ReportFormat::Text => text::to_summary(doc),
    }
}

/// Render a comparison in a format.
pub fn render_comparison(c: &Comparison, format: CompareFormat) -> serde_json::Result<String> {
    Ok(match format {
        CompareFormat::Text => compare::to_text(c),
        CompareFormat::Markdown => compare::to_markdown(c),
        CompareFormat::Html => compare::to_html(c),
        CompareFormat::Json => {
            let mut s = serde_json::to_string_pretty(c)?;
            s.push('\n');
            s
        }
    })
}
