//! The import check that anyone can run (`cargo test --test it -- architecture`): a textual scan
//! of `src/**/*.rs` (test modules left out) that enforces three rules of docs/architecture.md:
//!
//! 1. **Layers**: a module imports only from its own layer or a lower one (the table below
//!    mirrors the one in docs/architecture.md; a new top-level module must be added to both).
//! 2. **No import circles** between modules (one node per file or inline submodule's file:
//!    `report::analysis`, `runner::clients::http`, ...). A module may still name its own
//!    ancestors and descendants (a `mod.rs` that re-exports its children is a facade, not a
//!    circle).
//! 3. **No function over 150 lines** unless the line before it (above its doc comment and
//!    attributes) says why with a `// long: <reason>` comment.
//!
//! The scan reads source text, not the compiler's resolution: `use crate::a::{b, c::d}`,
//! `crate::a::b` in expressions and `super::`/`self::` paths are expanded and resolved to the
//! longest module prefix that is a file. Strings, characters and comments are blanked first, so
//! a brace in a format string or a path in a doc link counts for nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Layers, lowest first (docs/architecture.md). `kinds` sits between the shared record types
/// and `recipe`: the recipe decoder reads the kinds' table, never the other way round.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "0 (leaf: model, rng, exit, compat, out, proc, capacity, redact, shell, fsinfo, crate root)",
        &[
            "", "model", "rng", "exit", "compat", "out", "proc", "capacity", "redact", "shell", "fsinfo",
        ],
    ),
    ("0.5 kinds", &["kinds"]),
    ("1 recipe", &["recipe"]),
    ("2 render", &["render"]),
    ("3 store", &["store"]),
    ("4 slurm", &["slurm"]),
    ("5 runner", &["runner"]),
    ("6 monitor", &["monitor"]),
    ("7 doctor, report", &["doctor", "report"]),
    ("8 commands, cli", &["commands", "cli", "main"]),
];

/// Circles known on this branch that another change removes. Each entry is a set of modules
/// that is allowed to form one strongly connected component, exactly.
const ALLOWED_CIRCLES: &[&[&str]] = &[];

/// Imports from a lower layer to a higher one known on this branch that another change
/// removes: (importing top-level module, imported top-level module).
const ALLOWED_UPWARD: &[(&str, &str)] = &[];

/// Functions over the limit in code that another change splits: (file, fn name).
const PENDING_LONG: &[(&str, &str)] = &[];

const MAX_FN_LINES: usize = 150;

struct SourceFile {
    /// Path relative to the repository root, with `/`.
    rel: String,
    /// Module path: `src/report/analysis.rs` → `["report", "analysis"]`, `src/lib.rs` → `[]`.
    module: Vec<String>,
    /// The text with strings, characters and comments blanked and test modules removed.
    code: String,
    /// The original lines (for the `// long:` markers).
    lines: Vec<String>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            // src/bin holds separate binaries: their `crate::` is not the library's.
            if p.file_name().is_some_and(|n| n == "bin") && p.parent() == Some(&src_dir()) {
                continue;
            }
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn module_of(rel_to_src: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel_to_src
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if !(stem == "mod" || (parts.is_empty() && stem == "lib")) {
        parts.push(stem.to_string());
    }
    parts
}

/// Blank the contents of comments, string literals (plain, byte and raw) and character
/// literals with spaces, keeping every newline, so that line numbers and braces of code stay.
fn blank_non_code(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if (c == 'r' || (c == 'b' && next == Some('r')))
            && !is_ident(b.get(i.wrapping_sub(1)).copied().filter(|_| i > 0))
            && {
                let s = if c == 'b' { i + 2 } else { i + 1 };
                let mut j = s;
                while b.get(j) == Some(&'#') {
                    j += 1;
                }
                b.get(j) == Some(&'"')
            }
        {
            // raw string r#"..."#
            let s = if c == 'b' { i + 2 } else { i + 1 };
            let mut j = s;
            let mut hashes = 0;
            while b[j] == '#' {
                hashes += 1;
                j += 1;
            }
            for _ in i..=j {
                out.push(' ');
            }
            i = j + 1;
            loop {
                if i >= b.len() {
                    break;
                }
                if b[i] == '"' && (0..hashes).all(|k| b.get(i + 1 + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(b[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // a character literal ('x', '\n', '\u{..}') or a lifetime ('a)
            if next == Some('\\') {
                out.push(' ');
                i += 1;
                while i < b.len() {
                    let ch = b[i];
                    out.push(blank(ch));
                    i += 1;
                    if ch == '\\' && i < b.len() {
                        out.push(' ');
                        i += 1;
                        continue;
                    }
                    if ch == '\'' {
                        break;
                    }
                }
            } else if b.get(i + 2) == Some(&'\'') {
                out.push_str("   ");
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Remove `#[cfg(test)]` items (test modules and test-only functions) from blanked code,
/// keeping their newlines.
fn drop_test_items(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        // the item ends at the `;` or at the brace that closes its first `{`
        let mut depth = 0usize;
        let mut end = item.len();
        for (k, ch) in item.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = k + 1;
                    break;
                }
                _ => {}
            }
        }
        out.extend(
            item[..end]
                .chars()
                .map(|c| if c == '\n' { '\n' } else { ' ' }),
        );
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

fn load_sources() -> Vec<SourceFile> {
    let src = src_dir();
    let mut paths = Vec::new();
    collect_rs(&src, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let rel_src = p.strip_prefix(&src).unwrap();
            SourceFile {
                rel: format!("src/{}", rel_src.to_string_lossy().replace('\\', "/")),
                module: module_of(rel_src),
                code: drop_test_items(&blank_non_code(&text)),
                lines: text.lines().map(str::to_string).collect(),
            }
        })
        .collect()
}

// ---- paths ------------------------------------------------------------------------------

/// Read one path tree at `s[i..]` (after `crate::`, `super::` or `self::`): identifiers
/// separated by `::`, with `{a, b::c}` groups expanded. Returns the paths (each a list of
/// segments) and pushes them after `prefix`.
fn read_tree(
    s: &[u8],
    mut i: usize,
    prefix: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && (s[*i] as char).is_whitespace() {
            *i += 1;
        }
    };
    let depth0 = prefix.len();
    loop {
        skip_ws(&mut i);
        if i < s.len() && s[i] == b'{' {
            i += 1;
            loop {
                skip_ws(&mut i);
                if i >= s.len() {
                    break;
                }
                if s[i] == b'}' {
                    i += 1;
                    break;
                }
                if s[i] == b',' {
                    i += 1;
                    continue;
                }
                let before = prefix.len();
                let j = read_tree(s, i, prefix, out);
                prefix.truncate(before);
                if j == i {
                    i += 1; // something we do not read (`*`, `self as x`): step over it
                } else {
                    i = j;
                }
            }
            prefix.truncate(depth0);
            return i;
        }
        let start = i;
        while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'_') {
            i += 1;
        }
        if i == start {
            // `*` or nothing: the path ends at the prefix
            if prefix.len() > depth0 {
                let mut p = prefix.clone();
                if i < s.len() && s[i] == b'*' {
                    p.push("*".to_string());
                    i += 1;
                }
                out.push(p);
            }
            prefix.truncate(depth0);
            return i;
        }
        let ident = std::str::from_utf8(&s[start..i]).unwrap().to_string();
        if ident != "self" {
            prefix.push(ident);
        }
        skip_ws(&mut i);
        if s[i..].starts_with(b"::") {
            i += 2;
            continue;
        }
        out.push(prefix.clone());
        prefix.truncate(depth0);
        return i;
    }
}

/// Every crate-internal path in `code`, as absolute module paths (`super::`/`self::`
/// resolved against `module`, which is a file's module or `dir` for a `mod.rs`; `use child::x`
/// of a child module too). A glob import ends in a `*` segment.
fn crate_paths(code: &str, module: &[String], modules: &BTreeSet<Vec<String>>) -> Vec<Vec<String>> {
    let s = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let boundary =
            i == 0 || !(s[i - 1].is_ascii_alphanumeric() || s[i - 1] == b'_' || s[i - 1] == b':');
        if !boundary {
            i += 1;
            continue;
        }
        let mut base: Option<Vec<String>> = None;
        let mut j = i;
        if s[i..].starts_with(b"crate::") {
            base = Some(Vec::new());
            j += 7;
        } else if s[i..].starts_with(b"self::") {
            base = Some(module.to_vec());
            j += 6;
        } else if s[i..].starts_with(b"super::") {
            let mut m = module.to_vec();
            while s[j..].starts_with(b"super::") {
                m.pop();
                j += 7;
            }
            base = Some(m);
        } else if s[i..].starts_with(b"use ") {
            let k = i
                + 4
                + s[i + 4..]
                    .iter()
                    .take_while(|c| c.is_ascii_whitespace())
                    .count();
            let ident: String = s[k..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .map(|c| *c as char)
                .collect();
            let mut child = module.to_vec();
            child.push(ident);
            if modules.contains(&child) {
                base = Some(module.to_vec());
                j = k;
            }
        }
        match base {
            Some(mut prefix) => {
                i = read_tree(s, j, &mut prefix, &mut out).max(j);
            }
            None => i += 1,
        }
    }
    out
}

/// What each module defines and re-exports, to follow `pub use` to the module that defines
/// an item (`crate::recipe::Service` is `recipe::plan`'s).
#[derive(Default)]
struct Names {
    /// items defined at the top of the module's file
    items: BTreeSet<String>,
    /// `pub use a::b::X;` → `X` → `a::b::X`
    reexports: BTreeMap<String, Vec<String>>,
    /// `pub use a::b::*;` → `a::b`
    globs: Vec<Vec<String>>,
}

fn names_of(f: &SourceFile, modules: &BTreeSet<Vec<String>>) -> Names {
    let mut names = Names::default();
    let s = f.code.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'{' => depth += 1,
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        let boundary = i == 0 || !(s[i - 1].is_ascii_alphanumeric() || s[i - 1] == b'_');
        if depth == 0 && boundary && s[i].is_ascii_alphabetic() {
            let word: String = s[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .map(|c| *c as char)
                .collect();
            let after = &f.code[i + word.len()..];
            match word.as_str() {
                "struct" | "enum" | "fn" | "trait" | "type" | "const" | "static" | "union"
                | "mod" | "macro_rules" => {
                    let ident: String = after
                        .trim_start_matches(|c: char| c.is_whitespace() || c == '!')
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !ident.is_empty() && ident != "fn" {
                        names.items.insert(ident);
                    }
                }
                "use"
                    if f.code[..i].trim_end().ends_with("pub")
                        || f.code[..i].trim_end().ends_with(')') =>
                {
                    let end = after.find(';').map_or(f.code.len(), |e| i + word.len() + e);
                    for p in crate_paths(&f.code[i..end], &f.module, modules) {
                        match p.last().map(String::as_str) {
                            Some("*") => names.globs.push(p[..p.len() - 1].to_vec()),
                            Some(last) => {
                                names.reexports.insert(last.to_string(), p.clone());
                            }
                            None => {}
                        }
                    }
                }
                _ => {}
            }
            i += word.len().max(1);
            continue;
        }
        i += 1;
    }
    names
}

/// The module that defines what `path` names, following `pub use` re-exports; `None` when the
/// name is not found in the module the path leads to.
fn resolve(
    path: &[String],
    modules: &BTreeSet<Vec<String>>,
    names: &BTreeMap<Vec<String>, Names>,
    hops: usize,
) -> Option<Vec<String>> {
    let m = target_module(path, modules);
    let rest = &path[m.len()..];
    let Some(first) = rest.first() else {
        return Some(m);
    };
    if first == "*" || hops > 8 {
        return Some(m);
    }
    let n = names.get(&m)?;
    if n.items.contains(first) {
        return Some(m);
    }
    if let Some(p) = n.reexports.get(first) {
        let mut p = p.clone();
        p.extend_from_slice(&rest[1..]);
        return resolve(&p, modules, names, hops + 1);
    }
    n.globs.iter().find_map(|g| {
        let mut p = g.clone();
        p.extend_from_slice(rest);
        resolve(&p, modules, names, hops + 1)
    })
}

/// The module a path names: its longest prefix that is a known module.
fn target_module(path: &[String], modules: &BTreeSet<Vec<String>>) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
        .unwrap_or_default()
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".to_string()
    } else {
        m.join("::")
    }
}

fn layer_of(m: &[String]) -> Option<(usize, &'static str)> {
    let top = m.first().map(String::as_str).unwrap_or("");
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, mods))| mods.contains(&top))
        .map(|(rank, (label, _))| (rank, *label))
}

/// Import edges between modules: module → (imported module → the paths that name it).
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn import_graph(files: &[SourceFile]) -> (Graph, Vec<String>) {
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    let names: BTreeMap<Vec<String>, Names> = files
        .iter()
        .map(|f| (f.module.clone(), names_of(f, &modules)))
        .collect();
    let mut graph = Graph::new();
    let mut layer_errors = Vec::new();
    for f in files {
        let from = name(&f.module);
        graph.entry(from.clone()).or_default();
        let Some((from_rank, from_label)) = layer_of(&f.module) else {
            layer_errors.push(format!(
                "{}: top-level module `{}` has no layer; add it to LAYERS here and to the table in docs/architecture.md",
                f.rel,
                f.module[0]
            ));
            continue;
        };
        for mut path in crate_paths(&f.code, &f.module, &modules) {
            if path.last().is_some_and(|l| l == "*") {
                path.pop();
            }
            let to_mod = resolve(&path, &modules, &names, 0)
                .unwrap_or_else(|| target_module(&path, &modules));
            if to_mod == f.module {
                continue;
            }
            let to = name(&to_mod);
            if let Some((to_rank, to_label)) = layer_of(&to_mod) {
                let tops = (
                    f.module.first().map_or("", String::as_str),
                    to_mod.first().map_or("", String::as_str),
                );
                if to_rank > from_rank && !ALLOWED_UPWARD.contains(&tops) {
                    layer_errors.push(format!(
                        "{}: imports `crate::{}` (layer {from_label} → layer {to_label})",
                        f.rel,
                        path.join("::")
                    ));
                }
            }
            // ancestors and descendants (a facade mod.rs and its children) are not circles
            let related = to_mod.starts_with(&f.module) || f.module.starts_with(&to_mod);
            if !related {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(path.join("::"));
            }
        }
    }
    layer_errors.dedup();
    (graph, layer_errors)
}

/// Strongly connected components with more than one module (Tarjan).
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(st: &mut State<'g>, v: &'g str) {
        st.index.insert(v, st.next);
        st.low.insert(v, st.next);
        st.next += 1;
        st.stack.push(v);
        st.on_stack.insert(v);
        let graph = st.graph;
        for w in graph.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !st.index.contains_key(w) {
                visit(st, w);
                let lw = st.low[w];
                let lv = st.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if st.on_stack.contains(w) {
                let iw = st.index[w];
                let lv = st.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if st.low[v] == st.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = st.stack.pop().unwrap();
                st.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                st.out.push(comp);
            }
        }
    }
    let mut st = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !st.index.contains_key(v.as_str()) {
            visit(&mut st, v);
        }
    }
    st.out.sort();
    st.out
}

// ---- function length --------------------------------------------------------------------

struct LongFn {
    file: String,
    name: String,
    line: usize,
    lines: usize,
    marked: bool,
}

/// Every `fn` whose body spans more than [`MAX_FN_LINES`] lines (from the `fn` line to its
/// closing brace).
fn long_functions(f: &SourceFile) -> Vec<LongFn> {
    let code_lines: Vec<&str> = f.code.lines().collect();
    let mut out = Vec::new();
    for (ln, line) in code_lines.iter().enumerate() {
        let Some(fn_at) = find_fn_keyword(line) else {
            continue;
        };
        let fn_name: String = line[fn_at + 3..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if fn_name.is_empty() {
            continue;
        }
        // find the body's opening brace (a `;` first: a declaration without a body)
        let mut depth = 0usize;
        let mut opened = false;
        let mut end_line = None;
        'scan: for (k, l) in code_lines.iter().enumerate().skip(ln) {
            let text = if k == ln { &l[fn_at..] } else { l };
            for ch in text.chars() {
                match ch {
                    ';' if !opened && depth == 0 => break 'scan,
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => {
                        depth = depth.saturating_sub(1);
                        if opened && depth == 0 {
                            end_line = Some(k);
                            break 'scan;
                        }
                    }
                    _ => {}
                }
            }
        }
        let Some(end) = end_line else { continue };
        let len = end - ln + 1;
        if len > MAX_FN_LINES {
            out.push(LongFn {
                file: f.rel.clone(),
                name: fn_name,
                line: ln + 1,
                lines: len,
                marked: has_long_marker(&f.lines, ln),
            });
        }
    }
    out
}

/// The byte offset of a `fn` keyword that starts an item on this (blanked) line.
fn find_fn_keyword(line: &str) -> Option<usize> {
    let t = line.trim_start();
    let mut rest = t;
    for q in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
        "extern \"C\" ",
    ] {
        rest = rest.strip_prefix(q).unwrap_or(rest);
    }
    for q in ["const ", "async ", "unsafe "] {
        rest = rest.strip_prefix(q).unwrap_or(rest);
    }
    rest.starts_with("fn ").then(|| line.len() - rest.len())
}

/// Whether a `// long: <reason>` comment stands right above the function (above its doc
/// comment and attributes).
fn has_long_marker(lines: &[String], fn_line: usize) -> bool {
    let mut k = fn_line;
    while k > 0 {
        k -= 1;
        let t = lines[k].trim_start();
        if t.starts_with("// long:") {
            return true;
        }
        if !(t.starts_with("///") || t.starts_with("#[") || t.starts_with("//")) {
            return false;
        }
    }
    false
}

// ---- the test ---------------------------------------------------------------------------

#[test]
fn architecture_layers_circles_and_function_length() {
    let files = load_sources();
    assert!(
        files.len() > 50,
        "found only {} source files under src/",
        files.len()
    );
    let mut report = String::new();

    let (graph, layer_errors) = import_graph(&files);
    for e in &layer_errors {
        writeln!(report, "layer: {e}").unwrap();
    }

    for comp in circles(&graph) {
        let allowed = ALLOWED_CIRCLES.iter().any(|a| {
            let mut a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            a.sort();
            a == comp
        });
        if allowed {
            continue;
        }
        writeln!(
            report,
            "circle between {} modules: {}",
            comp.len(),
            comp.join(", ")
        )
        .unwrap();
        for from in &comp {
            for (to, paths) in &graph[from] {
                if comp.contains(to) {
                    let shown: Vec<&str> = paths.iter().map(String::as_str).take(3).collect();
                    writeln!(
                        report,
                        "    {from} → {to}  (crate::{})",
                        shown.join(", crate::")
                    )
                    .unwrap();
                }
            }
        }
    }

    let mut longest: Vec<LongFn> = files.iter().flat_map(long_functions).collect();
    longest.sort_by_key(|f| std::cmp::Reverse(f.lines));
    for f in &longest {
        let state = if f.marked {
            "marked `// long:`"
        } else if PENDING_LONG.contains(&(f.file.as_str(), f.name.as_str())) {
            "pending in another change"
        } else {
            writeln!(
                report,
                "long function: {}:{} fn {} is {} lines (limit {MAX_FN_LINES}; split it, or say why above it with `// long: <reason>`)",
                f.file, f.line, f.name, f.lines
            )
            .unwrap();
            continue;
        };
        eprintln!(
            "allowed long function: {}:{} fn {} ({} lines, {state})",
            f.file, f.line, f.name, f.lines
        );
    }

    assert!(report.is_empty(), "architecture check failed:\n{report}");
}

#[test]
fn path_reader_expands_groups_and_resolves_super() {
    let m = |s: &str| s.split("::").map(str::to_string).collect::<Vec<_>>();
    let modules: BTreeSet<Vec<String>> = [m("x::y::z")].into();
    let paths = crate_paths(
        "use crate::a::{b, c::{d, e}, f::*};\nlet x = super::g::h(); use self::k; use z::q;",
        &m("x::y"),
        &modules,
    );
    assert_eq!(
        paths,
        vec![
            m("a::b"),
            m("a::c::d"),
            m("a::c::e"),
            m("a::f::*"),
            m("x::g::h"),
            m("x::y::k"),
            m("x::y::z::q")
        ]
    );
    let code =
        blank_non_code("let s = \"{ crate::z }\"; // crate::w {\nlet c = '{'; fn f<'a>() {}");
    assert!(!code.contains("crate::"), "{code}");
    assert_eq!(code.matches('{').count(), 1, "{code}");
}
