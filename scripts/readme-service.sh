#!/usr/bin/env bash
# Runs the README's service (crates/fasten/examples/service.rs) as a user
# would, on SQLite and on PostgreSQL: start it, send one request, stop it with
# Ctrl-C (SIGINT), then check with the CLI that the audit row is there and the
# chain verifies. Needs the PostgreSQL of scripts/services.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p fasten --features http,postgres --example service
cargo build --quiet -p fasten-cli
bin=target/debug/examples/service
cli=target/debug/fasten
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
pg=${FASTEN_TEST_PG:-postgres://postgres@127.0.0.1:5432/test}
schema="fasten_readme_$$"

run_on() { # DSN
  local dsn=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  FASTEN_SERVICE_ID=shop FASTEN_NODE_ID=node-1 FASTEN_STDOUT=none \
    FASTEN_CODES=crates/fasten/examples/codes/shop.codes.yaml FASTEN_AUDIT_DSN="$dsn" \
    LISTEN="127.0.0.1:$port" "$bin" >"$work/out" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    timeout 1 bash -c "</dev/tcp/127.0.0.1/$port" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/out"; echo "readme-service: the service exited" >&2; exit 1; }
    sleep 0.1
  done
  id=$(curl -sf -X POST -D - "http://127.0.0.1:$port/customers/42/plan" -o /dev/null \
    | tr -d '\r' | sed -n 's/^x-request-id: //Ip')
  [ -n "$id" ] || { echo "readme-service: no x-request-id" >&2; exit 1; }
  kill -INT "$pid"
  wait "$pid" || { cat "$work/out"; echo "readme-service: the service did not stop cleanly" >&2; exit 1; }
  "$cli" verify --dsn "$dsn"
  "$cli" correlate --dsn "$dsn" "$id" | tee "$work/timeline"
  grep -q "PLAN_CHANGED alice target=customer/42" "$work/timeline" \
    || { echo "readme-service: the audit row of $id is missing" >&2; exit 1; }
}

run_on "sqlite:///$work/shop.db"
export PGOPTIONS="-c client_min_messages=warning"
psql "$pg" -qc "create schema $schema" >/dev/null
trap 'kill "${pid:-0}" 2>/dev/null || true; psql "$pg" -qc "drop schema if exists $schema cascade" >/dev/null; rm -rf "$work"' EXIT
run_on "$pg?table=$schema.audit_log"
echo "readme-service: ok on SQLite and PostgreSQL"
