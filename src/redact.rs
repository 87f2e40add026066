//! Credentials outside the secret keys: a password in a URL (`postgresql://user:pw@host/db`),
//! a token in a query string (`?token=…`, `X-Amz-Signature=…`), a header that carries a
//! credential (`Authorization`, `X-Api-Key`, `Cookie`, …). Everything the tool writes for
//! others to read (plan.json, the campaign file's stored recipe, reports, logs) shows them
//! redacted; the value itself reaches only the runner.
//!
//! The bottom layer: plain string functions, used by the plan types of `kinds` and by
//! `recipe::redact` (which adds the walk over a recipe's YAML).

use serde::Serializer;

/// What a redacted credential shows.
pub const MASK: &str = "***";

/// Whether a variable or key name looks like it holds a credential (`PASSWORD`, `TOKEN`, `KEY`,
/// ...): such a value is a secret.
pub fn looks_secret(name: &str) -> bool {
    let up = name.to_ascii_uppercase();
    ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL"]
        .iter()
        .any(|w| up.contains(w))
}

/// Query parameters whose value is a credential (compared case-insensitively; names that
/// [`looks_secret`] also count).
const SECRET_QUERY_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "auth",
    "apikey",
    "api_key",
    "key",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "password",
    "pass",
    "pwd",
    "secret",
    "client_secret",
    "code",
];

/// Whether an HTTP header (by name) carries a credential.
pub fn header_is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "x-api-key"
    ) || n.contains("auth")
        || n.contains("cookie")
        || n.contains("session")
        || looks_secret(&n.replace('-', "_"))
}

fn query_param_is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_QUERY_PARAMS.contains(&n.as_str()) || looks_secret(&n.replace('-', "_"))
}

/// The credentials of `url`: the userinfo password and the values of secret query
/// parameters (empty when it has none).
pub fn url_credentials(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some((_, rest)) = url.split_once("://") else {
        return out;
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        match userinfo.split_once(':') {
            Some((_, pw)) if !pw.is_empty() => out.push(pw.to_string()),
            // A lone user part in a URL is often a token (`https://TOKEN@host`).
            None if !userinfo.is_empty() => out.push(userinfo.to_string()),
            _ => {}
        }
    }
    if let Some(q) = rest[authority_end..].split_once('?').map(|(_, q)| q) {
        let q = q.split('#').next().unwrap_or_default();
        for pair in q.split('&') {
            if let Some((k, v)) = pair.split_once('=') {
                if !v.is_empty() && query_param_is_secret(k) {
                    out.push(v.to_string());
                }
            }
        }
    }
    out
}

/// `url` with its credentials replaced by [`MASK`]: `postgresql://user:***@host/db`,
/// `https://host/x?token=***`.
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, pw)) if !pw.is_empty() => format!("{user}:{MASK}@{host}"),
            Some(_) => authority.to_string(),
            None if !userinfo.is_empty() => format!("{MASK}@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, q)) => {
            let (q, frag) = match q.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (q, None),
            };
            let q: Vec<String> = q
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) if !v.is_empty() && query_param_is_secret(k) => {
                        format!("{k}={MASK}")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            let mut t = format!("{path}?{}", q.join("&"));
            if let Some(f) = frag {
                t.push('#');
                t.push_str(f);
            }
            t
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Every credential found in `text` (URLs anywhere in it) replaced by [`MASK`]: for error
/// messages that quote a URL.
pub fn text(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

/// `serialize_with` for a URL field.
pub fn ser_url<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&url(v))
}

/// `serialize_with` for an optional URL field.
pub fn ser_opt_url<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(u) => s.serialize_some(&url(u)),
        None => s.serialize_none(),
    }
}

/// `serialize_with` for HTTP headers: a credential header's value shows `<redacted>`.
pub fn ser_headers<S: Serializer>(v: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for (k, val) in v {
        if header_is_secret(k) {
            seq.serialize_element(&(k, "<redacted>"))?;
        } else {
            seq.serialize_element(&(k, val))?;
        }
    }
    seq.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            url("postgresql://user:pw@host:5432/db"),
            "postgresql://user:***@host:5432/db"
        );
        assert_eq!(url("http://u:p@h/x?a=1"), "http://u:***@h/x?a=1");
        assert_eq!(
            url("https://h/x?token=abc&n=2#f"),
            "https://h/x?token=***&n=2#f"
        );
        assert_eq!(
            url("https://b.s3/o?X-Amz-Signature=dead&X-Amz-Date=1"),
            "https://b.s3/o?X-Amz-Signature=***&X-Amz-Date=1"
        );
        assert_eq!(url("http://127.0.0.1:80/"), "http://127.0.0.1:80/");
        assert_eq!(url("https://tok@h/"), "https://***@h/");
        assert_eq!(
            url_credentials("postgresql://u:pw@h/db?password=x&sslmode=off"),
            vec!["pw".to_string(), "x".to_string()]
        );
        assert!(url_credentials("http://h:1/a?b=c").is_empty());
    }

    #[test]
    fn secret_headers() {
        for h in [
            "Authorization",
            "Proxy-Authorization",
            "Cookie",
            "X-Api-Key",
            "X-Auth-Token",
            "Private-Token",
        ] {
            assert!(header_is_secret(h), "{h}");
        }
        for h in ["Content-Type", "Accept", "X-Request-Id"] {
            assert!(!header_is_secret(h), "{h}");
        }
    }
}
