"""After os.fork() the child never uses the parent's writer thread: a kept
handle raises kind "forked"; module functions re-initialise on PostgreSQL
(test_pg.py) and raise a clear error on SQLite, whose connections must not
cross a fork (rows written by the child would be lost)."""

from __future__ import annotations

import os
import pathlib

import pytest

import fasten
from conftest import settings


def in_child(body: "object") -> str:
    """Runs ``body()`` in a forked child; returns what it reported."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.write(w, str(body()).encode())  # type: ignore[operator]
            code = 0
        except BaseException as e:  # report, never run the parent's tests
            os.write(w, f"raised {e!r}".encode())
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    message = os.read(r, 4000).decode()
    os.close(r)
    assert status == 0, message
    return message


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_sqlite_child_gets_a_clear_error_and_parent_goes_on(db: pathlib.Path) -> None:
    stale = fasten.pipeline()
    fasten.emit_durable("USER_CREATED", target="parent-before")

    def child() -> str:
        kinds = []
        for attempt in (
            lambda: stale.emit("USER_CREATED"),
            lambda: fasten.emit("USER_CREATED"),
            lambda: fasten.init(env=False, **settings(db)),
        ):
            try:
                attempt()
                kinds.append("worked")
            except fasten.FastenError as e:
                kinds.append(e.kind)
                assert "fork" in str(e)
        return ",".join(kinds)

    assert in_child(child) == "forked,forked,forked"
    row = fasten.emit_durable("USER_CREATED", target="parent-after")
    assert row["monotonic_seq"] == 2
    report = fasten.verify(f"sqlite:///{db}")
    assert report["ok"] and report["nodes"][0]["rows"] == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_child_of_a_sqlite_parent_is_refused_even_after_shutdown(tmp_path: pathlib.Path) -> None:
    # A thread of the parent may still be inside SQLite (closing a
    # connection) when it forks; SQLite's global mutexes would then be held
    # forever in the child (a hang in sqlite3Malloc was seen here).
    fasten.init(env=False, **settings(tmp_path / "a.db"))
    fasten.shutdown()

    def child() -> str:
        try:
            fasten.init(env=False, **settings(tmp_path / "b.db"))
        except fasten.FastenError as e:
            return e.kind
        return "worked"

    assert in_child(child) == "forked"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_children_mint_their_own_ids() -> None:
    from fasten import _native

    _native.mint_request_id()  # the parent's generator is mid-stream
    ids = {in_child(_native.mint_request_id) for _ in range(3)}
    assert len(ids) == 3
