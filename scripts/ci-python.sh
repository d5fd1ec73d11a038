#!/usr/bin/env bash
# The Python binding's checks, from a fresh clone: a venv under target/, the
# test tools from PyPI, `pip install ./bindings/python` (maturin builds the
# extension against this workspace's target/), the Rust CLI the
# cross-language tests call, then `pytest bindings/python`.
#
# The PostgreSQL and Mosquitto tests need scripts/services.sh to have run;
# with CI set, a missing server fails them. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv=${FASTEN_TEST_PY_VENV:-$root/target/py-venv}
python=${PYTHON:-python3}

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "pytest>=7" "fastapi>=0.100" "uvicorn>=0.20" "paho-mqtt>=2" "structlog>=23" "mypy>=1.5"
# Built for the host triple named explicitly, as `napi build` (Node) does:
# cargo keeps such builds in target/<triple>/release, apart from plain
# `--release` ones, so naming it lets the extension, the addon and the CLI
# share their compiled dependencies instead of building them twice.
host=$(rustc -vV | sed -n 's/^host: //p')
MATURIN_PEP517_ARGS="--target $host" "$venv/bin/python" -m pip install -q ./bindings/python

cargo build --release -q --target "$host" -p fasten-cli
export FASTEN_TEST_CLI="${CARGO_TARGET_DIR:-$root/target}/$host/release/fasten"

"$venv/bin/python" -m pytest bindings/python -q -p no:cacheprovider "$@"
