#!/usr/bin/env bash
# Fuzzes the HTTP reader with schemathesis (from PyPI) driven by the OpenAPI
# document the reader serves: every endpoint, generated parameters, with a
# valid token. Fails on any 5xx or on a response that breaks the document.
#
#   scripts/fuzz-reader.sh            # 100 examples per operation
#   FUZZ_EXAMPLES=1000 scripts/fuzz-reader.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet 'schemathesis>=4,<5'
cargo build --quiet -p fasten-cli
bin=${CARGO_TARGET_DIR:-target}/debug/fasten

export FASTEN_SERVICE_ID=fuzz FASTEN_NODE_ID=node-1
export FASTEN_AUDIT_DSN="sqlite:///$work/fuzz.db"
export FASTEN_CODES=crates/fasten/examples/codes/sales.codes.yaml
for i in $(seq 1 30); do
  "$bin" emit --code ORDER_PLACED --target "order/$i" --request-id "req-$((i % 3))" \
    --detail "{\"qty\":$i}" >/dev/null
done

token=fuzz-token-0123456789abcdef
FASTEN_READER_TOKENS=$token "$bin" serve --listen 127.0.0.1:0 >"$work/serve.out" &
pid=$!
for _ in $(seq 1 50); do grep -q serving "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^fasten: serving //p' "$work/serve.out")
[ -n "$base" ] || { echo "fuzz: fasten serve did not start" >&2; exit 1; }

"$work/venv/bin/schemathesis" run "$base/openapi.json" \
  --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${FUZZ_EXAMPLES:-100}"
