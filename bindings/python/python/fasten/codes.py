"""Code registry: ``*.codes.yaml`` files."""

from __future__ import annotations

import os
from typing import Union

from . import _native


def load(path: Union[str, "os.PathLike[str]"]) -> int:
    """Loads a ``*.codes.yaml`` file; returns how many codes it declared.
    Errors name the file, line and code."""
    return _native.load_codes_file(os.fspath(path))


def load_str(origin: str, yaml: str) -> int:
    """Loads codes from YAML text; ``origin`` names it in errors."""
    return _native.load_codes_str(origin, yaml)
