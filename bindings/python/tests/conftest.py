"""Shared fixtures. Servers (PostgreSQL, Mosquitto) are real: without them a
test skips, and under the ``CI`` variable it fails."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import uuid
from typing import Iterator

import pytest

import fasten

HERE = pathlib.Path(__file__).resolve().parent
BINDING = HERE.parent
REPO = BINDING.parent.parent
CODES = HERE / "codes" / "pytest.codes.yaml"
PG_URL = os.environ.get("FASTEN_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")


def need_server(host: str, port: int, what: str) -> None:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as e:
        message = f"{what} is not reachable on {host}:{port} ({e}); start it with scripts/services.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip("SKIPPED: " + message)


@pytest.fixture(scope="session", autouse=True)
def test_codes() -> None:
    fasten.codes.load(CODES)


def settings(db: pathlib.Path, **extra: str) -> dict[str, str]:
    base = {
        "service_id": "py-test",
        "node_id": "py-node-1",
        "audit_dsn": f"sqlite:///{db}",
        "stdout": "none",
    }
    base.update(extra)
    return base


@pytest.fixture
def db(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """An initialised pipeline on a fresh SQLite file; its path."""
    path = tmp_path / "audit.db"
    fasten.init(env=False, **settings(path))
    yield path
    fasten.shutdown()


@pytest.fixture
def pg_table() -> Iterator[str]:
    """A DSN on PostgreSQL in a schema of this test's own, dropped after."""
    need_server("127.0.0.1", 5432, "PostgreSQL")
    schema = "pyt_" + uuid.uuid4().hex[:12]
    yield f"{PG_URL}?table={schema}.audit_log"
    subprocess.run(
        ["psql", PG_URL, "-q", "-c", f"DROP SCHEMA IF EXISTS {schema} CASCADE"],
        check=False,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def cli() -> str:
    """The Rust ``fasten`` CLI, built from this checkout if needed."""
    exe = os.environ.get("FASTEN_TEST_CLI")
    if exe:
        return exe
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "fasten-cli"],
        cwd=REPO,
        check=True,
    )
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "release" / "fasten")
