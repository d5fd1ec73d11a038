"""The row contract's functions, computed by the engine: canonical JSON
(RFC 8785), the detail commitment and the form-3 row hash."""

from __future__ import annotations

import json
from typing import Any, Mapping

from . import _native

__all__ = ["canonical_json", "detail_commitment", "row_hash"]


def canonical_json(value: Any) -> str:
    """RFC 8785 canonical JSON of a JSON-compatible value."""
    return _native.canonical_json(json.dumps(value, allow_nan=False))


def detail_commitment(salt: str, detail: Mapping[str, Any]) -> str:
    """SHA-256 of the salt followed by the detail's canonical JSON."""
    return _native.detail_commitment(salt, json.dumps(detail, allow_nan=False))


def row_hash(row: Mapping[str, Any]) -> str:
    """The form-3 hash of a row (a dict of the row's columns)."""
    return _native.row_hash(json.dumps(row, allow_nan=False))
