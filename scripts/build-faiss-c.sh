#!/usr/bin/env bash
# Build Faiss's C API as /usr/lib/x86_64-linux-gnu/libfaiss_c.so so that
# factorybench finds it at run time (scripts/install-faiss.sh runs this for test-env.sh). Debian's libfaiss-dev 1.7.3 ships the C API headers and
# the C++ library (libfaiss.a) but not libfaiss_c; the C API sources come from the faiss-sys
# crate on crates.io (its vendored Faiss), compiled against Debian's headers and libfaiss.a.
# About 1 minute (apt + 4 C++ files). Then:
#   cargo test --test it data_vector
. "$(dirname "$0")/lib.sh"
apt_install libfaiss-dev g++ libopenblas-dev
LIB=/usr/lib/x86_64-linux-gnu/libfaiss_c.so  # a directory the C compiler driver passes to the linker
if [ -e "$LIB" ] && nm -D "$LIB" | grep ' T faiss_index_factory' >/dev/null; then log "$LIB present"; exit 0; fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/fetch/src"
cat > "$WORK/fetch/Cargo.toml" <<'TOML'
[package]
name = "fetch-faiss-c-api"
version = "0.0.0"
edition = "2021"
[dependencies]
faiss-sys = "=0.6.2"
TOML
: > "$WORK/fetch/src/lib.rs"
(cd "$WORK/fetch" && cargo fetch -q)
CRATE=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/faiss-sys-0.6.2.crate | head -n1)
tar -xzf "$CRATE" -C "$WORK"
cd "$WORK/faiss-sys-0.6.2/faiss/c_api"
# 1.7.3 moved DistanceComputer and IDSelector into their own headers.
g++ -O2 -fPIC -shared -fopenmp -I. -include faiss/impl/DistanceComputer.h -include faiss/impl/IDSelector.h \
  -o "$WORK/libfaiss_c.so" Index_c.cpp index_factory_c.cpp error_impl.cpp impl/AuxIndexStructures_c.cpp \
  -Wl,--whole-archive -l:libfaiss.a -Wl,--no-whole-archive -lblas -llapack
install -m 0755 "$WORK/libfaiss_c.so" "$LIB"
ldconfig
log "installed $LIB"
