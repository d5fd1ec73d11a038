"""Rows from Python and from Rust (the `fasten` CLI) in one store verify as
one chain, and are alike byte for byte in all but ids, times and salts."""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import subprocess

import fasten
from conftest import CODES

DETAIL = {"plan": "pro", "price": 12.5, "name": "Zoë\n\"q\"", "seats": [1, 2, 3], "big": 1e21, "api_key": "sk-abc", "nested": {"b": 1, "a": None}}
# Columns that differ between any two rows: ids, times, salts and what is
# derived from them (commitment, hash, chain links).
VARYING = {"id", "origin_id", "timestamp", "detail_salt", "detail_commitment", "hash", "prev_hash", "monotonic_seq"}


def test_python_and_rust_rows_are_alike_and_chain_together(tmp_path: pathlib.Path, cli: str) -> None:
    db = tmp_path / "mixed.db"
    dsn = f"sqlite:///{db}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FASTEN_")},
        "FASTEN_SERVICE_ID": "mixed",
        "FASTEN_NODE_ID": "node-x",
        "FASTEN_AUDIT_DSN": dsn,
        "FASTEN_STDOUT": "none",
        "FASTEN_CODES": str(CODES),
    }
    fasten.init(env=False, service_id="mixed", node_id="node-x", audit_dsn=dsn, stdout="none")
    try:
        py_rows = []
        rust_rows = []
        for i in range(3):
            py_rows.append(
                fasten.emit_durable(
                    "USER_UPDATED", target="cust-42", actor="alice", actor_kind="user", method="cli",
                    outcome="failure", request_id=f"req-x-{i}", detail=DETAIL,
                )
            )
            out = subprocess.run(
                [cli, "emit", "--code", "USER_UPDATED", "--target", "cust-42", "--actor", "alice",
                 "--actor-kind", "user", "--outcome", "failure", "--request-id", f"req-x-{i}",
                 "--detail", json.dumps(DETAIL)],
                env=env, capture_output=True, text=True, check=True,
            )
            rust_rows.append(json.loads(out.stdout))
    finally:
        fasten.shutdown()
    seqs = sorted(r["monotonic_seq"] for r in py_rows + rust_rows)
    assert seqs == list(range(1, 7))
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        stored = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM audit_log")}
    for py, rust in zip(py_rows, rust_rows):
        a, b = stored[py["id"]], stored[rust["id"]]
        assert {k: v for k, v in a.items() if k not in VARYING} == {k: v for k, v in b.items() if k not in VARYING}
        assert a["detail"] == b["detail"] and "sk-abc" not in a["detail"]
        # The JSON the two languages return for the row, too.
        assert {k: v for k, v in py.items() if k not in VARYING} == {k: v for k, v in rust.items() if k not in VARYING}
    verified = subprocess.run([cli, "verify", "--dsn", dsn], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert fasten.verify(dsn)["nodes"][0]["rows"] == 6
