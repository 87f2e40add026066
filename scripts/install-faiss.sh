#!/usr/bin/env bash
# Faiss's C library for the in-process Faiss backend, which factorybench loads at run time
# (dlopen, like NVML): scripts/build-faiss-c.sh builds /usr/lib/x86_64-linux-gnu/libfaiss_c.so
# from Debian's libfaiss-dev (about 1 minute). No server to start: the install writes
# faiss.env (FB_TEST_FAISS_LIB) itself.
. "$(dirname "$0")/lib.sh"
bash "$(dirname "$0")/build-faiss-c.sh"
lib=/usr/lib/x86_64-linux-gnu/libfaiss_c.so
nm -D "$lib" | grep ' T faiss_index_factory' >/dev/null
write_env faiss "FB_TEST_FAISS_LIB=$lib"
log "faiss C library at $lib"
