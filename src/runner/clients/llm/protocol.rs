//! The wire protocols: request bodies and the meaning of each streamed frame, per API.
//!
//! - OpenAI-compatible (vLLM, llama.cpp server, Ollama's `/v1`, ...): `/v1/completions` and
//!   `/v1/chat/completions` with `stream: true`, SSE frames `data: {json}`, ending with
//!   `data: [DONE]`; `stream_options.include_usage` makes the server send a last chunk with
//!   `usage` (prompt/completion tokens). llama.cpp-style `timings` are read when present.
//! - Ollama native: `/api/generate` and `/api/chat`, NDJSON; every `done: false` line carries
//!   text, the `done: true` line carries `prompt_eval_count`, `eval_count` and durations (ns).
//! - Triton (KServe v2): the generate extension `/v2/models/{m}/generate_stream` (SSE, one
//!   frame per response, `text_output` holding the new text; the stream ends when the server
//!   closes it) and the inference protocol `/v2/models/{m}/infer` (one JSON response, the
//!   `text_output` BYTES tensor).
//!
//! An `error` member in any frame (OpenAI `{"error": {...}}`, Ollama `{"error": "..."}`,
//! Triton `{"error": "..."}`) or an SSE `event: error` is an error inside the stream.

use super::prompts::PromptSpec;
use super::stream::{Frame, Framing};
use crate::recipe::{LlmApi, LlmWorkload};
use serde_json::{json, Value};

/// What one frame said.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A chunk of generated text (`tokens` = 1 for streamed chunks; an estimate for
    /// non-streamed bodies).
    Token { tokens: u64 },
    /// Token counts reported by the server.
    Usage {
        prompt_tokens: Option<u64>,
        completion_tokens: Option<u64>,
    },
    /// The server's own timings for this request.
    ServerTiming(ServerTiming),
    /// The protocol's end-of-response marker.
    Done,
    /// An error reported inside the response.
    Error(String),
}

/// Server-side timings of one request, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ServerTiming {
    /// The server's time to the first token: Ollama `load_duration + prompt_eval_duration`;
    /// llama.cpp `timings.prompt_ms` (our test server's `x_server_ttft_ms`, arrival → first
    /// token, when present).
    pub ttft_ms: Option<f64>,
    /// First → last generated token.
    pub decode_ms: Option<f64>,
    /// Tokens generated.
    pub tokens: Option<u64>,
}

/// Operation label stored in `requests.op`.
pub fn op_label(api: LlmApi) -> &'static str {
    match api {
        LlmApi::OllamaGenerate => "generate",
        LlmApi::OllamaChat => "chat",
        LlmApi::Completions => "completions",
        LlmApi::ChatCompletions => "chat_completions",
        LlmApi::TritonGenerate => "generate_stream",
        LlmApi::TritonInfer => "infer",
    }
}

pub fn framing(api: LlmApi) -> Framing {
    match api {
        LlmApi::OllamaGenerate | LlmApi::OllamaChat => Framing::Ndjson,
        LlmApi::Completions | LlmApi::ChatCompletions | LlmApi::TritonGenerate => Framing::Sse,
        LlmApi::TritonInfer => Framing::Whole,
    }
}

/// Whether a response is incomplete without an explicit end marker. Triton's generate_stream
/// has none: the end of the (chunked) body is the end.
pub fn requires_done(api: LlmApi) -> bool {
    !matches!(api, LlmApi::TritonGenerate)
}

/// Percent-encode a model name for a URL path segment.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Path (below the base URL) of a request.
pub fn request_path(api: LlmApi, model: &str) -> String {
    match api {
        LlmApi::OllamaGenerate => "/api/generate".into(),
        LlmApi::OllamaChat => "/api/chat".into(),
        LlmApi::Completions => "/v1/completions".into(),
        LlmApi::ChatCompletions => "/v1/chat/completions".into(),
        LlmApi::TritonGenerate => format!("/v2/models/{}/generate_stream", path_segment(model)),
        LlmApi::TritonInfer => format!("/v2/models/{}/infer", path_segment(model)),
    }
}

/// The JSON body of one request.
pub fn request_body(api: LlmApi, w: &LlmWorkload, p: &PromptSpec) -> Value {
    let messages = json!([{ "role": "user", "content": p.text }]);
    match api {
        LlmApi::Completions | LlmApi::ChatCompletions => {
            let mut b = json!({
                "model": w.model,
                "max_tokens": p.max_tokens,
                "temperature": w.temperature,
                "stream": true,
                "stream_options": { "include_usage": true },
            });
            if api == LlmApi::Completions {
                b["prompt"] = json!(p.text);
            } else {
                b["messages"] = messages;
            }
            if w.ignore_eos {
                // vLLM (and llama.cpp) extension; plain OpenAI servers may reject it, so it is
                // only sent when the recipe asks for it.
                b["ignore_eos"] = json!(true);
            }
            b
        }
        LlmApi::OllamaGenerate | LlmApi::OllamaChat => {
            // Ollama has no ignore_eos option.
            let mut b = json!({
                "model": w.model,
                "stream": true,
                "options": { "num_predict": p.max_tokens, "temperature": w.temperature },
            });
            if api == LlmApi::OllamaGenerate {
                b["prompt"] = json!(p.text);
            } else {
                b["messages"] = messages;
            }
            b
        }
        LlmApi::TritonGenerate => {
            // The generate extension maps top-level keys to model inputs (TensorRT-LLM
            // ensemble names, as vLLM's benchmark sends them); an unknown input is an error,
            // so ignore_eos is only sent when asked for.
            let mut b = json!({
                "text_input": p.text,
                "max_tokens": p.max_tokens,
                "temperature": w.temperature,
                "stream": true,
            });
            if w.ignore_eos {
                b["ignore_eos"] = json!(true);
            }
            b
        }
        LlmApi::TritonInfer => json!({
            "inputs": [
                { "name": "text_input", "datatype": "BYTES", "shape": [1, 1], "data": [p.text] },
                { "name": "max_tokens", "datatype": "INT32", "shape": [1, 1], "data": [p.max_tokens] },
            ]
        }),
    }
}

fn error_text(v: &Value) -> Option<String> {
    let e = v.get("error")?;
    if e.is_null() {
        return None;
    }
    Some(match e {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string()),
        other => other.to_string(),
    })
}

fn nonempty_str(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|s| !s.is_empty())
}

/// Parse one frame into events. `Err` = the frame is not valid JSON (a protocol error).
pub fn parse_frame(api: LlmApi, frame: &Frame, out: &mut Vec<Event>) -> Result<(), String> {
    let data = frame.data.trim();
    if frame.event.as_deref() == Some("error") {
        out.push(Event::Error(data.to_string()));
        return Ok(());
    }
    if matches!(api, LlmApi::Completions | LlmApi::ChatCompletions) && data == "[DONE]" {
        out.push(Event::Done);
        return Ok(());
    }
    let v: Value = serde_json::from_str(data).map_err(|e| {
        let shown: String = data.chars().take(120).collect();
        format!("invalid JSON frame ({e}): {shown}")
    })?;
    if let Some(msg) = error_text(&v) {
        out.push(Event::Error(msg));
        return Ok(());
    }
    match api {
        LlmApi::Completions | LlmApi::ChatCompletions => {
            if let Some(c) = v.get("choices").and_then(|c| c.get(0)) {
                let delta = c.get("delta");
                if nonempty_str(c.get("text"))
                    || nonempty_str(delta.and_then(|d| d.get("content")))
                    || nonempty_str(delta.and_then(|d| d.get("reasoning_content")))
                {
                    out.push(Event::Token { tokens: 1 });
                }
            }
            if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                out.push(Event::Usage {
                    prompt_tokens: u.get("prompt_tokens").and_then(Value::as_u64),
                    completion_tokens: u.get("completion_tokens").and_then(Value::as_u64),
                });
            }
            if let Some(t) = v.get("timings").filter(|t| t.is_object()) {
                let f = |k: &str| t.get(k).and_then(Value::as_f64);
                out.push(Event::ServerTiming(ServerTiming {
                    ttft_ms: f("x_server_ttft_ms").or(f("prompt_ms")),
                    decode_ms: f("predicted_ms"),
                    tokens: t.get("predicted_n").and_then(Value::as_u64),
                }));
            }
        }
        LlmApi::OllamaGenerate | LlmApi::OllamaChat => {
            let text = if api == LlmApi::OllamaGenerate {
                v.get("response")
            } else {
                v.get("message").and_then(|m| m.get("content"))
            };
            if nonempty_str(text) {
                out.push(Event::Token { tokens: 1 });
            }
            if v.get("done").and_then(Value::as_bool) == Some(true) {
                let n = |k: &str| v.get(k).and_then(Value::as_u64);
                out.push(Event::Usage {
                    prompt_tokens: n("prompt_eval_count"),
                    completion_tokens: n("eval_count"),
                });
                // Server time to the first token: model load + prompt evaluation (Ollama's
                // total_duration also holds the time after the last token, so total − eval
                // would overstate it).
                let ttft_ns = match (n("load_duration"), n("prompt_eval_duration")) {
                    (None, None) => None,
                    (l, p) => Some(l.unwrap_or(0) + p.unwrap_or(0)),
                };
                if ttft_ns.is_some() || n("eval_duration").is_some() {
                    out.push(Event::ServerTiming(ServerTiming {
                        ttft_ms: ttft_ns.map(|t| t as f64 / 1e6),
                        decode_ms: n("eval_duration").map(|t| t as f64 / 1e6),
                        tokens: n("eval_count"),
                    }));
                }
                out.push(Event::Done);
            }
        }
        LlmApi::TritonGenerate => {
            if nonempty_str(v.get("text_output")) {
                out.push(Event::Token { tokens: 1 });
            }
        }
        LlmApi::TritonInfer => {
            let text = v
                .get("outputs")
                .and_then(Value::as_array)
                .and_then(|outs| {
                    outs.iter()
                        .find(|o| o.get("name").and_then(Value::as_str) == Some("text_output"))
                })
                .and_then(|o| o.get("data"))
                .and_then(|d| d.get(0))
                .and_then(Value::as_str);
            match text {
                Some(t) if !t.trim().is_empty() => out.push(Event::Token {
                    // No tokenizer here: whitespace-separated words estimate the tokens.
                    tokens: t.split_whitespace().count() as u64,
                }),
                Some(_) => {}
                None => {
                    return Err("infer response has no `text_output` output tensor".into());
                }
            }
            out.push(Event::Done);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(api: LlmApi, data: &str) -> Vec<Event> {
        let mut out = Vec::new();
        parse_frame(
            api,
            &Frame {
                event: None,
                data: data.into(),
            },
            &mut out,
        )
        .unwrap();
        out
    }

    #[test]
    fn openai_frames() {
        let c = LlmApi::Completions;
        assert_eq!(
            parse(
                c,
                r#"{"choices":[{"index":0,"text":" Paris","finish_reason":null}]}"#
            ),
            vec![Event::Token { tokens: 1 }]
        );
        assert!(parse(c, r#"{"choices":[{"text":"","finish_reason":"length"}]}"#).is_empty());
        assert_eq!(parse(c, "[DONE]"), vec![Event::Done]);
        let u = parse(
            c,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":16},"timings":{"prompt_ms":12.5,"predicted_ms":300.0,"predicted_n":16}}"#,
        );
        assert_eq!(
            u,
            vec![
                Event::Usage {
                    prompt_tokens: Some(5),
                    completion_tokens: Some(16)
                },
                Event::ServerTiming(ServerTiming {
                    ttft_ms: Some(12.5),
                    decode_ms: Some(300.0),
                    tokens: Some(16)
                })
            ]
        );
        let chat = LlmApi::ChatCompletions;
        assert!(parse(chat, r#"{"choices":[{"delta":{"role":"assistant"}}]}"#).is_empty());
        assert!(parse(
            chat,
            r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#
        )
        .is_empty());
        assert_eq!(
            parse(
                chat,
                r#"{"choices":[{"delta":{"content":"Hi"}}],"usage":null}"#
            ),
            vec![Event::Token { tokens: 1 }]
        );
        assert_eq!(
            parse(chat, r#"{"error":{"message":"boom","code":500}}"#),
            vec![Event::Error("boom".into())]
        );
    }

    #[test]
    fn ollama_frames() {
        let g = LlmApi::OllamaGenerate;
        assert_eq!(
            parse(g, r#"{"response":"Hi","done":false}"#),
            vec![Event::Token { tokens: 1 }]
        );
        let last = parse(
            g,
            r#"{"response":"","done":true,"total_duration":500000000,"load_duration":10000000,"prompt_eval_count":7,"prompt_eval_duration":90000000,"eval_count":9,"eval_duration":400000000}"#,
        );
        assert_eq!(
            last,
            vec![
                Event::Usage {
                    prompt_tokens: Some(7),
                    completion_tokens: Some(9)
                },
                Event::ServerTiming(ServerTiming {
                    ttft_ms: Some(100.0),
                    decode_ms: Some(400.0),
                    tokens: Some(9)
                }),
                Event::Done
            ]
        );
        assert_eq!(
            parse(
                LlmApi::OllamaChat,
                r#"{"message":{"role":"assistant","content":"x"},"done":false}"#
            ),
            vec![Event::Token { tokens: 1 }]
        );
        assert_eq!(
            parse(g, r#"{"error":"model 'x' not found"}"#),
            vec![Event::Error("model 'x' not found".into())]
        );
    }

    #[test]
    fn triton_frames() {
        assert_eq!(
            parse(
                LlmApi::TritonGenerate,
                r#"{"model_name":"ensemble","text_output":" a"}"#
            ),
            vec![Event::Token { tokens: 1 }]
        );
        assert_eq!(
            parse(
                LlmApi::TritonInfer,
                r#"{"model_name":"m","outputs":[{"name":"text_output","datatype":"BYTES","shape":[1],"data":["one two three"]}]}"#
            ),
            vec![Event::Token { tokens: 3 }, Event::Done]
        );
        let mut out = Vec::new();
        assert!(parse_frame(
            LlmApi::TritonInfer,
            &Frame {
                event: None,
                data: r#"{"outputs":[]}"#.into()
            },
            &mut out
        )
        .is_err());
        assert!(parse_frame(
            LlmApi::TritonGenerate,
            &Frame {
                event: None,
                data: "{oops".into()
            },
            &mut out
        )
        .is_err());
        let mut out = Vec::new();
        parse_frame(
            LlmApi::TritonGenerate,
            &Frame {
                event: Some("error".into()),
                data: "bad".into(),
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(out, vec![Event::Error("bad".into())]);
    }

    #[test]
    fn paths_and_bodies() {
        assert_eq!(
            request_path(LlmApi::TritonGenerate, "my model/v1"),
            "/v2/models/my%20model%2Fv1/generate_stream"
        );
        let w = LlmWorkload {
            api: LlmApi::Completions,
            model: "m".into(),
            prompts: crate::recipe::PromptSource::Synthetic {
                input_tokens: crate::recipe::TokenDist::Fixed { tokens: 3 },
            },
            output_tokens: crate::recipe::TokenDist::Fixed { tokens: 8 },
            ignore_eos: true,
            temperature: 0.0,
            slo: Default::default(),
            pull_model: false,
            api_key: None,
        };
        let p = PromptSpec {
            text: "a b c".into(),
            approx_input_tokens: 3,
            max_tokens: 8,
        };
        let b = request_body(LlmApi::Completions, &w, &p);
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert_eq!(b["ignore_eos"], true);
        assert_eq!(b["max_tokens"], 8);
        let b = request_body(LlmApi::OllamaChat, &w, &p);
        assert_eq!(b["options"]["num_predict"], 8);
        assert_eq!(b["messages"][0]["content"], "a b c");
        let b = request_body(LlmApi::TritonInfer, &w, &p);
        assert_eq!(b["inputs"][1]["data"][0], 8);
    }
}
