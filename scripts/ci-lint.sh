#!/usr/bin/env bash
# Enforcement (#19) from a fresh clone: `fasten lint` runs clean on the
# examples and bindings, and the code `fasten gen` writes compiles or
# type-checks in each language while a misspelt code fails: mypy, tsc,
# go vet/go build, g++ -fsyntax-only, and rustc through the compile_fail
# doctest of fasten::CodeSpec. Installs mypy (PyPI) and typescript (npm)
# when missing. Fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TERM_COLOR=never
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

echo "== cargo build -p fasten-cli"
cargo build -q -p fasten-cli
fasten="$CARGO_TARGET_DIR/debug/fasten"

echo "== fasten lint on the examples and bindings (fasten-lint.toml)"
"$fasten" lint crates/fasten/examples crates/fasten-it/examples bindings

echo "== the generated files the examples use are fresh"
fresh() {
  if ! "$fasten" gen --lang "$1" "$3" | diff -u "$2" -; then
    echo "ci-lint: $2 is stale: run fasten gen --lang $1 --out $2 $3" >&2
    exit 1
  fi
}
fresh rust crates/fasten/examples/codes/sales.rs crates/fasten/examples/codes/sales.codes.yaml
fresh python bindings/python/examples/shop_codes.py bindings/python/examples/codes/shop.codes.yaml

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
yaml="$root/crates/fasten/examples/codes/sales.codes.yaml"

# Runs a command that must fail, and shows that it did.
must_fail() {
  local what=$1
  shift
  if "$@" >"$tmp/fail.log" 2>&1; then
    echo "ci-lint: $what was accepted:" >&2
    cat "$tmp/fail.log" >&2
    exit 1
  fi
  echo "   rejected as it should be: $what ($(grep -m1 -iE 'error|undefined|not found|has no' "$tmp/fail.log" | cut -c1-120))"
}

echo "== Rust: the generated module compiles, a misspelt code does not (doctests of fasten::CodeSpec)"
cargo test -q -p fasten --doc typed::CodeSpec

echo "== Python: mypy"
venv=${FASTEN_TEST_PY_VENV:-$root/target/py-venv}
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m mypy --version >/dev/null 2>&1 || "$venv/bin/python" -m pip install -q "mypy>=1.5"
mkdir "$tmp/py"
"$fasten" gen --lang python --out "$tmp/py/codes.py" "$yaml"
cat >"$tmp/py/ok.py" <<'PY'
import codes
from codes import Code


def place() -> None:
    codes.emit(codes.ORDER_PLACED, target="order/1")
    code: Code = "CARD_UPDATED"
    assert codes.CODES[code]["pii_in_detail"]
    assert codes.CODES[codes.ORDER_PLACED]["retention_class"] == "long"
PY
printf 'import codes\n\ncodes.emit("ORDER_PLACD")\n' >"$tmp/py/bad_literal.py"
printf 'import codes\n\nprint(codes.ORDER_PLACD)\n' >"$tmp/py/bad_name.py"
mypy() { (cd "$tmp/py" && MYPYPATH="$root/bindings/python/python" "$venv/bin/python" -m mypy --strict --follow-imports=silent --no-incremental "$@"); }
mypy codes.py ok.py
must_fail "python codes.emit(\"ORDER_PLACD\")" mypy bad_literal.py
must_fail "python codes.ORDER_PLACD" mypy bad_name.py

echo "== TypeScript: tsc --noEmit --strict"
tools=${FASTEN_TEST_TS_TOOLS:-$CARGO_TARGET_DIR/ts-tools}
[ -x "$tools/node_modules/.bin/tsc" ] || npm install --prefix "$tools" --no-audit --no-fund --silent "typescript@^5.9"
mkdir "$tmp/ts"
"$fasten" gen --lang typescript --out "$tmp/ts/codes.ts" "$yaml"
cat >"$tmp/ts/ok.ts" <<'TS'
import * as codes from './codes';

const code: codes.Code = codes.ORDER_PLACED;
const event: { code: codes.Code; target: string } = { code: 'CARD_UPDATED', target: 'customer/7' };
const long: boolean = codes.CODES[code].retentionClass === 'long' && codes.CODES[event.code].piiInDetail;
export { long };
TS
printf "import * as codes from './codes';\nexport const c: codes.Code = 'ORDER_PLACD';\n" >"$tmp/ts/bad_literal.ts"
printf "import * as codes from './codes';\nexport const c = codes.ORDER_PLACD;\n" >"$tmp/ts/bad_name.ts"
tsc() { (cd "$tmp/ts" && "$tools/node_modules/.bin/tsc" --noEmit --strict --target es2020 --module commonjs "$@"); }
tsc codes.ts ok.ts
must_fail "typescript 'ORDER_PLACD' as a Code" tsc bad_literal.ts
must_fail "typescript codes.ORDER_PLACD" tsc bad_name.ts

echo "== Go: go vet, go build"
mkdir -p "$tmp/go/codes" "$tmp/go/bad"
"$fasten" gen --lang go --out "$tmp/go/codes/codes.go" "$yaml"
printf 'module example.invalid/app\n\ngo 1.21\n' >"$tmp/go/go.mod"
cat >"$tmp/go/main.go" <<'GO'
package main

import (
	"fmt"

	"example.invalid/app/codes"
)

type Event struct{ Code string }

func main() {
	e := Event{Code: codes.OrderPlaced}
	fmt.Println(e.Code, codes.Codes[e.Code].RetentionClass, len(codes.ExpectCodes) > 0)
}
GO
printf 'package bad\n\nimport "example.invalid/app/codes"\n\nvar C = codes.OrderPlacd\n' >"$tmp/go/bad/bad.go"
[ -z "$(gofmt -l "$tmp/go/codes")" ] || { gofmt -d "$tmp/go/codes" >&2; echo "ci-lint: the generated Go is not gofmt-clean" >&2; exit 1; }
(cd "$tmp/go" && go vet . ./codes && go build -o /dev/null .)
must_fail "go codes.OrderPlacd" bash -c "cd '$tmp/go' && go build ./bad"

echo "== C++: g++ -std=c++14 -fsyntax-only"
mkdir "$tmp/cpp"
"$fasten" gen --lang cpp --out "$tmp/cpp/codes.hpp" "$yaml"
cat >"$tmp/cpp/ok.cpp" <<'CPP'
#include "fasten.hpp"
#include "codes.hpp"

static_assert(codes::CARD_UPDATED.pii_in_detail, "metadata is data");
static_assert(sizeof(codes::ALL) / sizeof(codes::ALL[0]) == 3, "every code");

int main() {
  fasten::Event event(codes::ORDER_PLACED);
  std::string expect = codes::EXPECT_CODES;
  return expect.empty() ? 1 : 0;
}
CPP
printf '#include "fasten.hpp"\n#include "codes.hpp"\nint main() { fasten::Event e(codes::ORDER_PLACD); }\n' >"$tmp/cpp/bad.cpp"
cxx() { "${CXX:-g++}" -std=c++14 -Wall -Wextra -Werror -fsyntax-only -I "$root/bindings/cpp" -I "$root/crates/fasten-ffi/include" -I "$tmp/cpp" "$@"; }
cxx "$tmp/cpp/ok.cpp"
must_fail "c++ codes::ORDER_PLACD" cxx "$tmp/cpp/bad.cpp"

echo "ci-lint: ok"
