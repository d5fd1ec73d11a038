"""The request context lives in contextvars: it follows asyncio tasks and
copied contexts, and never leaks between concurrent requests."""

from __future__ import annotations

import asyncio
import contextvars
import pathlib
import threading

import pytest

import fasten


def test_request_context_sets_id_actor_tenant(db: pathlib.Path) -> None:
    assert fasten.current_request_id() is None
    with fasten.request_context(id="req-ctx-1", actor="alice", tenant="acme"):
        assert fasten.current_request_id() == "req-ctx-1"
        row = fasten.emit_durable("USER_CREATED", target="u-1")
        explicit = fasten.emit_durable("USER_CREATED", actor="bob", actor_kind="service", tenant="other")
    assert fasten.current_request_id() is None
    assert (row["request_id"], row["actor"], row["actor_kind"], row["tenant_id"]) == ("req-ctx-1", "alice", "user", "acme")
    assert (explicit["actor"], explicit["actor_kind"], explicit["tenant_id"]) == ("bob", "service", "other")


def test_hostile_context_id_is_refused() -> None:
    with pytest.raises(fasten.FastenError) as info:
        with fasten.request_context(id="evil\r\nX-Injected: 1"):
            pass
    assert info.value.field == "request_id"


def test_minted_when_no_id_given() -> None:
    with fasten.request_context() as req:
        assert req.request_id is not None and len(req.request_id) == 32


def test_asyncio_tasks_keep_their_own_ids(db: pathlib.Path) -> None:
    async def handle(n: int) -> tuple[str, str]:
        with fasten.request_context(id=f"task-{n}"):
            await asyncio.sleep(0.01 * (5 - n))
            row = await asyncio.get_running_loop().run_in_executor(
                None, contextvars.copy_context().run, lambda: fasten.emit_durable("USER_CREATED")
            )
            return f"task-{n}", row["request_id"]

    async def main() -> list[tuple[str, str]]:
        return await asyncio.gather(*(handle(n) for n in range(5)))

    for want, got in asyncio.run(main()):
        assert want == got


def test_threads_with_copied_context(db: pathlib.Path) -> None:
    seen: list[str] = []
    with fasten.request_context(id="req-thread"):
        ctx = contextvars.copy_context()
    t = threading.Thread(target=ctx.run, args=(lambda: seen.append(fasten.emit_durable("USER_CREATED")["request_id"]),))
    t.start()
    t.join()
    plain = threading.Thread(target=lambda: seen.append(str(fasten.current_request_id())))
    plain.start()
    plain.join()
    assert seen == ["req-thread", "None"]


def test_set_actor_inside_a_request(db: pathlib.Path) -> None:
    with fasten.request_context(id="req-actor"):
        fasten.set_actor("svc-billing", "service")
        fasten.set_tenant("t-9")
        row = fasten.emit_durable("USER_CREATED")
    assert (row["actor"], row["actor_kind"], row["tenant_id"]) == ("svc-billing", "service", "t-9")
