"""The golden vectors of spec/vectors/form3.json, reproduced from Python
through the engine's contract functions."""

from __future__ import annotations

import json

from conftest import REPO

from fasten import contract

VECTORS = json.loads((REPO / "spec" / "vectors" / "form3.json").read_text())


def check_row(row: dict) -> None:
    assert contract.row_hash(row) == row["hash"]
    if row.get("detail") is not None and row.get("detail_salt") is not None:
        assert contract.detail_commitment(row["detail_salt"], row["detail"]) == row["detail_commitment"]


def test_single_rows_hash_commit_and_canonicalise() -> None:
    cases = VECTORS["single_rows"]
    assert len(cases) >= 3
    for name, case in cases.items():
        check_row(case["row"])
        if "detail_jcs" in case:
            assert contract.canonical_json(case["row"]["detail"]) == case["detail_jcs"], name


def test_chain_links_and_hashes() -> None:
    chain = VECTORS["chain"]
    prev = "genesis"
    for row in chain:
        check_row(row)
        if row["source_node_id"] == chain[0]["source_node_id"]:
            assert row["prev_hash"] == prev
            prev = row["hash"]


def test_redacted_row_keeps_its_hash() -> None:
    row = VECTORS["chain_row_2_redacted"]
    assert contract.row_hash(row) == row["hash"]


def test_a_flipped_byte_changes_the_hash() -> None:
    row = dict(VECTORS["chain"][0])
    row["actor"] = row["actor"] + "x"
    assert contract.row_hash(row) != VECTORS["chain"][0]["hash"]


def test_numbers_print_as_ecmascript() -> None:
    assert contract.canonical_json({"b": 1e21, "a": 75.0, "c": -0.0, "d": 1e-7}) == '{"a":75,"b":1e+21,"c":0,"d":1e-7}'
