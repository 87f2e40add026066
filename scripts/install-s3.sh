#!/usr/bin/env bash
# moto's S3 server (PyPI moto[server]) in /opt/factorybench/moto. Note: moto does NOT verify
# SigV4 signatures; the signer is checked against AWS's published test vectors in unit tests.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pyvenv.sh"
pyvenv_install moto 'moto[server]==5.*'
/opt/factorybench/moto/bin/moto_server --help >/dev/null
log "moto installed"
