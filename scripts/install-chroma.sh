#!/usr/bin/env bash
# ChromaDB server (PyPI chromadb 1.x) in /opt/factorybench/chroma.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pyvenv.sh"
pyvenv_install chroma 'chromadb==1.*'
/opt/factorybench/chroma/bin/chroma --help >/dev/null
log "chromadb installed"
