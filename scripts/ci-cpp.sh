#!/usr/bin/env bash
# The C ABI (crates/fasten-ffi) and the C++14 SDK (bindings/cpp), from a
# fresh clone: checks that include/fasten.h is what cbindgen makes of the
# crate, builds the engine once with cargo into the repo's shared target/
# (CARGO_TARGET_DIR if set), builds the CMake project (-Wall -Wextra
# -Werror) and runs ctest: the GoogleTest suite (golden vectors, 8 threads
# verified by the Rust CLI on SQLite and PostgreSQL, bad input, scopes,
# streams and the reader, a Rust row and a C++ row in one chain) and the C
# tests, plain and under valgrind. Fails on any failure.
#
# Needs the PostgreSQL of scripts/services.sh; under CI a missing server or a
# missing valgrind fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

echo "== fasten.h is current"
cargo test -p fasten-ffi --test header

echo "== cmake build (engine through cargo, examples, tests)"
build="${FASTEN_CPP_BUILD:-$PWD/build/ci-cpp}"
generator=()
if command -v ninja > /dev/null; then generator=(-G Ninja); fi
cmake -S bindings/cpp -B "$build" "${generator[@]}"
cmake --build "$build"

echo "== ctest"
ctest --test-dir "$build" --output-on-failure
echo "ci-cpp: ok"
