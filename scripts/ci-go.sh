#!/usr/bin/env bash
# The Go SDK (bindings/go), from a fresh clone: builds the engine once with
# cargo into the repo's shared target/ (CARGO_TARGET_DIR if set), with the
# Rust CLI and the Rust emitter the cross-language test calls, then runs
# go vet and go test -race (golden vectors, 32 goroutines, bad input, the
# net/http middleware and the mounted reader, PostgreSQL, Mosquitto, rows from
# Rust, C++ and Go verified as one chain by `fasten verify`), and each benchmark once as
# a smoke test. Fails on any failure.
#
# Needs the PostgreSQL of scripts/services.sh; under CI a missing server or
# binary fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

echo "== cargo build -p fasten-ffi -p fasten-cli"
cargo build -p fasten-ffi --lib --examples
cargo build -p fasten-cli
lib="$CARGO_TARGET_DIR/debug/libfasten_ffi.a"
export FASTEN_CLI="$CARGO_TARGET_DIR/debug/fasten"
export FASTEN_EMIT_ONE="$CARGO_TARGET_DIR/debug/examples/emit_one"
# Go's build cache does not hash a static library named in LDFLAGS; a symbol
# carrying the library's hash makes a rebuilt engine relink the tests.
sum=$(sha256sum "$lib" | cut -c1-16)
export CGO_LDFLAGS="-L$CARGO_TARGET_DIR/debug -Wl,--defsym=fasten_ffi_build_$sum=0 ${CGO_LDFLAGS:-}"

echo "== the C++ emitter, for the cross-language test"
if command -v cmake > /dev/null && command -v c++ > /dev/null; then
  generator=()
  if command -v ninja > /dev/null; then generator=(-G Ninja); fi
  cpp_build="$PWD/build/ci-go-cpp"
  cmake -S bindings/cpp -B "$cpp_build" "${generator[@]}" -DFASTEN_BUILD_TESTS=OFF > /dev/null
  cmake --build "$cpp_build" --target emit_one_cpp
  export FASTEN_CPP_EMIT_ONE="$cpp_build/emit_one_cpp"
elif [ -n "${CI:-}" ]; then
  echo "ci-go: CI is set and cmake or c++ is missing (the C++ row of the cross-language test)" >&2
  exit 1
else
  echo "SKIPPED: no cmake or c++: the cross-language test runs with Rust and Go rows only"
fi

cd bindings/go
echo "== go vet"
go vet ./...
echo "== go test -race"
go test -race -count=1 ./...
echo "== benchmarks, once each (smoke)"
go test -count=1 -run '^$' -bench . -benchtime 1x ./... > /dev/null
echo "ci-go: ok"
