#!/usr/bin/env bash
# Start the test LLM server (scripts/llm/server.mjs: our server around node-llama-cpp, NOT Ollama
# or vLLM) in the background: OpenAI-compatible API on 127.0.0.1:18080, Ollama API on
# 127.0.0.1:18081, both serving the same real SmolLM2-135M model. Waits until a real completion
# streams back, then writes $FB_TEST_STATE/llm.env.
. "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"
home="${FB_LLM_HOME:-/opt/factorybench-llm}"
openai_port="${FB_LLM_OPENAI_PORT:-18080}"
ollama_port="${FB_LLM_OLLAMA_PORT:-18081}"
openai_model="SmolLM2-135M-Instruct"
ollama_model="smollm2:135m"
cp "$here/llm/server.mjs" "$home/server.mjs"
pidfile="$FB_TEST_STATE/llm.pid"
# A server started from another server.mjs (the tree gained a route since) is restarted.
sum="$(sha256sum < "$home/server.mjs" | cut -c1-16)"
if [ -s "$pidfile" ] && [ "$(cat "$FB_TEST_STATE/llm.sum" 2>/dev/null)" != "$sum" ]; then
  log "server.mjs changed: restarting"
  kill "$(cat "$pidfile")" 2>/dev/null || true
  sleep 1
fi
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null \
   && curl -fsS "http://127.0.0.1:$openai_port/v1/models" >/dev/null 2>&1; then
  log "already running (pid $(cat "$pidfile"))"
else
  log "starting on 127.0.0.1:$openai_port (OpenAI) and :$ollama_port (Ollama)"
  # `&` on node alone (not on `cd && node`), so the pid file holds node's own pid.
  (cd "$home" && { FB_LLM_MODEL_PATH="$home/model/SmolLM2-135M-Instruct.Q4_1.gguf" \
     FB_LLM_OPENAI_PORT="$openai_port" FB_LLM_OLLAMA_PORT="$ollama_port" \
     FB_LLM_OPENAI_MODEL="$openai_model" FB_LLM_OLLAMA_MODEL="$ollama_model" \
     nohup node server.mjs > "$FB_TEST_STATE/llm-server.log" 2>&1 & echo $! > "$pidfile"; })
  wait_for "LLM OpenAI API" 120 curl -fsS "http://127.0.0.1:$openai_port/v1/models"
  wait_for "LLM Ollama API" 30 curl -fsS "http://127.0.0.1:$ollama_port/api/tags"
  echo "$sum" > "$FB_TEST_STATE/llm.sum"
fi
# A real generation (also warms the model up).
curl -fsS "http://127.0.0.1:$openai_port/v1/completions" -H 'content-type: application/json' \
  -d "{\"model\":\"$openai_model\",\"prompt\":\"Hello\",\"max_tokens\":2}" >/dev/null
write_env llm \
  "FB_TEST_LLM_OPENAI_URL=http://127.0.0.1:$openai_port" \
  "FB_TEST_LLM_OLLAMA_URL=http://127.0.0.1:$ollama_port" \
  "FB_TEST_LLM_OPENAI_MODEL=$openai_model" \
  "FB_TEST_LLM_OLLAMA_MODEL=$ollama_model" \
  "FB_TEST_LLM_PID=$(cat "$pidfile")"
log "LLM server up"
