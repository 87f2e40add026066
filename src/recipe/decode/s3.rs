//! S3 object stores (`service_type: s3`).

use super::fields::*;
use super::{check_url, KindCx};
use crate::recipe::plan::*;

/// The workload of one service of this kind.
pub(super) fn decode(cx: &mut Ctx, k: &KindCx) -> Option<Workload> {
    let f = k.f;
    let starts_service = k.starts_service;
    let service_url = k.service_url;
    let port = k.port;
    let pos = f.pos();
    let mix = decode_mix(
        cx,
        f,
        "operation_mix",
        &[
            ("put", S3Op::Put),
            ("get", S3Op::Get),
            ("list", S3Op::List),
            ("delete", S3Op::Delete),
        ],
        &[
            (S3Op::Put, 0.3),
            (S3Op::Get, 0.6),
            (S3Op::List, 0.05),
            (S3Op::Delete, 0.05),
        ],
    );
    let endpoint = f
        .nonempty_string(cx, "endpoint_url")
        .or(service_url.map(String::from))
        .or(port.map(|p| format!("http://127.0.0.1:{p}")));
    match (&endpoint, f.get("endpoint_url")) {
        (Some(u), Some(n)) => check_url(cx, n.pos, &f.p("endpoint_url"), u, &["http", "https"]),
        (None, _) => cx.error(
            pos,
            &f.p("endpoint_url"),
            "service_type s3 needs `endpoint_url` (or `service_url` / `port`)",
        ),
        _ => {}
    }
    let key = |cx: &mut Ctx, name: &str| match f.secret(cx, name) {
        Some(s) => Some(s),
        None if starts_service => Some(Secret::Generated),
        None => {
            cx.error_help(
                pos,
                &f.p(name),
                format!("service_type s3 needs `{name}`"),
                format!("write `{name}: ${{VAR}}`, `{name}_env: VAR` or `{name}_file: PATH`"),
            );
            None
        }
    };
    let access_key = key(cx, "access_key");
    let secret_key = key(cx, "secret_key");
    let bucket = f
        .nonempty_string(cx, "bucket_name")
        .unwrap_or_else(|| "factorybench".into());
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !bucket_ok {
        cx.error_help(
            f.get("bucket_name").map(|n| n.pos).unwrap_or(pos),
            &f.p("bucket_name"),
            format!("invalid S3 bucket name `{}`", bucket.escape_debug()),
            "3-63 characters: lowercase letters, digits, '-' and '.'".into(),
        );
    }
    Some(Workload::S3(S3Workload {
        endpoint_url: endpoint.unwrap_or_default(),
        access_key: access_key?,
        secret_key: secret_key?,
        bucket_name: bucket,
        region: f
            .nonempty_string(cx, "region")
            .unwrap_or_else(|| "us-east-1".into()),
        mix,
        object_sizes: decode_sizes(cx, f, "object_sizes", &[(4096, 0.5), (1 << 20, 0.5)]),
        addressing: f
            .enum_of(
                cx,
                "addressing",
                &[
                    ("path", S3Addressing::Path),
                    ("virtual_host", S3Addressing::VirtualHost),
                    ("virtual", S3Addressing::VirtualHost),
                ],
            )
            .unwrap_or(S3Addressing::Path),
        cleanup: f.bool(cx, "cleanup").unwrap_or(true),
    }))
}
