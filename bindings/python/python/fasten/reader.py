"""The engine's HTTP reader as an ASGI app:
``app.mount("/api/v1/logs", fasten.reader.router())``.

Routes, auth and queries are the Rust reader's (``fasten::http_reader``); this
app only moves each request's bytes to it and back. Auth is not optional:
give ``tokens=[...]``, ``delegated=True`` (your own auth in front) or
``allow_unauthenticated=True``, or set ``FASTEN_READER_TOKENS``; otherwise
``router()`` raises."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from typing import Any, Awaitable, Callable, MutableMapping, Optional, Sequence
from urllib.parse import quote

from . import _native

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

__all__ = ["Reader", "router"]


class Reader:
    """An ASGI app serving the reader over the pipeline ``fasten.init()``
    started. Built lazily on the first request, and again in a forked
    worker, so it can be mounted at import time."""

    def __init__(
        self,
        *,
        tokens: Optional[Sequence[str]] = None,
        delegated: bool = False,
        allow_unauthenticated: bool = False,
    ) -> None:
        self._auth: dict[str, Any] = {
            "tokens": list(tokens) if tokens is not None else None,
            "delegated": delegated,
            "allow_unauthenticated": allow_unauthenticated,
        }
        # Refuse now, not at the first request, when no auth was decided.
        _native.ReaderApp.check_auth(**self._auth)
        self._app: Optional[_native.ReaderApp] = None
        self._pid = -1
        self._lock = threading.Lock()

    def _native_app(self) -> _native.ReaderApp:
        with self._lock:
            if self._app is None or self._pid != os.getpid():
                from . import pipeline

                self._app = _native.ReaderApp(pipeline(), **self._auth)
                self._pid = os.getpid()
            return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            raise RuntimeError(f"the fasten reader serves HTTP, not {scope['type']}")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        target = quote(path or "/")
        query = scope.get("query_string", b"")
        if query:
            target += "?" + query.decode("latin-1")
        headers = [(bytes(k), bytes(v)) for k, v in scope.get("headers", [])]
        app = self._native_app()
        loop = asyncio.get_running_loop()
        status, out_headers, out = await loop.run_in_executor(
            None, functools.partial(app.handle, scope["method"], target, headers, body)
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), v) for k, v in out_headers],
            }
        )
        await send({"type": "http.response.body", "body": out})


def router(
    *,
    tokens: Optional[Sequence[str]] = None,
    delegated: bool = False,
    allow_unauthenticated: bool = False,
) -> Reader:
    """The reader as an ASGI app to mount. Raises ``FastenError`` (kind
    ``config``) without an auth decision."""
    return Reader(tokens=tokens, delegated=delegated, allow_unauthenticated=allow_unauthenticated)
