//! The LLM servers: Ollama, vLLM (and any OpenAI-compatible server), Triton, NVIDIA NIM.

use super::workload::{LlmApi, Workload};
use super::{
    AmbientSecret, Check, Decoder, DoctorRule, GpuNeed, Health, Kind, Launch, LaunchCtx, LlmFacts,
    ModelCache, Server, ServiceKind, Word, BIND_HOST,
};

pub const LLM_KEYS: &[&str] = &[
    "model",
    "api",
    "prompt",
    "output_tokens",
    "max_tokens",
    "ignore_eos",
    "temperature",
    "slo",
    "pull_model",
    "api_key",
    "api_key_env",
    "api_key_file",
    // Triton tensor inference (`api: tensor`).
    "batch_size",
    "images",
    "tensor_encoding",
];

/// Hugging Face tokens: a server that downloads models from the Hub reads them.
const HF_TOKENS: &[AmbientSecret] = &[
    AmbientSecret {
        name: "HF_TOKEN",
        expected: false,
    },
    AmbientSecret {
        name: "HUGGING_FACE_HUB_TOKEN",
        expected: false,
    },
];

/// The OpenAI-compatible APIs.
const OPENAI: LlmFacts = LlmFacts {
    default_api: LlmApi::Completions,
    generate: LlmApi::OllamaGenerate,
    chat: LlmApi::ChatCompletions,
    apis: &[LlmApi::Completions, LlmApi::ChatCompletions],
};

// ---------- Ollama ----------

pub struct Ollama;

static OLLAMA_SERVER: Server = Server {
    default_port: Some(11434),
    health: Health::HttpOk {
        path: "/api/tags",
        bearer: false,
    },
    launch: launch_ollama,
};

impl Kind for Ollama {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Ollama
    }
    fn names(&self) -> &'static [&'static str] {
        &["ollama"]
    }
    fn recipe_keys(&self) -> &'static [&'static str] {
        LLM_KEYS
    }
    fn decoder(&self) -> Decoder {
        Decoder::Llm
    }
    fn server(&self) -> Option<&'static Server> {
        Some(&OLLAMA_SERVER)
    }
    fn checks(&self) -> &'static [Check] {
        &[Check::OllamaModelStore]
    }
    fn llm(&self) -> Option<&'static LlmFacts> {
        Some(&LlmFacts {
            default_api: LlmApi::OllamaGenerate,
            generate: LlmApi::OllamaGenerate,
            chat: LlmApi::OllamaChat,
            apis: &[
                LlmApi::OllamaGenerate,
                LlmApi::OllamaChat,
                LlmApi::Completions,
                LlmApi::ChatCompletions,
            ],
        })
    }
    fn model_cache(&self) -> Option<&'static ModelCache> {
        Some(&ModelCache {
            var: "OLLAMA_MODELS",
            dir: "ollama",
            own_cache_paths: &["/root/.ollama", "/root/.cache"],
        })
    }
    fn gpu(&self) -> GpuNeed {
        GpuNeed::Recommended
    }
    fn doctor(&self) -> &'static [DoctorRule] {
        &[DoctorRule::OllamaModel]
    }
}

/// Ollama reads its bind address from the environment (`OLLAMA_HOST`), not its arguments.
fn launch_ollama(cx: &LaunchCtx) -> Launch {
    let mut l = Launch::default();
    if cx.port.is_some() {
        l.env.push((
            "OLLAMA_HOST".into(),
            format!("{BIND_HOST}:{}", cx.port_str()),
        ));
    }
    l.args.push(Word::lit("serve"));
    l
}

// ---------- vLLM ----------

pub struct Vllm;

static VLLM_SERVER: Server = Server {
    default_port: Some(8000),
    health: Health::HttpOk {
        path: "/v1/models",
        bearer: true,
    },
    launch: launch_vllm,
};

impl Kind for Vllm {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Vllm
    }
    fn names(&self) -> &'static [&'static str] {
        &["vllm", "openai"]
    }
    fn recipe_keys(&self) -> &'static [&'static str] {
        LLM_KEYS
    }
    fn decoder(&self) -> Decoder {
        Decoder::Llm
    }
    fn server(&self) -> Option<&'static Server> {
        Some(&VLLM_SERVER)
    }
    fn llm(&self) -> Option<&'static LlmFacts> {
        Some(&OPENAI)
    }
    fn ambient_secrets(&self) -> &'static [AmbientSecret] {
        HF_TOKENS
    }
    fn model_cache(&self) -> Option<&'static ModelCache> {
        Some(&ModelCache {
            var: "HF_HOME",
            dir: "huggingface",
            own_cache_paths: &["/root/.ollama", "/root/.cache"],
        })
    }
    fn gpu(&self) -> GpuNeed {
        GpuNeed::Required
    }
}

fn launch_vllm(cx: &LaunchCtx) -> Launch {
    let mut l = Launch::default();
    l.args.extend([Word::lit("--host"), Word::lit(BIND_HOST)]);
    if cx.port.is_some() {
        l.args
            .extend([Word::lit("--port"), Word::lit(cx.port_str())]);
    }
    l.args.extend([Word::lit("--model"), cx.model_word()]);
    if matches!(cx.workload, Workload::Llm(llm) if llm.api_key.is_some()) {
        l.secret_env
            .push(("VLLM_API_KEY".into(), "FB_API_KEY".into()));
    }
    l
}

// ---------- Triton ----------

pub struct Triton;

static TRITON_SERVER: Server = Server {
    default_port: Some(8000),
    health: Health::HttpOk {
        path: "/v2/health/ready",
        bearer: false,
    },
    launch: launch_triton,
};

impl Kind for Triton {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Triton
    }
    fn names(&self) -> &'static [&'static str] {
        &["triton"]
    }
    fn recipe_keys(&self) -> &'static [&'static str] {
        LLM_KEYS
    }
    fn decoder(&self) -> Decoder {
        Decoder::LlmOrTensor
    }
    fn server(&self) -> Option<&'static Server> {
        Some(&TRITON_SERVER)
    }
    fn checks(&self) -> &'static [Check] {
        &[Check::TritonRepository]
    }
    fn llm(&self) -> Option<&'static LlmFacts> {
        Some(&LlmFacts {
            default_api: LlmApi::TritonGenerate,
            generate: LlmApi::TritonGenerate,
            chat: LlmApi::ChatCompletions,
            apis: &[LlmApi::TritonGenerate, LlmApi::TritonInfer],
        })
    }
    fn ambient_secrets(&self) -> &'static [AmbientSecret] {
        HF_TOKENS
    }
    fn gpu(&self) -> GpuNeed {
        GpuNeed::Required
    }
    fn doctor(&self) -> &'static [DoctorRule] {
        &[DoctorRule::TritonModelRepository]
    }
}

fn launch_triton(cx: &LaunchCtx) -> Launch {
    let mut l = Launch::default();
    l.args.push(Word::lit("tritonserver"));
    // `container_args` follow these arguments; a repository given there replaces the default.
    let own_repo = cx
        .extra_args
        .iter()
        .any(|a| a.starts_with("--model-repository"));
    if !own_repo {
        l.args.push(Word::lit("--model-repository=/models"));
    }
    l.args
        .push(Word::lit(format!("--http-address={BIND_HOST}")));
    if cx.port.is_some() {
        l.args
            .push(Word::lit(format!("--http-port={}", cx.port_str())));
    }
    l.args.extend([
        Word::lit("--allow-grpc=false"),
        Word::lit("--allow-metrics=false"),
    ]);
    l
}

// ---------- NVIDIA NIM ----------

/// An NVIDIA NIM LLM container: OpenAI-compatible (`/v1/completions`,
/// `/v1/chat/completions`, `/v1/models`), ready when `/v1/health/ready` answers 200. The image
/// serves its own model and downloads it with `NGC_API_KEY` (or a Hugging Face token) into
/// `NIM_CACHE_PATH` (default `/opt/nim/.cache`).
pub struct Nim;

static NIM_SERVER: Server = Server {
    default_port: Some(8000),
    health: Health::HttpOk {
        path: "/v1/health/ready",
        bearer: false,
    },
    launch: launch_nim,
};

impl Kind for Nim {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Nim
    }
    fn names(&self) -> &'static [&'static str] {
        &["nim", "nvidia_nim"]
    }
    fn recipe_keys(&self) -> &'static [&'static str] {
        LLM_KEYS
    }
    fn decoder(&self) -> Decoder {
        Decoder::Llm
    }
    fn server(&self) -> Option<&'static Server> {
        Some(&NIM_SERVER)
    }
    fn llm(&self) -> Option<&'static LlmFacts> {
        Some(&LlmFacts {
            default_api: LlmApi::ChatCompletions,
            ..OPENAI
        })
    }
    fn ambient_secrets(&self) -> &'static [AmbientSecret] {
        &[
            AmbientSecret {
                name: "NGC_API_KEY",
                expected: true,
            },
            AmbientSecret {
                name: "HF_TOKEN",
                expected: false,
            },
        ]
    }
    fn model_cache(&self) -> Option<&'static ModelCache> {
        Some(&ModelCache {
            var: "NIM_CACHE_PATH",
            dir: "nim",
            own_cache_paths: &["/opt/nim/.cache"],
        })
    }
    fn gpu(&self) -> GpuNeed {
        GpuNeed::Required
    }
    fn doctor(&self) -> &'static [DoctorRule] {
        &[DoctorRule::AmbientSecrets]
    }
}

/// NIM takes its port from `NIM_SERVER_PORT`; it has no bind-address setting (it listens on
/// every address of the node).
fn launch_nim(cx: &LaunchCtx) -> Launch {
    let mut l = Launch::default();
    if cx.port.is_some() {
        l.env.push(("NIM_SERVER_PORT".into(), cx.port_str()));
    }
    l
}
