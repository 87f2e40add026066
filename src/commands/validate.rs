//! `validate` and `explain`.

use crate::exit::{self, Failure};
use crate::recipe::{self, LoadError};
use crate::render::explain::{explain_json, explain_rows, explain_text};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  factorybench validate recipes/comprehensive.yml\n  factorybench validate recipes/comprehensive.yml --service chromadb-test\n  factorybench validate --json my.yml | jq '.diagnostics[].message'"
)]
pub struct ValidateArgs {
    /// The recipe file.
    pub recipe: PathBuf,
    /// Validate for running this service only: another service this binary cannot run does
    /// not make it invalid.
    #[arg(long)]
    pub service: Option<String>,
    /// Print the result (valid, diagnostics) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  factorybench explain recipes/comprehensive.yml")]
pub struct ExplainArgs {
    /// The recipe file.
    pub recipe: PathBuf,
    /// Print the plan summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn validate(a: &ValidateArgs) -> anyhow::Result<i32> {
    let lenient = recipe::load_lenient(&a.recipe);
    if let (Ok(l), Some(name)) = (&lenient, &a.service) {
        if l.plan.service(name).is_none() {
            let names: Vec<&str> = l.plan.services.iter().map(|s| s.name.as_str()).collect();
            return Err(Failure::invalid_input(format!(
                "no service `{name}` in {} (services: {})",
                a.recipe.display(),
                names.join(", ")
            ))
            .into());
        }
    }
    let print_json = |valid, services, diagnostics, runnable| {
        let j = recipe::diag::validate_json(&a.recipe, valid, services, diagnostics, runnable);
        crate::outln!("{}", j?)
    };
    let selected = lenient.and_then(|l| {
        l.select(a.service.as_deref())
            .map_err(|e| LoadError::CannotRun(Box::new(e)))
    });
    match selected {
        Ok(l) => {
            // Other services this binary cannot run (not selected): say so, once each.
            for (name, d) in l.blocked() {
                eprintln!(
                    "note: service `{name}` is not validated for running: {}",
                    d.message
                );
            }
            if a.json {
                print_json(true, l.plan.services.len(), &l.warnings, None)?;
            } else {
                eprint!("{}", l.render_warnings());
                crate::outln!(
                    "{}: valid ({} service{}, {} warning{})",
                    a.recipe.display(),
                    l.plan.services.len(),
                    if l.plan.services.len() == 1 { "" } else { "s" },
                    l.warnings.len(),
                    if l.warnings.len() == 1 { "" } else { "s" }
                )?;
            }
            Ok(exit::OK)
        }
        Err(LoadError::Invalid(e)) if a.json => {
            print_json(false, 0, &e.diagnostics, None)?;
            Ok(exit::INVALID_INPUT)
        }
        Err(LoadError::CannotRun(e)) if a.json => {
            print_json(false, 0, &e.error.diagnostics, Some(&e.runnable))?;
            Ok(exit::INVALID_INPUT)
        }
        Err(e) => Err(Failure::from(e).into()),
    }
}

pub fn explain(a: &ExplainArgs) -> anyhow::Result<i32> {
    // `validate` shows the warnings in full; `explain` names how many, once, so a user who
    // runs both does not read every warning twice.
    // Every service is shown; one this binary cannot run is marked (not refused).
    let l = recipe::load_lenient(&a.recipe).map_err(Failure::from)?;
    if !l.warnings.is_empty() {
        eprintln!(
            "{} warning{} (details: factorybench validate {})",
            l.warnings.len(),
            if l.warnings.len() == 1 { "" } else { "s" },
            crate::render::shell_quote(&a.recipe.display().to_string())
        );
    }
    let rows = explain_rows(&l, &measured_generators(&l.plan.global.metrics_db));
    if a.json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&explain_json(&l, &rows))?
        )?;
    } else {
        crate::out!("{}", explain_text(&l, &rows))?;
    }
    Ok(exit::OK)
}

/// The load generator's cost per service measured in the recipe's campaign file, when it
/// exists (an unreadable file only loses this line of `explain`).
fn measured_generators(
    db: &std::path::Path,
) -> std::collections::BTreeMap<String, crate::render::explain::MeasuredGenerator> {
    if !db.is_file() {
        return Default::default();
    }
    let costs = crate::report::generator::latest_costs(db).unwrap_or_else(|e| {
        eprintln!("note: no load-generator cost from {}: {e:#}", db.display());
        Default::default()
    });
    costs
        .into_iter()
        .map(|(service, (run_id, c))| {
            let m = crate::render::explain::MeasuredGenerator {
                run_id,
                requests_per_core_s: c.requests_per_core_s,
                lower_bound: c.basis == crate::report::generator::CeilingBasis::LowerBound,
            };
            (service, m)
        })
        .collect()
}
