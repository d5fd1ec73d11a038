"""Audit for AI agents: every tool call, model call and handoff as a typed
audit row (``TOOL_CALLED``, ``MODEL_CALLED``, ``AGENT_HANDOFF``, domain
``agent``), with its duration, outcome, error and the cost and tokens it
reported, whatever happens inside.

As a decorator (sync or async functions)::

    @fasten.agent.tool_call("search_web", actor="agent-b")
    async def search(q: str) -> list[str]:
        fasten.agent.usage().cost_usd(0.002).tokens(120, 40)
        return await web.search(q)

or a context manager (``with`` or ``async with``)::

    with fasten.agent.model_call("small-model", actor="agent-b") as usage:
        reply = client.complete(prompt)
        usage.cost_usd(reply.cost).tokens(reply.input_tokens, reply.output_tokens)

An exception marks the row ``failure`` with its text as ``error`` (redacted
like any detail) and goes on; ``usage.deny(reason)`` marks it ``denied``.
The request id, actor and tenant come from :func:`fasten.request_context`
unless given. The codes, detail fields and outcome rules are the engine's
(``fasten::agent``): this module only times the call and catches what it
raises.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import math
import time
import warnings
from contextvars import ContextVar, Token
from typing import Any, Callable, Literal, Optional, TypeVar

__all__ = ["Usage", "handoff", "model_call", "tool_call", "usage"]

F = TypeVar("F", bound=Callable[..., Any])


class Usage:
    """What a call reports about itself: cost, tokens, the model it used,
    or that it was denied. Setters return the usage, so they chain."""

    __slots__ = ("_cost", "_bad_cost", "_input", "_output", "_model", "_denied", "_reason")

    def __init__(self) -> None:
        self._cost: Optional[float] = None
        self._bad_cost = False
        self._input: Optional[int] = None
        self._output: Optional[int] = None
        self._model: Optional[str] = None
        self._denied = False
        self._reason: Optional[str] = None

    def cost_usd(self, usd: float) -> "Usage":
        """Adds to the call's cost in US dollars (``detail.cost_usd``)."""
        if isinstance(usd, bool) or not isinstance(usd, (int, float)) or not math.isfinite(usd) or usd < 0:
            self._bad_cost = True
        else:
            self._cost = (self._cost or 0.0) + float(usd)
        return self

    def tokens(self, input: int = 0, output: int = 0) -> "Usage":
        """Adds input and output tokens (``detail.input_tokens``, ``detail.output_tokens``)."""
        self._input = (self._input or 0) + input
        self._output = (self._output or 0) + output
        return self

    def model(self, name: str) -> "Usage":
        """The model the call used (``detail.model``)."""
        self._model = name
        return self

    def deny(self, reason: Optional[str] = None) -> "Usage":
        """Marks the call denied by policy: its outcome is ``denied`` however
        it ends, and ``reason`` (if any) is its ``error``."""
        self._denied = True
        self._reason = reason
        return self

    def _json(self) -> Optional[str]:
        d: dict[str, Any] = {}
        if self._bad_cost:
            # JSON has no NaN: send what the engine refuses, naming the field.
            d["cost_usd"] = "not a finite number of dollars, 0 or more"
        elif self._cost is not None:
            d["cost_usd"] = self._cost
        if self._input is not None:
            d["input_tokens"] = self._input
        if self._output is not None:
            d["output_tokens"] = self._output
        if self._model is not None:
            d["model"] = self._model
        if self._denied:
            d["denied"] = True
        return json.dumps(d) if d else None


_USAGE: ContextVar[Optional[Usage]] = ContextVar("fasten_agent_usage", default=None)


def usage() -> Usage:
    """The usage of the innermost agent call running in this context (a
    throwaway one outside any call, so reporting never fails)."""
    u = _USAGE.get()
    return u if u is not None else Usage()


class Call:
    """One agent call to record; a context manager (sync and async) and a
    decorator. Made by :func:`tool_call`, :func:`model_call` or
    :func:`handoff`."""

    def __init__(
        self,
        kind: str,
        name: str,
        *,
        actor: Optional[str] = None,
        actor_kind: Optional[str] = None,
        target: Optional[str] = None,
        tenant: Optional[str] = None,
    ) -> None:
        self._kind = kind
        self._name = name
        self._anchors = {"actor": actor, "actor_kind": actor_kind, "target": target, "tenant": tenant}
        self._started: Optional[float] = None
        self._usage: Optional[Usage] = None
        self._token: Optional[Token[Optional[Usage]]] = None

    def _fresh(self) -> "Call":
        return Call(self._kind, self._name, **self._anchors)

    # === context manager ===

    def __enter__(self) -> Usage:
        self._usage = Usage()
        self._token = _USAGE.set(self._usage)
        self._started = time.perf_counter()
        return self._usage

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> Literal[False]:
        elapsed = time.perf_counter() - (self._started or time.perf_counter())
        if self._token is not None:
            _USAGE.reset(self._token)
            self._token = None
        error: Optional[str] = None
        if exc is not None:
            if isinstance(exc, asyncio.CancelledError):
                error = "cancelled"
            else:
                error = str(exc) or type(exc).__name__
        u = self._usage or Usage()
        if u._denied and u._reason:
            error = u._reason
        try:
            self._record(elapsed, error, u)
        except Exception as record_error:
            if exc is None:
                raise
            warnings.warn(f"fasten: the failed call's audit row could not be written: {record_error}", stacklevel=2)
        return False

    async def __aenter__(self) -> Usage:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)

    # === decorator ===

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with self._fresh():
                    return await fn(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return fn(*args, **kwargs)

        return run  # type: ignore[return-value]

    def _record(self, elapsed: float, error: Optional[str], u: Usage) -> str:
        from . import pipeline
        from ._context import CURRENT as _CURRENT

        a = dict(self._anchors)
        request_id = None
        req = _CURRENT.get()
        if req is not None:
            request_id = req.request_id
            if a["actor"] is None and req.actor is not None:
                a["actor"] = req.actor
                a["actor_kind"] = a["actor_kind"] or req.actor_kind
            if a["tenant"] is None:
                a["tenant"] = req.tenant
        return pipeline().agent_call(
            self._kind,
            self._name,
            max(0, int(elapsed * 1000)),
            error=error,
            usage_json=u._json(),
            request_id=request_id,
            **a,
        )


def tool_call(
    tool: str,
    *,
    actor: Optional[str] = None,
    actor_kind: Optional[str] = None,
    target: Optional[str] = None,
    tenant: Optional[str] = None,
) -> Call:
    """Records a call to ``tool`` as a ``TOOL_CALLED`` row. ``actor`` is the
    calling agent (kind ``agent`` unless ``actor_kind`` says otherwise)."""
    return Call("tool", tool, actor=actor, actor_kind=actor_kind, target=target, tenant=tenant)


def model_call(
    model: str,
    *,
    actor: Optional[str] = None,
    actor_kind: Optional[str] = None,
    target: Optional[str] = None,
    tenant: Optional[str] = None,
) -> Call:
    """Records a call to ``model`` as a ``MODEL_CALLED`` row."""
    return Call("model", model, actor=actor, actor_kind=actor_kind, target=target, tenant=tenant)


def handoff(
    to: str,
    *,
    actor: Optional[str] = None,
    actor_kind: Optional[str] = None,
    tenant: Optional[str] = None,
) -> Call:
    """Records work handed to agent ``to`` as an ``AGENT_HANDOFF`` row (its
    target is ``to``)."""
    return Call("handoff", to, actor=actor, actor_kind=actor_kind, tenant=tenant)
