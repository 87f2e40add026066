//! Generic HTTP endpoints (`service_type: http`).

use super::fields::*;
use super::KindCx;
use crate::recipe::plan::*;

/// The workload of one service of this kind.
pub(super) fn decode(cx: &mut Ctx, k: &KindCx) -> Option<Workload> {
    let f = k.f;
    let service_url = k.service_url;
    let port = k.port;
    let pos = f.pos();
    let url = f
        .nonempty_string(cx, "url")
        .or(service_url.map(String::from))
        .or(port.map(|p| format!("http://127.0.0.1:{p}/")));
    if let (Some(u), Some(n)) = (&url, f.get("url")) {
        super::warn_url_credentials(cx, n.pos, &f.p("url"), u);
    }
    if url.is_none() {
        cx.error(
            pos,
            &f.p("url"),
            "service_type http needs `url` (or `service_url` / `port`)",
        );
    }
    let method = f
        .nonempty_string(cx, "method")
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    if !["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"].contains(&method.as_str()) {
        cx.error(
            f.get("method").map(|n| n.pos).unwrap_or(pos),
            &f.p("method"),
            format!("unsupported HTTP method `{method}`"),
        );
    }
    let mut headers = Vec::new();
    if let Some(n) = f.get("headers") {
        match n.as_map() {
            Some(m) => {
                for (k, v) in m {
                    match (k.as_scalar(), v.as_scalar()) {
                        (Some(k), Some(v))
                            if !k.contains([':', '\n', '\r']) && !v.contains(['\n', '\r']) =>
                        {
                            if crate::recipe::redact::header_is_secret(k)
                                && super::fields::env_ref(v).is_none()
                            {
                                cx.warn_secret(
                                    v_pos(m, k),
                                    &f.p(&format!("headers.{k}")),
                                    v,
                                    format!("plain-text credential in header `{k}`"),
                                    Some("it is shown redacted in plans, campaign files and reports; prefer `${VAR}`".into()),
                                );
                            }
                            headers.push((k.to_string(), v.to_string()))
                        }
                        _ => cx.error(
                            k.pos,
                            &f.p("headers"),
                            "header names and values must be single-line strings",
                        ),
                    }
                }
            }
            None => cx.error(n.pos, &f.p("headers"), "`headers` must be a mapping"),
        }
    }
    let expect_status = f
        .get("expect_status")
        .and_then(|_| f.u32_range(cx, "expect_status", 100, 599))
        .map(|v| v as u16);
    Some(Workload::Http(HttpWorkload {
        method,
        url: url.unwrap_or_default(),
        headers,
        body: f.string(cx, "body"),
        expect_status,
    }))
}

/// Position of the value of header `name` in the mapping `m`.
fn v_pos(
    m: &[(crate::recipe::yaml::Node, crate::recipe::yaml::Node)],
    name: &str,
) -> crate::recipe::yaml::Pos {
    m.iter()
        .find(|(k, _)| k.as_scalar() == Some(name))
        .map(|(_, v)| v.pos)
        .unwrap_or_default()
}
