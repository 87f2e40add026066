// A fast OpenAI-compatible streaming fixture for measuring the benchmark CLIENT (not a model):
// /v1/models and /v1/completions with stream: true, TOKENS chunks per request, the first
// after TTFT_MS, then one every ITL_MS, then usage and [DONE]. Known delays → timing error.
// Usage: node fast-streamer.mjs PORT [TTFT_MS=20] [ITL_MS=1]
import http from "node:http";
const port = Number(process.argv[2]);
const ttft = Number(process.argv[3] ?? 20);
const itl = Number(process.argv[4] ?? 1);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
http.createServer(async (req, res) => {
  if (req.url === "/v1/models") {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify({ object: "list", data: [{ id: "fast", object: "model" }] }));
  }
  let body = "";
  for await (const c of req) body += c;
  const n = JSON.parse(body).max_tokens ?? 32;
  res.writeHead(200, { "content-type": "text/event-stream" });
  await sleep(ttft);
  for (let i = 0; i < n; i++) {
    if (i > 0 && itl > 0) await sleep(itl);
    res.write(`data: {"id":"x","object":"text_completion","choices":[{"index":0,"text":" t${i}","finish_reason":null}]}\n\n`);
  }
  res.write(`data: {"id":"x","choices":[{"index":0,"text":"","finish_reason":"length"}]}\n\n`);
  res.write(`data: {"id":"x","choices":[],"usage":{"prompt_tokens":8,"completion_tokens":${n},"total_tokens":${n + 8}}}\n\n`);
  res.end("data: [DONE]\n\n");
}).listen(port, "127.0.0.1");
