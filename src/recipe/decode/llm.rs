//! LLM services (`service_type: ollama | vllm | triton | nim`): the API choices are the kind's
//! [`crate::kinds::LlmFacts`].

use super::fields::*;
use super::KindCx;
use crate::recipe::plan::*;
use crate::recipe::yaml::{Node, NodeKind};

/// The workload of one service of this kind.
pub(super) fn decode(cx: &mut Ctx, k: &KindCx) -> Option<Workload> {
    let f = k.f;
    let kind = k.kind;
    let pos = f.pos();
    for key in super::tensor::TENSOR_KEYS {
        if let Some(n) = f.get(key) {
            // Triton with a text `api`; other kinds never take tensors.
            let why = if kind.spec().decoder() == crate::kinds::Decoder::LlmOrTensor {
                "is for tensor inference (`api: tensor`), not a text `api`"
            } else {
                "applies to `service_type: triton` tensor inference only"
            };
            cx.error(n.pos, &f.p(key), format!("`{key}` {why}"));
        }
    }
    let model = f.nonempty_string(cx, "model");
    if model.is_none() && f.get("model").is_none() {
        cx.error(
            pos,
            &f.p("model"),
            format!("service_type {kind} needs `model`"),
        );
    }
    let facts = kind
        .spec()
        .llm()
        .expect("the LLM decoder reads LLM kinds only");
    let api = f
        .enum_of(
            cx,
            "api",
            &[
                ("generate", facts.generate),
                ("chat", facts.chat),
                ("completions", LlmApi::Completions),
                ("chat_completions", LlmApi::ChatCompletions),
                ("infer", LlmApi::TritonInfer),
            ],
        )
        .unwrap_or(facts.default_api);
    let ok_api = facts.apis.contains(&api);
    if !ok_api {
        cx.error(
            f.get("api").map(|n| n.pos).unwrap_or(pos),
            &f.p("api"),
            format!("api {api:?} is not served by service_type {kind}"),
        );
    }
    let prompts = match f.get("prompt") {
        None => PromptSource::Synthetic {
            input_tokens: TokenDist::Fixed { tokens: 128 },
        },
        Some(n) => {
            let p = f.p("prompt");
            cx.check_keys(n, &p, &["input_tokens", "file"], "`prompt`");
            let pf = Fields::new(Some(n), p.clone());
            if let Some(file) = pf.nonempty_string(cx, "file") {
                PromptSource::File { path: file.into() }
            } else {
                let it = match pf.get("input_tokens") {
                    Some(n) => token_dist(cx, n, &format!("{p}.input_tokens"), "`input_tokens`")?,
                    None => TokenDist::Fixed { tokens: 128 },
                };
                PromptSource::Synthetic { input_tokens: it }
            }
        }
    };
    if f.get("output_tokens").is_some() && f.get("max_tokens").is_some() {
        cx.error(
            f.get("max_tokens").unwrap().pos,
            &f.p("max_tokens"),
            "give `output_tokens` or `max_tokens`, not both",
        );
    }
    let output_tokens = match f.get("output_tokens").or(f.get("max_tokens")) {
        Some(n) => token_dist(cx, n, &f.p("output_tokens"), "`output_tokens`")?,
        None => TokenDist::Fixed { tokens: 128 },
    };
    let slo = match f.get("slo") {
        None => Slo::default(),
        Some(n) => {
            let p = f.p("slo");
            cx.check_keys(n, &p, &["ttft_ms", "tpot_ms", "e2el_ms"], "`slo`");
            let sf = Fields::new(Some(n), p);
            Slo {
                ttft_ms: sf.f64_range(cx, "ttft_ms", 0.0, range::MAX_MS),
                tpot_ms: sf.f64_range(cx, "tpot_ms", 0.0, range::MAX_MS),
                e2el_ms: sf.f64_range(cx, "e2el_ms", 0.0, range::MAX_MS),
            }
        }
    };
    let temperature = f
        .f64_range(cx, "temperature", 0.0, range::MAX_TEMPERATURE)
        .unwrap_or(0.0);
    Some(Workload::Llm(LlmWorkload {
        api,
        model: model.unwrap_or_default(),
        prompts,
        output_tokens,
        ignore_eos: f.bool(cx, "ignore_eos").unwrap_or(false),
        temperature,
        slo,
        pull_model: f.bool(cx, "pull_model").unwrap_or(false),
        api_key: f.secret(cx, "api_key"),
    }))
}

fn token_dist(cx: &mut Ctx, n: &Node, path: &str, what: &str) -> Option<TokenDist> {
    match &n.kind {
        NodeKind::Scalar { .. } => {
            let v = n.as_scalar()?.parse::<u32>().ok().filter(|v| *v > 0);
            if v.is_none() {
                cx.error(n.pos, path, format!("{what} must be a whole number > 0"));
            }
            v.map(|tokens| TokenDist::Fixed { tokens })
        }
        NodeKind::Map(_) => {
            let f = Fields::new(Some(n), path);
            cx.check_keys(n, path, &["min", "max", "mean", "stddev"], what);
            if f.get("min").is_some() || f.get("max").is_some() {
                let min = f.u32_range(cx, "min", 1, 1_000_000)?;
                let max = f.u32_range(cx, "max", 1, 1_000_000)?;
                if min > max {
                    cx.error(
                        n.pos,
                        path,
                        format!("{what}: min ({min}) is greater than max ({max})"),
                    );
                    return None;
                }
                Some(TokenDist::Uniform { min, max })
            } else {
                let mean = f.f64_range(cx, "mean", 0.0, range::MAX_TOKENS);
                let stddev = f
                    .f64_range(cx, "stddev", 0.0, range::MAX_TOKENS)
                    .unwrap_or(0.0);
                match mean {
                    Some(m) if m >= 1.0 => Some(TokenDist::Normal { mean: m, stddev }),
                    _ => {
                        cx.error(
                            n.pos,
                            path,
                            format!("{what} needs `min`+`max` or `mean` (>= 1) [+ `stddev`]"),
                        );
                        None
                    }
                }
            }
        }
        _ => {
            cx.error(n.pos, path, format!("{what} must be a number or a mapping"));
            None
        }
    }
}
