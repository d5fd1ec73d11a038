"""@fasten.scheduler.job: an id per run and start/end sys rows."""

from __future__ import annotations

import asyncio
import json
import pathlib

import pytest

import fasten
import fasten.scheduler


def test_sync_and_async_runs(db: pathlib.Path) -> None:
    ids: list[str] = []

    @fasten.scheduler.job("rotate-keys")
    def rotate() -> str:
        ids.append(str(fasten.current_request_id()))
        return fasten.emit_durable("USER_UPDATED", target="keys")["method"]

    @fasten.scheduler.job("nightly")
    async def nightly() -> None:
        ids.append(str(fasten.current_request_id()))
        raise RuntimeError("disk full")

    assert rotate() == "scheduler"
    with pytest.raises(RuntimeError):
        asyncio.run(nightly())
    assert all(i.startswith("scheduler-") for i in ids) and ids[0] != ids[1]
    p = fasten.pipeline()
    p.flush(5.0)
    ok = json.loads(p.sys_rows(ids[0], 10))
    assert sorted(r["message"] for r in ok) == ["job finished", "job started"]
    finished = next(r for r in ok if r["message"] == "job finished")
    assert finished["fields"]["job"] == "rotate-keys" and finished["fields"]["outcome"] == "success"
    failed = next(r for r in json.loads(p.sys_rows(ids[1], 10)) if r["message"] == "job failed")
    assert failed["level"] == "ERROR" and "disk full" in failed["fields"]["error"]
