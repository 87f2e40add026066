//! LLM clients against the real test model (scripts/start-llm.sh: SmolLM2-135M behind our
//! node-llama-cpp server speaking the OpenAI and Ollama APIs) and against scripted fixtures
//! (bad streams, dropped connections, Triton's KServe v2 protocol: no Triton installs here).

use crate::common;
use crate::llm_support;

use factorybench::runner::client::{Client, ErrorClass};
use factorybench::runner::clients::llm::{metrics, LlmClient};
use factorybench::runner::clients::make_client;
use llm_support::{drive, fixture, service, Dialect, Row, Script};
use std::sync::Arc;

/// The real model server answers one request at a time: tests that compare client and server
/// timings must not queue behind each other, so they take this lock.
fn real_server_lock() -> std::sync::MutexGuard<'static, ()> {
    common::real_llm_lock()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn assert_ok(rows: &[Row]) {
    for r in rows {
        assert!(
            r.outcome.error.is_none(),
            "request {} failed: {:?} {:?}",
            r.seq,
            r.outcome.error,
            r.outcome.error_message
        );
    }
}

/// Checks shared by the real-model tests: every request succeeded with server-reported token
/// counts, one timestamp per later token chunk, and TTFT / token counts agree with the server's
/// own timings.
fn check_real(client: &LlmClient, rows: &[Row], max_tokens: u64, exact_tokens: bool) {
    assert_ok(rows);
    for r in rows {
        let llm = r.outcome.llm.as_ref().expect("llm outcome");
        assert!(llm.tokens_from_server, "server reports usage");
        let out = llm.output_tokens.unwrap();
        assert!(out >= 1 && out <= max_tokens, "output tokens {out}");
        if exact_tokens {
            assert_eq!(
                out, max_tokens,
                "ignore_eos/num_predict gives exactly max_tokens"
            );
        }
        assert!(llm.input_tokens.unwrap() >= 1);
        let first = r.first_byte_ns.expect("first token marked");
        assert!(first > r.sent_ns && first <= r.done_ns);
        // One timestamp per token chunk after the first, in order, inside the request.
        let mut prev = first;
        for &t in &llm.token_times_ns {
            assert!(t >= prev && t <= r.done_ns);
            prev = t;
        }
        // Our server sends one chunk per token (text of multi-byte characters can split into
        // more tokens than visible chunks, never fewer tokens than chunks).
        assert!((llm.token_times_ns.len() as u64) < out);
        assert!(r.outcome.bytes_received > 0 && r.outcome.bytes_sent > 0);
    }
    let s = client.server_stats();
    assert_eq!(
        s.requests,
        rows.len() as u64,
        "every response carried server timings"
    );
    let n = s.requests as f64;
    let (server_ttft, client_ttft) = (s.server_ttft_ms_sum / n, s.client_ttft_ms_sum / n);
    // Tolerance: the client's TTFT (send → first token chunk read) includes the HTTP exchange
    // on loopback; it must not be below the server's (arrival → first token sampled) and may
    // exceed it by at most 50 ms + 20 % on a loaded 2-core CI machine.
    assert!(
        client_ttft >= server_ttft - 1.0 && client_ttft <= server_ttft * 1.2 + 50.0,
        "client TTFT {client_ttft:.1} ms vs server {server_ttft:.1} ms"
    );
    let (server_dec, client_dec) = (s.server_decode_ms_sum / n, s.client_decode_ms_sum / n);
    assert!(
        (client_dec - server_dec).abs() <= server_dec * 0.2 + 50.0,
        "decode: client {client_dec:.1} ms vs server {server_dec:.1} ms"
    );
    // Token counts: chunks seen by the client within 10 % of the server's count.
    assert!(
        s.client_token_chunks <= s.server_output_tokens
            && s.client_token_chunks as f64 >= 0.9 * s.server_output_tokens as f64,
        "chunks {} vs server tokens {}",
        s.client_token_chunks,
        s.server_output_tokens
    );
    eprintln!(
        "TTFT client {client_ttft:.1} ms, server {server_ttft:.1} ms; decode client {client_dec:.1} ms, server {server_dec:.1} ms; tokens {}/{}",
        s.client_token_chunks, s.server_output_tokens
    );
}

fn real(api: &str, url: &str, model: &str, extra: &str) -> (Arc<LlmClient>, Arc<dyn Client>) {
    let kind = if api.starts_with("ollama") {
        "ollama"
    } else {
        "vllm"
    };
    let api = api.trim_start_matches("ollama_");
    let svc = service(&format!(
        "service_name: real-{kind}\n    service_type: {kind}\n    runtime: external\n    service_url: {url}\n    model: \"{model}\"\n    api: {api}\n    prompt: {{input_tokens: 16}}\n    output_tokens: 8\n    seed: 42\n    timeout: 120\n{extra}"
    ));
    let c = Arc::new(LlmClient::new(&svc).expect("client"));
    (c.clone(), c)
}

#[test]
fn real_openai_completions_and_chat() {
    let _serial = real_server_lock();
    let Some(env) = common::server("llm") else {
        return;
    };
    let url = &env["FB_TEST_LLM_OPENAI_URL"];
    let model = &env["FB_TEST_LLM_OPENAI_MODEL"];
    rt().block_on(async {
        for api in ["completions", "chat"] {
            let (c, dync) = real(api, url, model, "    ignore_eos: true\n");
            dync.setup().await.expect("setup");
            let rows = drive(dync.clone(), 3, 2).await;
            check_real(&c, &rows, 8, true);
            let m = dync.teardown().await.unwrap();
            assert!(m.iter().any(|m| m.name == "server_ttft_ms_mean"));
            let op = rows[0].outcome.op;
            assert_eq!(
                op,
                if api == "chat" {
                    "chat_completions"
                } else {
                    "completions"
                }
            );
        }
    });
}

#[test]
fn real_ollama_generate_and_chat() {
    let _serial = real_server_lock();
    let Some(env) = common::server("llm") else {
        return;
    };
    let url = &env["FB_TEST_LLM_OLLAMA_URL"];
    let model = &env["FB_TEST_LLM_OLLAMA_MODEL"];
    rt().block_on(async {
        for api in ["ollama_generate", "ollama_chat"] {
            let (c, dync) = real(api, url, model, "    temperature: 0\n");
            dync.setup().await.expect("setup");
            let rows = drive(dync.clone(), 3, 2).await;
            check_real(&c, &rows, 8, false);
        }
    });
}

#[test]
fn real_server_missing_model_fails_setup_clearly() {
    let _serial = real_server_lock();
    let Some(env) = common::server("llm") else {
        return;
    };
    rt().block_on(async {
        let (_, c) = real(
            "ollama_generate",
            &env["FB_TEST_LLM_OLLAMA_URL"],
            "no-such-model:7b",
            "",
        );
        let e = c.setup().await.unwrap_err();
        assert_eq!(e.class, ErrorClass::Validation);
        assert!(e.message.contains("pull_model"), "{e}");
        // pull_model asks the server to pull; ours only has its bundled model, so the pull
        // fails the way Ollama reports a missing manifest.
        let (_, c) = real(
            "ollama_generate",
            &env["FB_TEST_LLM_OLLAMA_URL"],
            "no-such-model:7b",
            "    pull_model: true\n",
        );
        let e = c.setup().await.unwrap_err();
        assert!(e.message.contains("pull"), "{e}");
        let (_, c) = real("completions", &env["FB_TEST_LLM_OPENAI_URL"], "gpt-x", "");
        let e = c.setup().await.unwrap_err();
        assert!(
            e.message.contains("SmolLM2"),
            "lists the served models: {e}"
        );
    });
}

fn fixture_service(kind: &str, url: &str, api: &str, model: &str) -> Arc<dyn Client> {
    let svc = service(&format!(
        "service_name: fx\n    service_type: {kind}\n    runtime: external\n    service_url: {url}\n    model: {model}\n    api: {api}\n    prompt: {{input_tokens: 8}}\n    output_tokens: 5\n    timeout: 10\n"
    ));
    make_client(&svc).expect("client")
}

async fn run_script(dialect: Dialect, script: Script, n: u64) -> Vec<Row> {
    let (kind, api) = match dialect {
        Dialect::OpenAi => ("vllm", "completions"),
        Dialect::Ollama => ("ollama", "generate"),
        Dialect::Triton => ("triton", "generate"),
    };
    let url = fixture(dialect, "m", script).await;
    let c = fixture_service(kind, &url, api, "m");
    c.setup().await.expect("setup");
    drive(c, n, 2).await
}

#[test]
fn invalid_streams_are_failed_requests_in_every_dialect() {
    rt().block_on(async {
        for dialect in [Dialect::OpenAi, Dialect::Ollama, Dialect::Triton] {
            let cases: Vec<(Script, ErrorClass)> = vec![
                (
                    Script::ZeroTokens,
                    if dialect == Dialect::Triton {
                        ErrorClass::Protocol
                    } else {
                        ErrorClass::Validation
                    },
                ),
                (Script::Empty, ErrorClass::Protocol),
                (Script::ErrorInStream, ErrorClass::Protocol),
                (Script::KillAfter { tokens: 3 }, ErrorClass::Io),
                (Script::Status(503), ErrorClass::HttpStatus),
                (Script::Status(401), ErrorClass::Auth),
            ];
            for (script, class) in cases {
                let rows = run_script(dialect, script.clone(), 3).await;
                assert_eq!(rows.len(), 3);
                for r in &rows {
                    assert_eq!(
                        r.outcome.error,
                        Some(class),
                        "{dialect:?} {script:?}: {:?}",
                        r.outcome.error_message
                    );
                    assert!(r.outcome.error_message.is_some());
                }
                if let Script::KillAfter { tokens } = script {
                    // Everything received before the drop is kept on the failed row.
                    for r in &rows {
                        let llm = r.outcome.llm.as_ref().unwrap();
                        assert_eq!(llm.output_tokens, Some(tokens as u64), "{dialect:?}");
                        assert_eq!(llm.token_times_ns.len(), tokens as usize - 1);
                        assert!(r.first_byte_ns.is_some());
                    }
                }
            }
        }
    });
}

#[test]
fn fixture_streams_measure_known_delays() {
    rt().block_on(async {
        for dialect in [Dialect::OpenAi, Dialect::Ollama, Dialect::Triton] {
            let rows = run_script(
                dialect,
                Script::Tokens {
                    tokens: 5,
                    ttft_ms: 40,
                    itl_ms: 10,
                },
                4,
            )
            .await;
            assert_ok(&rows);
            for r in &rows {
                let llm = r.outcome.llm.as_ref().unwrap();
                assert_eq!(llm.output_tokens, Some(5));
                assert_eq!(llm.tokens_from_server, dialect != Dialect::Triton);
                assert_eq!(llm.token_times_ns.len(), 4);
                // Lower bounds only (timing upper bounds would make the test flaky).
                assert!(r.ttft_ms() >= 40.0, "{dialect:?} TTFT {}", r.ttft_ms());
                // The last token cannot arrive before 40 + 4 × 10 ms; the gaps add up to
                // first → last token exactly.
                let last = *llm.token_times_ns.last().unwrap();
                assert!(last - r.sent_ns >= 80_000_000);
                let itl = metrics::itl_us(r.first_byte_ns.unwrap(), &llm.token_times_ns);
                let sum_us: i64 = itl.iter().map(|g| *g as i64).sum();
                assert!((sum_us - (last - r.first_byte_ns.unwrap()) / 1000).abs() <= 4);
                let lat =
                    metrics::RequestLatency::from_row(r.sent_ns, r.first_byte_ns, r.done_ns, 5)
                        .unwrap();
                assert!(lat.tpot_ms.unwrap() > 0.0);
            }
        }
    });
}

#[test]
fn triton_infer_and_model_readiness() {
    rt().block_on(async {
        let url = fixture(
            Dialect::Triton,
            "ensemble",
            Script::Tokens {
                tokens: 7,
                ttft_ms: 5,
                itl_ms: 0,
            },
        )
        .await;
        let c = fixture_service("triton", &url, "infer", "ensemble");
        c.setup().await.expect("setup");
        let rows = drive(c, 2, 1).await;
        assert_ok(&rows);
        let llm = rows[0].outcome.llm.as_ref().unwrap();
        assert_eq!(
            llm.output_tokens,
            Some(7),
            "word-count estimate of text_output"
        );
        assert!(!llm.tokens_from_server);
        assert_eq!(rows[0].outcome.op, "infer");
        let c = fixture_service("triton", &url, "generate", "other");
        let e = c.setup().await.unwrap_err();
        assert_eq!(e.class, ErrorClass::Validation);
        assert!(e.message.contains("not ready"), "{e}");
    });
}

#[test]
fn connection_refused_is_a_connect_error() {
    rt().block_on(async {
        // Bind then drop to get a free port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = fixture_service(
            "vllm",
            &format!("http://127.0.0.1:{port}"),
            "completions",
            "m",
        );
        let e = c.setup().await.unwrap_err();
        assert_eq!(e.class, ErrorClass::Connect);
    });
}
