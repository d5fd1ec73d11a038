#!/usr/bin/env bash
# CI for the Node.js binding (bindings/node), from a fresh clone: builds the
# napi-rs addon from source (crates.io and npm only, no prebuilt binaries),
# installs the package the way a user does, runs `node --test` and the
# TypeScript check. Needs Rust (cargo) and Node >= 20 with npm.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "ci-node: Node >= 20 required, found $(node --version)" >&2
  exit 1
fi

# The tests talk to the real PostgreSQL and Mosquitto; under CI a missing
# server fails its test, so start them first (idempotent).
if [ -n "${CI:-}" ]; then
  scripts/services.sh
fi

echo "== npm install (builds the addon with @napi-rs/cli, generates native.d.ts)"
npm install --prefix bindings/node --no-audit --no-fund

# The Rust CLI for the cross-language tests (`fasten emit`, `fasten verify`).
# `napi build` passes --target, so build into the same target directory:
# the dependencies the two share are compiled once.
host=$(rustc -vV | sed -n 's/^host: //p')
echo "== cargo build -p fasten-cli (release, $host)"
cargo build --release --target "$host" -p fasten-cli
export FASTEN_CLI="${CARGO_TARGET_DIR:-$PWD/target}/$host/release/fasten"

echo "== npm install ./bindings/node into a fresh project, as a user does"
consumer=$(mktemp -d)
trap 'rm -rf "$consumer"' EXIT
repo=$(pwd)
(cd "$consumer" && npm init -y >/dev/null && npm install --no-audit --no-fund "$repo/bindings/node" \
  && node -e "const f = require('fasten'); if (typeof f.emit !== 'function' || !/^[0-9a-f]{32}\$/.test(f.mintRequestId())) process.exit(1); console.log('fasten loads from a fresh project')")

echo "== npm test (node --test)"
npm test --prefix bindings/node
