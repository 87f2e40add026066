//! Vector databases (`service_type: vectordb`); the backends are listed in [`crate::kinds::vector`].

use super::fields::*;
use super::KindCx;
use crate::recipe::plan::*;

/// The workload of one service of this kind.
pub(super) fn decode(cx: &mut Ctx, k: &KindCx) -> Option<Workload> {
    let f = k.f;
    let backend = f
        .enum_of(cx, "backend", &crate::kinds::vector::backend_names())
        .unwrap_or(VectorBackend::Chromadb);
    let mix = decode_mix(
        cx,
        f,
        "operation_mix",
        &[
            ("insert", VectorOp::Insert),
            ("search", VectorOp::Search),
            ("update", VectorOp::Update),
            ("delete", VectorOp::Delete),
        ],
        &[
            (VectorOp::Insert, 0.2),
            (VectorOp::Search, 0.7),
            (VectorOp::Update, 0.05),
            (VectorOp::Delete, 0.05),
        ],
    );
    let vectors = match f.string(cx, "vectors") {
        None => VectorSource::Random,
        Some(v) if v == "random" => VectorSource::Random,
        Some(v) => VectorSource::File { path: v.into() },
    };
    let index = match f.get("index") {
        None => FaissIndex::Flat,
        Some(n) if n.as_scalar().is_some() => match n.as_scalar() {
            Some("flat") => FaissIndex::Flat,
            Some("hnsw") => FaissIndex::Hnsw { m: 32 },
            Some(o) => {
                cx.error_help(
                    n.pos,
                    &f.p("index"),
                    format!("unknown index `{o}`"),
                    "expected flat or hnsw".into(),
                );
                FaissIndex::Flat
            }
            None => unreachable!(),
        },
        Some(n) => {
            let p = f.p("index");
            cx.check_keys(n, &p, &["type", "m"], "`index`");
            let inf = Fields::new(Some(n), p);
            match inf.enum_of(cx, "type", &[("flat", 0u8), ("hnsw", 1u8)]) {
                Some(1) => FaissIndex::Hnsw {
                    m: inf.u32_range(cx, "m", 2, 512).unwrap_or(32),
                },
                _ => FaissIndex::Flat,
            }
        }
    };
    Some(Workload::Vectordb(VectorDbWorkload {
        backend,
        collection_name: f
            .nonempty_string(cx, "collection_name")
            .unwrap_or_else(|| "factorybench".into()),
        dimension: f.u32_range(cx, "dimension", 1, 65_536).unwrap_or(384),
        mix,
        batch_size: f.u32_range(cx, "batch_size", 1, 100_000).unwrap_or(10),
        search_k: f.u32_range(cx, "search_k", 1, 10_000).unwrap_or(10),
        vectors,
        dataset_size: f
            .u64_range(
                cx,
                "dataset_size",
                1,
                super::fields::range::MAX_DATASET_SIZE,
            )
            .unwrap_or(1000),
        recall_queries: f.u32_range(cx, "recall_queries", 0, 100_000).unwrap_or(100),
        index,
    }))
}
