//! File systems (`service_type: file_storage`).

use super::fields::*;
use super::KindCx;
use crate::recipe::plan::*;
use crate::recipe::units::parse_size_bytes;

/// The workload of one service of this kind.
pub(super) fn decode(cx: &mut Ctx, k: &KindCx) -> Option<Workload> {
    let f = k.f;
    let pos = f.pos();
    let base_path = f.nonempty_string(cx, "base_path");
    if base_path.is_none() && f.get("base_path").is_none() {
        cx.error(
            pos,
            &f.p("base_path"),
            "service_type file_storage needs `base_path`",
        );
    }
    let mix = decode_mix(
        cx,
        f,
        "operation_mix",
        &[
            ("write", FileOp::Write),
            ("read", FileOp::Read),
            ("stat", FileOp::Stat),
            ("delete", FileOp::Delete),
        ],
        &[
            (FileOp::Write, 0.3),
            (FileOp::Read, 0.5),
            (FileOp::Stat, 0.15),
            (FileOp::Delete, 0.05),
        ],
    );
    let sync_mode = match f.get("sync_mode") {
        None => SyncMode::None,
        Some(n) => match n.as_scalar() {
            Some("true" | "True" | "yes") => SyncMode::Fsync,
            Some("false" | "False" | "no") => SyncMode::None,
            _ => f
                .enum_of(
                    cx,
                    "sync_mode",
                    &[
                        ("none", SyncMode::None),
                        ("fsync", SyncMode::Fsync),
                        ("fdatasync", SyncMode::Fdatasync),
                        ("dsync", SyncMode::Dsync),
                        ("o_dsync", SyncMode::Dsync),
                    ],
                )
                .unwrap_or(SyncMode::None),
        },
    };
    let io_size_bytes = match f.get("io_size") {
        None => None,
        Some(n) => match parse_size_bytes(n.as_scalar().unwrap_or_default()) {
            Ok(s) if s > 0 => Some(s),
            Ok(_) => {
                cx.error(n.pos, &f.p("io_size"), "`io_size` must be greater than 0");
                None
            }
            Err(e) => {
                cx.error(n.pos, &f.p("io_size"), format!("invalid `io_size`: {e}"));
                None
            }
        },
    };
    let use_direct_io = f.bool(cx, "use_direct_io").unwrap_or(false);
    if let (true, Some(io)) = (use_direct_io, io_size_bytes) {
        if io % 512 != 0 {
            cx.error(
                f.get("io_size").unwrap().pos,
                &f.p("io_size"),
                format!(
                    "with use_direct_io, `io_size` must be a multiple of 512 bytes, found {io}"
                ),
            );
        }
    }
    Some(Workload::FileStorage(FileStorageWorkload {
        base_path: base_path.unwrap_or_default().into(),
        mix,
        file_sizes: decode_sizes(cx, f, "file_sizes", &[(4096, 0.5), (1 << 20, 0.5)]),
        use_direct_io,
        sync_mode,
        working_set_files: f
            .u32_range(cx, "working_set_files", 1, 1_000_000)
            .unwrap_or(16),
        io_size_bytes,
        io_engine: f
            .enum_of(
                cx,
                "io_engine",
                &[
                    ("auto", IoEngine::Auto),
                    ("io_uring", IoEngine::IoUring),
                    ("threads", IoEngine::Threads),
                ],
            )
            .unwrap_or(IoEngine::Auto),
    }))
}
