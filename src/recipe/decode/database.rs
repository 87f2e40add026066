//! Databases (`service_type: database`, PostgreSQL).

use super::fields::*;
use super::KindCx;
use crate::recipe::plan::*;

/// The workload of one service of this kind.
pub(super) fn decode(cx: &mut Ctx, k: &KindCx) -> Option<Workload> {
    let f = k.f;
    let starts_service = k.starts_service;
    let pos = f.pos();
    let backend = f
        .enum_of(
            cx,
            "backend",
            &[
                ("postgresql", DatabaseBackend::Postgresql),
                ("postgres", DatabaseBackend::Postgresql),
            ],
        )
        .unwrap_or(DatabaseBackend::Postgresql);
    let mix = decode_mix(
        cx,
        f,
        "operation_mix",
        &[
            ("select", DbOp::Select),
            ("insert", DbOp::Insert),
            ("update", DbOp::Update),
            ("delete", DbOp::Delete),
        ],
        &[
            (DbOp::Select, 0.7),
            (DbOp::Insert, 0.1),
            (DbOp::Update, 0.15),
            (DbOp::Delete, 0.05),
        ],
    );
    let table_name = f
        .nonempty_string(cx, "table_name")
        .unwrap_or_else(|| "factorybench".into());
    let ident_ok = table_name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && table_name.len() <= 63
        && table_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ident_ok {
        cx.error_help(
            f.get("table_name").map(|n| n.pos).unwrap_or(pos),
            &f.p("table_name"),
            format!("invalid table_name `{}`", table_name.escape_debug()),
            "use a plain SQL identifier: letters, digits, _ (max 63)".into(),
        );
    }
    let password = f
        .secret(cx, "password")
        .or(starts_service.then_some(Secret::Generated));
    Some(Workload::Database(DatabaseWorkload {
        backend,
        database: f
            .nonempty_string(cx, "database")
            .unwrap_or_else(|| "factorybench".into()),
        user: f
            .nonempty_string(cx, "user")
            .unwrap_or_else(|| "factorybench".into()),
        password,
        mix,
        batch_size: f.u32_range(cx, "batch_size", 1, 100_000).unwrap_or(1),
        table_name,
        seed_rows: f
            .u64_range(cx, "seed_rows", 0, super::fields::range::MAX_COUNT)
            .unwrap_or(10_000),
        keep_table: f.bool(cx, "keep_table").unwrap_or(false),
    }))
}
