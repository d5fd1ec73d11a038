"""Agent calls as audit rows: the decorator and the context manager, sync
and async, recorded whatever happens, and summed by ``fasten report``."""

from __future__ import annotations

import asyncio
import json
import pathlib
import sqlite3
import subprocess

import pytest

import fasten
from fasten import agent


def rows(db: pathlib.Path) -> dict[str, dict]:
    fasten.flush()
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    out = {}
    for r in conn.execute("SELECT * FROM audit_log WHERE domain = 'agent'"):
        row = dict(r)
        row["detail"] = json.loads(row["detail"])
        out[row["detail"].get("tool") or row["detail"].get("model") or row["target"]] = row
    return out


def test_calls_are_recorded_whatever_happens(db: pathlib.Path, cli: str) -> None:
    @agent.tool_call("search_web", actor="agent-b", target="web")
    def search(q: str) -> list[str]:
        agent.usage().cost_usd(0.25).tokens(100, 20)
        return [q]

    @agent.tool_call("fetch_page", actor="agent-b")
    async def fetch(url: str) -> str:
        agent.usage().cost_usd(0.5)
        raise TimeoutError("timed out after 2000 ms")

    with fasten.request_context("req-py-agents"):
        assert search("fasten") == ["fasten"]
        with pytest.raises(TimeoutError):
            asyncio.run(fetch("https://example.org"))
        with pytest.raises(PermissionError):
            with agent.tool_call("delete_repo", actor="agent-c") as usage:
                usage.deny("policy: no deletes")
                raise PermissionError("refused")

        async def plan() -> None:
            async with agent.model_call("small-model", actor="agent-b") as usage:
                usage.cost_usd(1).tokens(900, 150)

        asyncio.run(plan())
        with agent.handoff("agent-b", actor="agent-a"):
            pass

    got = rows(db)
    assert set(got) == {"search_web", "fetch_page", "delete_repo", "small-model", "agent-b"}
    ok = got["search_web"]
    assert (ok["code"], ok["outcome"], ok["actor"], ok["actor_kind"], ok["method"]) == (
        "TOOL_CALLED",
        "success",
        "agent-b",
        "agent",
        "agent_tool",
    )
    assert ok["request_id"] == "req-py-agents"
    assert ok["detail"]["cost_usd"] == 0.25
    assert ok["detail"]["input_tokens"] == 100
    assert isinstance(ok["detail"]["duration_ms"], int)
    assert got["fetch_page"]["outcome"] == "failure"
    assert got["fetch_page"]["detail"]["error"] == "timed out after 2000 ms"
    assert got["delete_repo"]["outcome"] == "denied"
    assert got["delete_repo"]["detail"]["error"] == "policy: no deletes"
    assert got["small-model"]["code"] == "MODEL_CALLED"
    handoff = got["agent-b"]
    assert (handoff["code"], handoff["actor"], handoff["target"]) == ("AGENT_HANDOFF", "agent-a", "agent-b")

    out = subprocess.run(
        [cli, "report", "--code", "TOOL_CALLED", "--sum", "detail.cost_usd", "--by", "actor", "--json"],
        env={"FASTEN_AUDIT_DSN": f"sqlite:///{db}"},
        capture_output=True,
        text=True,
        check=True,
    )
    summary = json.loads(out.stdout)
    assert [(g["key"], g["rows"], g["sum"]) for g in summary["groups"]] == [
        ("agent-b", 2, 0.75),
        ("agent-c", 1, 0.0),
    ]


def test_bad_usage_is_an_error_naming_the_field(db: pathlib.Path) -> None:
    with pytest.raises(fasten.FastenError) as e:
        with agent.tool_call("t", actor="agent-b") as usage:
            usage.cost_usd(float("nan"))
    assert e.value.field == "cost_usd"
    with pytest.raises(fasten.FastenError) as e:
        with agent.Call("robot", "t"):
            pass
    assert e.value.field == "kind"


def test_usage_outside_a_call_is_harmless() -> None:
    agent.usage().cost_usd(1)
