//! Docs that are true: every command written in README.md and docs/*.md (code blocks and
//! inline code) is checked against the tool and the tree.
//!
//! - `factorybench …` and `cargo run -- …`: the subcommands exist and every flag is one the
//!   subcommand takes; a command written out in full (no `[`, `|` or `...`) parses as clap
//!   would parse it.
//! - `cargo test --test X`: X is a test target (`tests/X.rs` or `tests/X/main.rs`), here and in
//!   scripts, tests and sources that tell a reader what to run; a filter after it names a test.
//! - `bash scripts/…`, `scripts/….sh`, `bench/…`: the file exists.

use clap::CommandFactory;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files whose commands are checked.
fn doc_files() -> Vec<PathBuf> {
    let mut v = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    v.extend(docs);
    v
}

/// A command as written, and where.
#[derive(Debug)]
struct Written {
    file: String,
    line: usize,
    text: String,
    /// Inline code in prose, where `factorybench run` names a command rather than runs one.
    inline: bool,
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: `{}`", self.file, self.line, self.text)
    }
}

/// Every line of a fenced code block (continuation lines joined, `$ ` prompts and trailing
/// `# comments` dropped) and every inline code span outside code blocks.
fn snippets(path: &Path) -> Vec<Written> {
    let text = std::fs::read_to_string(path).unwrap();
    let file = path
        .strip_prefix(root())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            let mut l = line.trim().trim_start_matches("$ ").to_string();
            if let Some(c) = l.find("  #").or_else(|| l.find(" # ")) {
                l.truncate(c);
            }
            let (start, mut joined) = pending.take().unwrap_or((n, String::new()));
            joined.push_str(l.trim());
            if let Some(j) = joined.strip_suffix('\\') {
                pending = Some((start, format!("{} ", j.trim_end())));
            } else {
                out.push(Written {
                    file: file.clone(),
                    line: start,
                    text: joined,
                    inline: false,
                });
            }
            continue;
        }
        // Inline code: `...` (a table's `\|` stays as it is; it is an alternative).
        let mut rest = line;
        while let Some(a) = rest.find('`') {
            let after = &rest[a + 1..];
            let Some(b) = after.find('`') else { break };
            out.push(Written {
                file: file.clone(),
                line: n,
                text: after[..b].to_string(),
                inline: true,
            });
            rest = &after[b + 1..];
        }
    }
    out
}

/// `VAR=value` assignments in front of a command dropped, and a pipe after it.
fn command_part(s: &str) -> &str {
    let mut s = s.trim();
    while let Some((first, rest)) = s.split_once(' ') {
        let is_assignment = first.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        });
        if !is_assignment {
            break;
        }
        s = rest.trim_start();
    }
    match s.find(" | ") {
        Some(p) => s[..p].trim_end(),
        None => s,
    }
}

/// Shell words, with simple single and double quotes.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A placeholder such as `RECIPE`, `CAMPAIGN...` or `ARGS`.
fn is_placeholder(w: &str) -> bool {
    let w = w.trim_end_matches("...").trim_end_matches('…');
    w.len() > 1
        && w.chars().any(|c| c.is_ascii_uppercase())
        && w.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Whether a written command is a synopsis (optional parts, alternatives, elisions,
/// placeholders) rather than one to run as it stands.
fn is_synopsis(args: &[String]) -> bool {
    args.iter().any(|a| {
        a.contains('[')
            || a.contains('|')
            || a.contains("...")
            || a.contains('…')
            || is_placeholder(a)
    })
}

/// Problems of one `factorybench ARGS` command (`inline`: named in prose, where required
/// arguments may be left out).
fn check_cli(args: &[String], inline: bool) -> Result<(), String> {
    let top = factorybench::cli::Cli::command();
    let mut path: Vec<&clap::Command> = vec![&top];
    let mut i = 0;
    // The subcommand path: words that name subcommands (`a\|b` lists alternatives).
    while i < args.len() {
        let cur = *path.last().unwrap();
        if !cur.has_subcommands() {
            break;
        }
        let w = args[i].as_str();
        if w.starts_with('-') || w == "..." || w == "…" || is_placeholder(w) {
            break;
        }
        let alts: Vec<&str> = w.split('|').map(|a| a.trim_matches('\\')).collect();
        for a in &alts {
            if cur.find_subcommand(a).is_none() {
                return Err(format!("`{}` has no subcommand `{a}`", path_name(&path)));
            }
        }
        if alts.len() > 1 {
            return Ok(());
        }
        path.push(cur.find_subcommand(w).unwrap());
        i += 1;
    }
    // Every flag is one the subcommand (or a parent's global) takes.
    for w in &args[i..] {
        let w = w.trim_start_matches('[');
        let Some(flag) = w.strip_prefix('-') else {
            continue;
        };
        if flag.is_empty() || w == "--" {
            continue;
        }
        let name: String = flag
            .trim_start_matches('-')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if name.is_empty() {
            continue;
        }
        let long = flag.starts_with('-');
        let known = path.iter().rev().enumerate().any(|(depth, c)| {
            c.get_arguments().any(|a| {
                (depth == 0 || a.is_global_set())
                    && if long {
                        a.get_long() == Some(name.as_str())
                            || a.get_all_aliases()
                                .is_some_and(|al| al.contains(&name.as_str()))
                    } else {
                        name.len() == 1 && a.get_short() == name.chars().next()
                    }
            })
        }) || (long && matches!(name.as_str(), "help" | "version"))
            || (!long && matches!(name.as_str(), "h" | "V"));
        if !known {
            return Err(format!(
                "`{}` takes no {}{name}",
                path_name(&path),
                if long { "--" } else { "-" }
            ));
        }
    }
    if !is_synopsis(args) {
        let argv = std::iter::once("factorybench".to_string()).chain(args.iter().cloned());
        if let Err(e) = factorybench::cli::Cli::command().try_get_matches_from(argv) {
            use clap::error::ErrorKind;
            // Prose names a command (`factorybench run`) or a flag (`compile --out`).
            let named_only = inline
                && (matches!(
                    e.kind(),
                    ErrorKind::MissingRequiredArgument
                        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                        | ErrorKind::MissingSubcommand
                ) || (e.kind() == ErrorKind::InvalidValue
                    && args.last().is_some_and(|a| a.starts_with("--"))));
            if !named_only
                && !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
            {
                return Err(e.to_string());
            }
        }
    }
    Ok(())
}

fn path_name(path: &[&clap::Command]) -> String {
    path.iter()
        .map(|c| c.get_name())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The test targets cargo knows: `tests/X.rs` and `tests/X/main.rs`.
fn test_targets() -> Vec<String> {
    std::fs::read_dir(root().join("tests"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|e| e == "rs") {
                Some(p.file_stem()?.to_string_lossy().into_owned())
            } else if p.join("main.rs").is_file() {
                Some(p.file_name()?.to_string_lossy().into_owned())
            } else {
                None
            }
        })
        .collect()
}

/// Whether some test of the `it` binary has `filter` in its path (module or function name).
fn it_has_test_matching(filter: &str) -> bool {
    std::fs::read_dir(root().join("tests/it"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .any(|p| {
            let module = p.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            module.contains(filter)
                || text.lines().any(|l| {
                    l.trim_start()
                        .strip_prefix("fn ")
                        .and_then(|r| r.split('(').next())
                        .is_some_and(|name| format!("{module}::{name}").contains(filter))
                })
        })
}

/// Problems of one `cargo test ARGS` command.
fn check_cargo_test(args: &[String]) -> Result<(), String> {
    let targets = test_targets();
    let mut target = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--test" {
            let t = it.next().ok_or("`--test` without a target")?;
            if !targets.contains(t) {
                return Err(format!(
                    "there is no test target `{t}` (there are: {}); write `cargo test --test it -- NAME`",
                    targets.join(", ")
                ));
            }
            target = Some(t.clone());
        }
    }
    // A filter (the first word that is not an option, before or after `--`).
    if target.as_deref() == Some("it") {
        let mut skip_value = false;
        for a in args {
            if skip_value {
                skip_value = false;
                continue;
            }
            if matches!(a.as_str(), "--test" | "--features" | "-p" | "--package") {
                skip_value = true;
                continue;
            }
            if a.starts_with('-') || a == "test" {
                continue;
            }
            if !it_has_test_matching(a) {
                return Err(format!("no test of the `it` binary matches `{a}`"));
            }
            break;
        }
    }
    Ok(())
}

/// A path to a script or file of the repository, checked to exist.
fn check_path(p: &str) -> Result<(), String> {
    let p = p.trim_end_matches([',', '.', ')']);
    if p.contains(['<', '*']) || p.chars().any(|c| c.is_ascii_uppercase()) {
        return Ok(()); // a pattern or placeholder (`scripts/<svc>.sbatch`, `scripts/NAME…`)
    }
    if root().join(p).exists() {
        Ok(())
    } else {
        Err(format!("`{p}` does not exist"))
    }
}

/// What is wrong with one snippet, if it is a command at all.
fn check(snippet: &str, inline: bool) -> Option<Result<(), String>> {
    let cmd = command_part(snippet);
    let w = words(cmd);
    let first = w.first()?.as_str();
    match first {
        "factorybench" if w.len() > 1 => Some(check_cli(&w[1..], inline)),
        "cargo" if w.get(1).is_some_and(|x| x == "run") => {
            let dash = w.iter().position(|x| x == "--")?;
            Some(check_cli(&w[dash + 1..], inline))
        }
        "cargo" if w.get(1).is_some_and(|x| x == "test") => Some(check_cargo_test(&w[2..])),
        "bash" | "sh" => {
            let script = w.get(1)?;
            (script.starts_with("scripts/") || script.starts_with("bench/"))
                .then(|| check_path(script))
        }
        p if (p.starts_with("scripts/")
            || p.starts_with("bench/")
            || p.starts_with("./scripts/"))
            && (p.ends_with(".sh")
                || p.ends_with(".mjs")
                || p.ends_with(".py")
                || p.ends_with('/')) =>
        {
            Some(check_path(p.trim_start_matches("./")))
        }
        _ => None,
    }
}

#[test]
fn every_command_in_the_docs_is_true() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for f in doc_files() {
        for s in snippets(&f) {
            if let Some(r) = check(&s.text, s.inline) {
                checked += 1;
                if let Err(e) = r {
                    wrong.push(format!("{s}: {e}"));
                }
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} commands found: is the extractor broken?"
    );
    assert!(
        wrong.is_empty(),
        "{} false commands:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Scripts, tests and sources tell readers what to run as well (a stale test's message
/// pointed at `cargo test --test report_formats`).
#[test]
fn every_cargo_test_target_named_anywhere_exists() {
    let mut wrong = Vec::new();
    let mut files = doc_files();
    for dir in ["scripts", "tests/it", "src", ".ci"] {
        let mut stack = vec![root().join(dir)];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p
                    .extension()
                    .is_some_and(|e| e == "rs" || e == "sh" || e == "md")
                    || p.extension().is_none()
                {
                    files.push(p);
                }
            }
        }
    }
    let targets = test_targets();
    // This file writes false commands on purpose.
    files.retain(|f| !f.ends_with("tests/it/docs_commands.rs"));
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(p) = rest.find("--test ") {
                let t: String = rest[p + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                    .collect();
                // `--test-threads` and the like are other options; `--test X` names a target.
                if !t.is_empty() && !targets.contains(&t) && line.contains("cargo test") {
                    wrong.push(format!("{}:{}: --test {t}", f.display(), i + 1));
                }
                rest = &rest[p + 7..];
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "test targets that do not exist:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_catches_false_commands() {
    assert!(check("factorybench report X --format json", false)
        .unwrap()
        .is_ok());
    assert!(check("factorybench reprot X", false).unwrap().is_err());
    assert!(check("factorybench report X --fromat json", false)
        .unwrap()
        .is_err());
    assert!(check("factorybench monitor up\\|status\\|down", false)
        .unwrap()
        .is_ok());
    assert!(check("factorybench monitor up\\|sleep", false)
        .unwrap()
        .is_err());
    assert!(check("factorybench status [CAMPAIGN] [--json]", false)
        .unwrap()
        .is_ok());
    assert!(check("cargo run -- report quickstart.db", false)
        .unwrap()
        .is_ok());
    assert!(check("cargo test --test render_scripts", false)
        .unwrap()
        .is_err());
    assert!(check("cargo test --test it -- render_scripts", false)
        .unwrap()
        .is_ok());
    assert!(
        check("cargo test --test it -- no_such_test_anywhere", false)
            .unwrap()
            .is_err()
    );
    assert!(check(
        "FB_X=1 cargo test --test fuzz_recipes -- --nocapture",
        false
    )
    .unwrap()
    .is_ok());
    assert!(check("bash scripts/test.sh", false).unwrap().is_ok());
    assert!(check("bash scripts/no-such.sh", false).unwrap().is_err());
    assert!(check("factorybench explain r.yml --json | head -1", false)
        .unwrap()
        .is_ok());
    assert!(check("the factorybench tool", false).is_none());
}
