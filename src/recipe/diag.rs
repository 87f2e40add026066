//! Recipe problems with their location, rendered like a compiler error.

use super::yaml::Pos;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Dotted path of the offending value, e.g. `services[2].slurm.time`.
    pub path: String,
    pub pos: Pos,
    pub message: String,
    /// A hint such as "did you mean `requests_per_second`?".
    pub help: Option<String>,
    /// A secret on the source line: the rendered snippet shows `***` in its place (a warning
    /// on stderr is a job log on a cluster).
    #[serde(skip)]
    pub redact: Option<String>,
    /// More secrets to mask on the source line.
    #[serde(skip)]
    pub redact_all: Vec<String>,
    /// A warning for `validate` and `compile` (the recipe's format is fine) that `submit`
    /// refuses as an error: the job could not start on the node.
    #[serde(skip)]
    pub stops_submit: bool,
    /// An error located at one service that this binary cannot run: the other services of the
    /// recipe stay usable with `--service` (see [`crate::recipe::Loaded::select`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cannot_run: bool,
}

impl Diagnostic {
    /// An error that makes the whole recipe unusable (not one that only stops its service).
    pub fn blocks_recipe(&self) -> bool {
        self.severity == Severity::Error && !self.cannot_run
    }

    /// The index of the service this diagnostic is located at (`services[3].backend` → 3).
    pub fn service_index(&self) -> Option<usize> {
        let rest = self.path.strip_prefix("services[")?;
        rest[..rest.find(']')?].parse().ok()
    }
}

/// Every problem found in one recipe file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct RecipeError {
    pub file: PathBuf,
    pub source_text: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl RecipeError {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn error_count(&self) -> usize {
        self.errors().count()
    }
}

impl fmt::Display for RecipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            write!(f, "{}", render(d, &self.file, &self.source_text))?;
        }
        let n = self.error_count();
        write!(
            f,
            "{} is invalid: {} error{}",
            self.file.display(),
            n,
            if n == 1 { "" } else { "s" }
        )
    }
}

/// Render one diagnostic with the source line and a caret under the column.
/// `line` with the credentials of every URL in it (userinfo, secret query values) masked.
fn mask_url_credentials(line: &str) -> String {
    // `KEY: value` with a secret-looking key (POSTGRES_PASSWORD, API_TOKEN, ...): the value.
    if let Some((key, value)) = line.split_once(':') {
        let k = key
            .trim()
            .trim_start_matches("- ")
            .trim_matches(['"', '\'']);
        let v = value.trim();
        let names_a_source = k.ends_with("_env") || k.ends_with("_file");
        if !v.is_empty()
            && !v.contains("://")
            && !v.starts_with("${")
            && !names_a_source
            && super::decode::looks_secret(k)
        {
            return format!("{key}: ***");
        }
    }
    let mut out = mask_flow_pairs(line);
    for tok in line
        .split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '[' | ']' | '{' | '}'))
    {
        if tok.contains("://") {
            for secret in super::redact::url_credentials(tok) {
                if !secret.is_empty() {
                    out = out.replace(secret.as_str(), "***");
                }
            }
        }
    }
    out
}

/// `line` with the value of every `key: value` pair of a flow mapping (`{password: x, ...}`)
/// whose key looks secret masked: the fallback for a line whose recipe did not parse.
fn mask_flow_pairs(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find(['{', ',']) {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        let piece = &rest[..end];
        if let Some((k, v)) = piece.split_once(':') {
            let key = k.trim().trim_matches(['"', '\'']);
            let v = v.trim();
            let names_a_source = key.ends_with("_env") || key.ends_with("_file");
            if !v.is_empty()
                && !v.starts_with('{')
                && !v.starts_with("${")
                && !v.contains("://")
                && !names_a_source
                && v.parse::<f64>().is_err()
                && (super::decode::looks_secret(key) || super::redact::header_is_secret(key))
            {
                out.push_str(k);
                out.push_str(": ***");
                rest = &rest[end..];
                continue;
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn render(d: &Diagnostic, file: &Path, src: &str) -> String {
    let label = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut out = format!(
        "{label}: {}\n  --> {}:{}:{}\n",
        d.message,
        file.display(),
        d.pos.line,
        d.pos.col
    );
    if let Some(line) = src.lines().nth(d.pos.line.saturating_sub(1)) {
        let num = d.pos.line.to_string();
        let pad = " ".repeat(num.len());
        let mut line = line.to_string();
        // Every secret of the recipe, whatever this diagnostic is about (a flow mapping puts
        // several credentials on one line); the longest first, so that none is left in part.
        let mut secrets: Vec<&String> = d.redact.iter().chain(&d.redact_all).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for secret in secrets {
            if !secret.is_empty() {
                line = line.replace(secret.as_str(), "***");
            }
        }
        // Whatever the diagnostic is about, a URL on the quoted line never shows its
        // credentials (stderr is the job log on a cluster).
        line = mask_url_credentials(&line);
        out.push_str(&format!("{pad} |\n{num} | {line}\n{pad} | "));
        out.push_str(&" ".repeat(d.pos.col.saturating_sub(1)));
        out.push_str("^\n");
    }
    if !d.path.is_empty() {
        out.push_str(&format!("  = at: {}\n", d.path));
    }
    if let Some(h) = &d.help {
        out.push_str(&format!("  = help: {h}\n"));
    }
    out.push('\n');
    out
}

/// The closest candidate by Jaro-Winkler similarity, if it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&lower, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `validate --json`: the file, whether it is valid, how many services, the diagnostics and,
/// when some services cannot run here, those that can.
pub fn validate_json(
    file: &Path,
    valid: bool,
    services: usize,
    diagnostics: &[Diagnostic],
    runnable: Option<&[String]>,
) -> serde_json::Result<String> {
    #[derive(Serialize)]
    struct ValidateJson<'a> {
        file: String,
        valid: bool,
        services: usize,
        diagnostics: &'a [Diagnostic],
        #[serde(skip_serializing_if = "Option::is_none")]
        runnable: Option<&'a [String]>,
    }
    serde_json::to_string_pretty(&ValidateJson {
        file: file.display().to_string(),
        valid,
        services,
        diagnostics,
        runnable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys() {
        let keys = ["requests_per_second", "client_count", "duration"];
        assert_eq!(
            did_you_mean("request_per_second", &keys),
            Some("requests_per_second")
        );
        assert_eq!(did_you_mean("clients_count", &keys), Some("client_count"));
        assert_eq!(did_you_mean("zzz", &keys), None);
    }
}
