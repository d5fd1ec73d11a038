"""The ambient request: id, actor, tenant and method, in ``contextvars``.

They follow ``asyncio`` tasks and threads started with
``contextvars.copy_context()``, and are passed to the engine explicitly with
each call, so two tasks never see each other's request.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Iterator, Optional

from . import _native


class Request:
    """One request's context. Mutable on purpose: ``set_actor`` inside a
    handler (even one run in a worker thread with a copied context) is seen
    by the middleware that writes the request's api row."""

    __slots__ = ("request_id", "actor", "actor_kind", "tenant", "method", "target")

    def __init__(
        self,
        request_id: Optional[str],
        actor: Optional[str] = None,
        actor_kind: Optional[str] = None,
        tenant: Optional[str] = None,
        method: Optional[str] = None,
    ) -> None:
        self.request_id = request_id
        self.actor = actor
        self.actor_kind = actor_kind
        self.tenant = tenant
        self.method = method
        self.target: Optional[str] = None


CURRENT: ContextVar[Optional[Request]] = ContextVar("fasten_request", default=None)


@contextlib.contextmanager
def request_context(
    id: Optional[str] = None,
    *,
    actor: Optional[str] = None,
    actor_kind: Optional[str] = None,
    tenant: Optional[str] = None,
    method: Optional[str] = None,
) -> Iterator[Request]:
    """Makes a request ambient for the block: ``id`` (validated by the
    engine; a fresh one when ``None``), and optionally its actor, tenant and
    the method rows get (``http``, ``mqtt``, ``scheduler`` …). Actor and
    tenant not given are inherited from an enclosing request."""
    rid = _native.parse_request_id(id) if id is not None else _native.mint_request_id()
    outer = CURRENT.get()
    req = Request(
        rid,
        actor if actor is not None else (outer.actor if outer else None),
        actor_kind if actor is not None else (outer.actor_kind if outer else None),
        tenant if tenant is not None else (outer.tenant if outer else None),
        method if method is not None else (outer.method if outer else None),
    )
    token = CURRENT.set(req)
    try:
        yield req
    finally:
        try:
            CURRENT.reset(token)
        except ValueError:
            # Reset from another context (a generator closed elsewhere):
            # the context it belonged to is gone anyway.
            pass


def current_request_id() -> Optional[str]:
    """The ambient request id, or ``None`` outside a request."""
    req = CURRENT.get()
    return req.request_id if req is not None else None


def _current_or_new() -> Request:
    req = CURRENT.get()
    if req is None:
        req = Request(None)
        CURRENT.set(req)
    return req


def set_actor(actor: str, kind: str = "user") -> None:
    """Who acts in the current request: audit rows without an explicit
    ``actor`` get it, and so does the request's api row."""
    req = _current_or_new()
    req.actor = actor
    req.actor_kind = kind


def set_tenant(tenant: str) -> None:
    """The current request's tenant, for its audit, sys and api rows."""
    _current_or_new().tenant = tenant


def set_target(target: str) -> None:
    """What the current request acts on, for its api row."""
    _current_or_new().target = target
