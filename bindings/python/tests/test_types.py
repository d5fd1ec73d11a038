"""The package's types: mypy --strict passes on the examples."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import BINDING


def test_mypy_strict_on_examples() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(BINDING / "examples")],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
