//! The generic, spanned field reader of the recipe decoder: diagnostics ([`Ctx`]), key checks
//! with did-you-mean, typed readers of one mapping's fields ([`Fields`]), secrets, operation
//! mixes and size mixes. Nothing here knows a service kind.

use crate::recipe::diag::{did_you_mean, Diagnostic, Severity};
use crate::recipe::plan::*;
use crate::recipe::units::{parse_duration_s, parse_size_bytes};
use crate::recipe::yaml::{Node, NodeKind, Pos};
use std::collections::HashSet;
use std::path::PathBuf;

/// Ranges of the recipe's numbers. `validate` rejects a value outside them at its location, so
/// nothing downstream converts an absurd float to a `Duration`, overflows an integer or loops
/// on a rate no generator reaches.
pub mod range {
    /// `duration`, `warmup`: as long as the longest SLURM time limit a recipe may ask for.
    pub const MAX_DURATION_S: f64 = crate::recipe::units::MAX_SLURM_TIME_S as f64;
    /// A request's `timeout`: one day.
    pub const MAX_TIMEOUT_S: f64 = 86_400.0;
    /// `push_interval`: one hour.
    pub const MAX_PUSH_INTERVAL_S: f64 = 3_600.0;
    /// `requests_per_second` (per client).
    pub const MAX_RATE_PER_CLIENT_PER_S: f64 = 1_000_000.0;
    /// `client_count × requests_per_second`: far above what one runner process can send.
    pub const MAX_RATE_TOTAL_PER_S: f64 = 10_000_000.0;
    /// `requests`, `seed_rows`.
    pub const MAX_COUNT: u64 = 1_000_000_000_000;
    /// `dataset_size` (vectors held in memory by the runner).
    pub const MAX_DATASET_SIZE: u64 = 100_000_000;
    /// SLO limits in milliseconds: one day.
    pub const MAX_MS: f64 = 86_400_000.0;
    /// Token counts (`mean`, `stddev` of a token distribution).
    pub const MAX_TOKENS: f64 = 1_000_000.0;
    /// Sampling `temperature`.
    pub const MAX_TEMPERATURE: f64 = 10.0;
}

/// Collects diagnostics while decoding.
#[derive(Default)]
pub struct Ctx {
    pub diags: Vec<Diagnostic>,
}

impl Ctx {
    /// Errors that make the recipe invalid (not the [`Ctx::cannot_run`] ones).
    pub fn error_count(&self) -> usize {
        self.diags.iter().filter(|d| d.blocks_recipe()).count()
    }

    pub fn error(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.push(Severity::Error, pos, path, message.into(), None);
    }

    pub fn error_help(&mut self, pos: Pos, path: &str, message: impl Into<String>, help: String) {
        self.push(Severity::Error, pos, path, message.into(), Some(help));
    }

    /// An error at one service this binary cannot run ([`Diagnostic::cannot_run`]): the
    /// service stays in the plan, and the other services can still be selected.
    pub fn cannot_run(&mut self, pos: Pos, path: &str, message: impl Into<String>, help: String) {
        self.push(Severity::Error, pos, path, message.into(), Some(help));
        if let Some(d) = self.diags.last_mut() {
            d.cannot_run = true;
        }
    }

    pub fn warn(&mut self, pos: Pos, path: &str, message: impl Into<String>, help: Option<String>) {
        self.push(Severity::Warning, pos, path, message.into(), help);
    }

    /// A warning that `submit` refuses as an error (see [`Diagnostic::stops_submit`]).
    pub fn warn_stops_submit(
        &mut self,
        pos: Pos,
        path: &str,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        self.push(Severity::Warning, pos, path, message.into(), help);
        if let Some(d) = self.diags.last_mut() {
            d.stops_submit = true;
        }
    }

    /// A warning about the plain-text secret `secret`: the snippet masks it.
    pub fn warn_secret(
        &mut self,
        pos: Pos,
        path: &str,
        secret: &str,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        self.push(Severity::Warning, pos, path, message.into(), help);
        if let Some(d) = self.diags.last_mut() {
            d.redact = Some(secret.to_string());
        }
    }

    /// A warning about several plain-text secrets on one line: the snippet masks them all.
    pub fn warn_secret_all(
        &mut self,
        pos: Pos,
        path: &str,
        secrets: &[String],
        message: impl Into<String>,
        help: Option<String>,
    ) {
        self.push(Severity::Warning, pos, path, message.into(), help);
        if let Some(d) = self.diags.last_mut() {
            d.redact_all = secrets.to_vec();
        }
    }

    pub(crate) fn push(
        &mut self,
        severity: Severity,
        pos: Pos,
        path: &str,
        message: String,
        help: Option<String>,
    ) {
        self.diags.push(Diagnostic {
            redact: None,
            redact_all: Vec::new(),
            stops_submit: false,
            cannot_run: false,
            severity,
            path: path.to_string(),
            pos,
            message,
            help,
        });
    }

    /// Check a mapping's keys: unknown keys (with a suggestion) and duplicates.
    /// `elsewhere` names keys that are valid in another context, for a better message.
    pub(crate) fn check_keys(&mut self, node: &Node, path: &str, allowed: &[&str], context: &str) {
        let Some(map) = node.as_map() else { return };
        let mut seen: HashSet<&str> = HashSet::new();
        for (k, _) in map {
            let Some(key) = k.as_scalar() else {
                self.error(k.pos, path, format!("keys in {context} must be strings"));
                continue;
            };
            if !seen.insert(key) {
                self.error(
                    k.pos,
                    &join(path, key),
                    format!("duplicate key `{key}` in {context}"),
                );
                continue;
            }
            if allowed.contains(&key) {
                continue;
            }
            // `x-...` keys at the top level hold YAML anchors (as in docker-compose files).
            if path.is_empty() && key.starts_with("x-") {
                continue;
            }
            let mut msg = format!("unknown key `{key}` in {context}");
            if let Some(other) = crate::kinds::owner_of_key(key) {
                if context.starts_with("service") {
                    msg = format!(
                        "`{key}` is not a key of {context} (it belongs to `service_type: {other}`)"
                    );
                }
            }
            match did_you_mean(key, allowed) {
                Some(s) => {
                    self.error_help(k.pos, &join(path, key), msg, format!("did you mean `{s}`?"))
                }
                None => self.error_help(
                    k.pos,
                    &join(path, key),
                    msg,
                    format!("valid keys here: {}", allowed.join(", ")),
                ),
            }
        }
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Typed access to one mapping's fields with error collection.
pub(crate) struct Fields<'n> {
    node: Option<&'n Node>,
    path: String,
}

impl<'n> Fields<'n> {
    pub(crate) fn new(node: Option<&'n Node>, path: impl Into<String>) -> Self {
        Fields {
            node,
            path: path.into(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'n Node> {
        self.node?.get(key).filter(|n| !n.is_null())
    }

    pub(crate) fn pos(&self) -> Pos {
        self.node.map(|n| n.pos).unwrap_or_default()
    }

    pub(crate) fn p(&self, key: &str) -> String {
        join(&self.path, key)
    }

    pub(crate) fn string(&self, cx: &mut Ctx, key: &str) -> Option<String> {
        let n = self.get(key)?;
        match &n.kind {
            NodeKind::Scalar { value, .. } => Some(value.clone()),
            _ => {
                cx.error(
                    n.pos,
                    &self.p(key),
                    format!("`{key}` must be a string, found a {}", n.type_name()),
                );
                None
            }
        }
    }

    pub(crate) fn nonempty_string(&self, cx: &mut Ctx, key: &str) -> Option<String> {
        let s = self.string(cx, key)?;
        if s.trim().is_empty() {
            cx.error(
                self.get(key).unwrap().pos,
                &self.p(key),
                format!("`{key}` must not be empty"),
            );
            return None;
        }
        Some(s)
    }

    pub(crate) fn f64(&self, cx: &mut Ctx, key: &str) -> Option<f64> {
        let n = self.get(key)?;
        match &n.kind {
            NodeKind::Scalar { value, plain: true } => match value.parse::<f64>() {
                Ok(v) if v.is_finite() => Some(v),
                _ => {
                    cx.error(
                        n.pos,
                        &self.p(key),
                        format!("`{key}` must be a number, found `{value}`"),
                    );
                    None
                }
            },
            _ => {
                cx.error(
                    n.pos,
                    &self.p(key),
                    format!("`{key}` must be a number, found a {}", n.type_name()),
                );
                None
            }
        }
    }

    pub(crate) fn nonneg_f64(&self, cx: &mut Ctx, key: &str) -> Option<f64> {
        let v = self.f64(cx, key)?;
        if v < 0.0 {
            cx.error(
                self.get(key).unwrap().pos,
                &self.p(key),
                format!("`{key}` must not be negative, found {v}"),
            );
            return None;
        }
        Some(v)
    }

    pub(crate) fn u64(&self, cx: &mut Ctx, key: &str) -> Option<u64> {
        let n = self.get(key)?;
        match &n.kind {
            NodeKind::Scalar { value, plain: true } => match value.parse::<i128>() {
                Ok(v) if v < 0 => {
                    cx.error(
                        n.pos,
                        &self.p(key),
                        format!("`{key}` must not be negative, found {v}"),
                    );
                    None
                }
                Ok(v) if v > u64::MAX as i128 => {
                    cx.error(n.pos, &self.p(key), format!("`{key}` is too large"));
                    None
                }
                Ok(v) => Some(v as u64),
                Err(_) => {
                    cx.error(
                        n.pos,
                        &self.p(key),
                        format!("`{key}` must be a whole number, found `{value}`"),
                    );
                    None
                }
            },
            _ => {
                cx.error(
                    n.pos,
                    &self.p(key),
                    format!("`{key}` must be a whole number, found a {}", n.type_name()),
                );
                None
            }
        }
    }

    /// A number in `min..=max`, an error at its location otherwise.
    pub(crate) fn f64_range(&self, cx: &mut Ctx, key: &str, min: f64, max: f64) -> Option<f64> {
        let v = if min == 0.0 {
            self.nonneg_f64(cx, key)?
        } else {
            self.f64(cx, key)?
        };
        if v < min || v > max {
            cx.error(
                self.get(key).unwrap().pos,
                &self.p(key),
                format!("`{key}` must be between {min} and {max}, found {v}"),
            );
            return None;
        }
        Some(v)
    }

    /// A whole number in `min..=max`, an error at its location otherwise.
    pub(crate) fn u64_range(&self, cx: &mut Ctx, key: &str, min: u64, max: u64) -> Option<u64> {
        let v = self.u64(cx, key)?;
        if v < min || v > max {
            cx.error(
                self.get(key).unwrap().pos,
                &self.p(key),
                format!("`{key}` must be between {min} and {max}, found {v}"),
            );
            return None;
        }
        Some(v)
    }

    pub(crate) fn u32_range(&self, cx: &mut Ctx, key: &str, min: u32, max: u32) -> Option<u32> {
        self.u64_range(cx, key, min.into(), max.into())
            .map(|v| v as u32)
    }

    pub(crate) fn port(&self, cx: &mut Ctx, key: &str) -> Option<u16> {
        let n = self.get(key)?;
        let v = self.u64(cx, key)?;
        if !(1..=65535).contains(&v) {
            cx.error(
                n.pos,
                &self.p(key),
                format!("`{key}` must be a TCP port between 1 and 65535, found {v}"),
            );
            return None;
        }
        Some(v as u16)
    }

    pub(crate) fn bool(&self, cx: &mut Ctx, key: &str) -> Option<bool> {
        let n = self.get(key)?;
        match n.as_scalar() {
            Some("true" | "True" | "TRUE" | "yes" | "on") => Some(true),
            Some("false" | "False" | "FALSE" | "no" | "off") => Some(false),
            _ => {
                cx.error(
                    n.pos,
                    &self.p(key),
                    format!("`{key}` must be true or false, found a {}", n.type_name()),
                );
                None
            }
        }
    }

    /// Seconds: a number, or a string like `90s`, `10m`, `1h`; at most `max_s`.
    pub(crate) fn duration_s(&self, cx: &mut Ctx, key: &str, max_s: f64) -> Option<f64> {
        let n = self.get(key)?;
        let s = n.as_scalar().unwrap_or_default();
        match parse_duration_s(s) {
            Ok(v) if v < 0.0 => {
                cx.error(
                    n.pos,
                    &self.p(key),
                    format!("`{key}` must not be negative, found {s}"),
                );
                None
            }
            Ok(v) if v > max_s => {
                cx.error_help(
                    n.pos,
                    &self.p(key),
                    format!("`{key}` of {s} is too long (at most {max_s} s)"),
                    format!("the longest `{key}` is {}", human_s(max_s)),
                );
                None
            }
            Ok(v) => Some(v),
            Err(e) => {
                cx.error(n.pos, &self.p(key), format!("`{key}`: {e}"));
                None
            }
        }
    }

    pub(crate) fn enum_of<T: Copy>(
        &self,
        cx: &mut Ctx,
        key: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let n = self.get(key)?;
        let s = n.as_scalar().unwrap_or_default();
        if let Some((_, v)) = options
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
        {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let help = match did_you_mean(s, &names) {
            Some(m) => format!("did you mean `{m}`?"),
            None => format!("expected one of: {}", names.join(", ")),
        };
        cx.error_help(n.pos, &self.p(key), format!("invalid `{key}`: `{s}`"), help);
        None
    }

    pub(crate) fn string_list(&self, cx: &mut Ctx, key: &str) -> Vec<String> {
        let Some(n) = self.get(key) else {
            return vec![];
        };
        match &n.kind {
            NodeKind::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, it)| match it.as_scalar() {
                    Some(s) => Some(s.to_string()),
                    None => {
                        cx.error(
                            it.pos,
                            &format!("{}[{i}]", self.p(key)),
                            format!("items of `{key}` must be strings"),
                        );
                        None
                    }
                })
                .collect(),
            NodeKind::Scalar { value, .. } => vec![value.clone()],
            _ => {
                cx.error(
                    n.pos,
                    &self.p(key),
                    format!("`{key}` must be a list of strings"),
                );
                vec![]
            }
        }
    }

    /// A secret field: `key` (plain or `${VAR}`), `key_env`, or `key_file`.
    pub(crate) fn secret(&self, cx: &mut Ctx, key: &str) -> Option<Secret> {
        let env_key = format!("{key}_env");
        let file_key = format!("{key}_file");
        let given: Vec<&str> = [key, env_key.as_str(), file_key.as_str()]
            .into_iter()
            .filter(|k| self.get(k).is_some())
            .collect();
        if given.len() > 1 {
            cx.error(
                self.get(given[1]).unwrap().pos,
                &self.p(given[1]),
                format!("give only one of `{}`", given.join("`, `")),
            );
        }
        if let Some(v) = self.string(cx, &env_key) {
            let pos = self.get(&env_key).unwrap().pos;
            return env_var_name(cx, pos, &self.p(&env_key), v).map(Secret::Env);
        }
        if let Some(v) = self.string(cx, &file_key) {
            return Some(Secret::File(PathBuf::from(v)));
        }
        let v = self.string(cx, key)?;
        let n = self.get(key).unwrap();
        Some(secret_from_value(cx, n.pos, &self.p(key), &v))
    }
}

fn human_s(s: f64) -> String {
    if s >= 86_400.0 && s % 86_400.0 == 0.0 {
        format!("{} days", s / 86_400.0)
    } else if s >= 3_600.0 && s % 3_600.0 == 0.0 {
        format!("{} h", s / 3_600.0)
    } else {
        format!("{s} s")
    }
}

pub(crate) fn env_ref(v: &str) -> Option<&str> {
    let inner = v.strip_prefix("${")?.strip_suffix('}')?;
    is_env_name(inner).then_some(inner)
}

/// A portable environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The name given to a `*_env` key or `from_env:`; an error at `pos` when it is not a portable
/// variable name (it reaches the batch script as `${NAME}`).
pub(crate) fn env_var_name(cx: &mut Ctx, pos: Pos, path: &str, v: String) -> Option<String> {
    if is_env_name(&v) {
        return Some(v);
    }
    cx.error(
        pos,
        path,
        format!("`{v}` is not an environment variable name (letters, digits and `_`, not starting with a digit)"),
    );
    None
}

pub(crate) const WELL_KNOWN_DEFAULTS: &[&str] = &[
    "minioadmin",
    "postgres",
    "password",
    "admin",
    "changeme",
    "secret",
];

pub(crate) fn secret_from_value(cx: &mut Ctx, pos: Pos, path: &str, v: &str) -> Secret {
    if let Some(var) = env_ref(v) {
        return Secret::Env(var.to_string());
    }
    if WELL_KNOWN_DEFAULTS.contains(&v) {
        cx.warn_secret(
            pos,
            path,
            v,
            "a well-known default credential is used; anyone on the cluster can guess it",
            Some(
                "omit it to have factorybench generate one, or take it from `${VAR}` / a `_file`"
                    .into(),
            ),
        );
    } else {
        cx.warn_secret(
            pos,
            path,
            v,
            "plain-text secret in the recipe",
            Some("write `${VAR}` to read it from the environment, or use the `_env` / `_file` form; it is kept out of scripts either way".into()),
        );
    }
    Secret::Plain(v.to_string())
}

pub use crate::redact::looks_secret;

pub fn valid_service_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

pub(crate) fn decode_mix<Op: Copy>(
    cx: &mut Ctx,
    f: &Fields,
    key: &str,
    ops: &[(&str, Op)],
    default: &[(Op, f64)],
) -> Mix<Op> {
    let Some(n) = f.get(key) else {
        return Mix {
            weights: default.to_vec(),
        };
    };
    let p = f.p(key);
    let Some(m) = n.as_map() else {
        cx.error(
            n.pos,
            &p,
            format!("`{key}` must be a mapping of operation: weight"),
        );
        return Mix {
            weights: default.to_vec(),
        };
    };
    if m.is_empty() {
        cx.error(
            n.pos,
            &p,
            format!("`{key}` is empty: give at least one operation with a weight > 0"),
        );
        return Mix {
            weights: default.to_vec(),
        };
    }
    let names: Vec<&str> = ops.iter().map(|(n, _)| *n).collect();
    let errors_before = cx.error_count();
    cx.check_keys(n, &p, &names, &format!("`{key}`"));
    // With an unknown operation the sum is meaningless: report the key, not the sum.
    let mut ok = cx.error_count() == errors_before;
    let mf = Fields::new(Some(n), p.clone());
    let mut weights = Vec::new();
    for (name, op) in ops {
        if mf.get(name).is_none() {
            continue;
        }
        match mf.nonneg_f64(cx, name) {
            Some(w) if w > 0.0 => weights.push((*op, w)),
            Some(_) => {}
            None => ok = false,
        }
    }
    let sum: f64 = weights.iter().map(|(_, w)| w).sum();
    if ok && weights.is_empty() {
        cx.error(
            n.pos,
            &p,
            format!("`{key}` has no operation with a weight > 0"),
        );
    } else if ok && (sum - 1.0).abs() > 1e-6 {
        cx.error_help(
            n.pos,
            &p,
            format!("`{key}` weights sum to {sum}, not 1"),
            "weights are shares of all operations and must add up to 1".into(),
        );
    }
    Mix { weights }
}

pub(crate) fn decode_sizes(cx: &mut Ctx, f: &Fields, key: &str, default: &[(u64, f64)]) -> SizeMix {
    let Some(n) = f.get(key) else {
        return SizeMix {
            weights: default.to_vec(),
        };
    };
    let p = f.p(key);
    let Some(m) = n.as_map() else {
        cx.error(
            n.pos,
            &p,
            format!(
                "`{key}` must be a mapping of size: weight, e.g. {{\"4KB\": 0.5, \"1MB\": 0.5}}"
            ),
        );
        return SizeMix {
            weights: default.to_vec(),
        };
    };
    if m.is_empty() {
        cx.error(n.pos, &p, format!("`{key}` is empty"));
        return SizeMix {
            weights: default.to_vec(),
        };
    }
    let mut weights = Vec::new();
    let mut ok = true;
    for (k, v) in m {
        let label = k.as_scalar().unwrap_or_default();
        let kp = format!("{p}.{label}");
        let size = match parse_size_bytes(label) {
            Ok(0) => {
                cx.error(k.pos, &kp, "size must be greater than 0");
                ok = false;
                continue;
            }
            Ok(s) => s,
            Err(e) => {
                cx.error_help(
                    k.pos,
                    &kp,
                    format!("invalid size `{label}`: {e}"),
                    "use e.g. 512B, 4KB, 4KiB, 10MB, 1GB (KB = KiB = 1024 bytes)".into(),
                );
                ok = false;
                continue;
            }
        };
        match v.as_scalar().and_then(|s| s.parse::<f64>().ok()) {
            Some(w) if w >= 0.0 && w.is_finite() => {
                if w > 0.0 {
                    weights.push((size, w))
                }
            }
            _ => {
                cx.error(
                    v.pos,
                    &kp,
                    format!("weight of `{label}` must be a number >= 0"),
                );
                ok = false;
            }
        }
    }
    let sum: f64 = weights.iter().map(|(_, w)| w).sum();
    if ok && weights.is_empty() {
        cx.error(n.pos, &p, format!("`{key}` has no size with a weight > 0"));
    } else if ok && (sum - 1.0).abs() > 1e-6 {
        cx.error_help(
            n.pos,
            &p,
            format!("`{key}` weights sum to {sum}, not 1"),
            "weights are shares and must add up to 1".into(),
        );
    }
    SizeMix { weights }
}
