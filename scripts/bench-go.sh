#!/usr/bin/env bash
# fasten.Emit from Go against slog's JSON handler writing to a file, same
# run, on the optimised engine: ns/op of each, then per-call p50/p99 of
# both interleaved, with the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p fasten-ffi --lib
lib="$CARGO_TARGET_DIR/release/libfasten_ffi.a"
sum=$(sha256sum "$lib" | cut -c1-16)
export CGO_LDFLAGS="-L$CARGO_TARGET_DIR/release -Wl,--defsym=fasten_ffi_build_$sum=0 ${CGO_LDFLAGS:-}"
cd bindings/go
go test -tags fasten_release -count=1 -run '^$' -bench 'Emit$|SlogJSONFile' ./...
go test -tags fasten_release -count=1 -run '^$' -bench 'EmitVsSlog' -benchtime 1x ./...
