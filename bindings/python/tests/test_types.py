"""The package's types: mypy --strict passes on the examples (against the
installed package, its stubs and py.typed) and on the package's source."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import BINDING


@pytest.mark.parametrize("target", ["examples", "python/fasten"])
def test_mypy_strict(target: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", target],
        cwd=BINDING, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
