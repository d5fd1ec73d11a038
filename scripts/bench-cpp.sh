#!/usr/bin/env bash
# Emit through the C ABI from C++ against Rust's own emit, same run:
# builds the engine and the Rust baseline optimised, then runs bench_emit,
# which alternates Rust and C++ rounds and prints p50/p99 and the ratios.
# `scripts/bench-cpp.sh [emits per round]` (default 50000).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
build="$PWD/build/bench-cpp"
generator=()
if command -v ninja > /dev/null; then generator=(-G Ninja); fi
cmake -S bindings/cpp -B "$build" "${generator[@]}" -DFASTEN_CARGO_PROFILE=release -DCMAKE_BUILD_TYPE=Release -DFASTEN_BUILD_TESTS=OFF
cmake --build "$build" --target bench_emit
"$build/bench_emit" "${1:-50000}"
