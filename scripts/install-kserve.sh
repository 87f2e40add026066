#!/usr/bin/env bash
# A real KServe v2 (Open Inference Protocol) server for tensor inference: kserve's ModelServer
# (PyPI kserve 0.21) with onnx + onnxruntime, in /opt/factorybench/kserve (about 60 s, 560 MB).
# kserve, unlike mlserver 1.7 (about 50 s, 435 MB), speaks the binary tensor extension.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pyvenv.sh"
pyvenv_install kserve 'kserve==0.21.*' 'onnx==1.*' 'onnxruntime==1.*'
/opt/factorybench/kserve/bin/python -c 'import kserve, onnx, onnxruntime' >/dev/null
log "kserve installed"
