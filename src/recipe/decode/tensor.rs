//! Triton tensor inference (`service_type: triton`, `api: tensor`): image models through
//! KServe v2 `/v2/models/{m}/infer`. Chosen by `api: tensor`, or — with no `api` — by a tensor
//! key (`batch_size`, `images`, `tensor_encoding`) or an image model's name (`resnet50`, ...).

use super::fields::*;
use super::KindCx;
use crate::recipe::plan::*;

/// The keys only tensor inference reads.
pub const TENSOR_KEYS: &[&str] = &["batch_size", "images", "tensor_encoding"];

/// Largest `batch_size` (inferences per request).
pub const MAX_BATCH: u32 = 4096;

/// Whether this Triton service is driven with tensors rather than text.
pub(super) fn wanted(f: &Fields) -> bool {
    match f.get("api").and_then(|n| n.as_scalar()) {
        Some(api) => api == "tensor",
        None => {
            TENSOR_KEYS.iter().any(|k| f.get(k).is_some())
                || f.get("model")
                    .and_then(|n| n.as_scalar())
                    .is_some_and(super::consistency::is_image_model)
        }
    }
}

pub(super) fn decode(cx: &mut Ctx, k: &KindCx) -> Option<Workload> {
    let f = k.f;
    let model = f.nonempty_string(cx, "model");
    if f.get("model").is_none() {
        cx.error(f.pos(), &f.p("model"), "service_type triton needs `model`");
    }
    for key in [
        "prompt",
        "output_tokens",
        "max_tokens",
        "ignore_eos",
        "temperature",
        "slo",
    ] {
        if let Some(n) = f.get(key) {
            cx.error(
                n.pos,
                &f.p(key),
                format!("`{key}` is for text models; this service sends tensors (`api: tensor`)"),
            );
        }
    }
    let batch_size = f.u32_range(cx, "batch_size", 1, MAX_BATCH).unwrap_or(1);
    let source = match f.nonempty_string(cx, "images") {
        Some(dir) => TensorSource::Images { dir: dir.into() },
        None => TensorSource::Random,
    };
    let encoding = f
        .enum_of(
            cx,
            "tensor_encoding",
            &[
                ("auto", TensorEncoding::Auto),
                ("binary", TensorEncoding::Binary),
                ("json", TensorEncoding::Json),
            ],
        )
        .unwrap_or(TensorEncoding::Auto);
    Some(Workload::Tensor(TensorWorkload {
        model: model.unwrap_or_default(),
        batch_size,
        source,
        encoding,
    }))
}
