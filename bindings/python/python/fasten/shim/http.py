"""Request ids and api rows for ASGI (Starlette, FastAPI) and WSGI (Flask,
Django) apps.

``RequestIDMiddleware`` takes the id from a safe ``X-Request-ID``, else a
well-formed ``traceparent``, else mints one (the engine's rules, as in the
Rust ``RequestIdLayer``), makes it ambient for the handler and echoes it on
the response. ``APILogger`` writes one api row per request: method, route
template when the framework names one, status, duration, bytes, and the
actor and target set with ``fasten.set_actor`` / ``fasten.set_target``.
Both classes serve either protocol; put ``RequestIDMiddleware`` outermost::

    app.add_middleware(fasten.shim.http.APILogger)
    app.add_middleware(fasten.shim.http.RequestIDMiddleware)   # outermost
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable, Iterable, Iterator, List, MutableMapping, Optional, Tuple

from .. import _native
from .._context import CURRENT, Request

__all__ = ["APILogger", "RequestIDMiddleware", "outbound_headers"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
StartResponse = Callable[..., Any]


def outbound_headers() -> dict[str, str]:
    """``X-Request-ID`` and ``traceparent`` for a call to another service
    (empty outside a request)."""
    req = CURRENT.get()
    if req is None or req.request_id is None:
        return {}
    return dict(_native.outbound_headers(req.request_id))


def _wsgi_headers(environ: MutableMapping[str, Any]) -> List[Tuple[bytes, bytes]]:
    out = []
    for name in ("HTTP_X_REQUEST_ID", "HTTP_TRACEPARENT"):
        value = environ.get(name)
        if value is not None:
            out.append((name[5:].replace("_", "-").lower().encode(), str(value).encode("latin-1")))
    return out


class RequestIDMiddleware:
    """Makes the request's id ambient (``fasten.current_request_id()``)
    with ``method=http``, stores it as ``scope["state"]["request_id"]`` /
    ``environ["fasten.request_id"]``, and echoes ``X-Request-ID``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, *args: Any) -> Any:
        if len(args) == 3:
            return self._asgi(*args)
        return self._wsgi(*args)

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid, _source = _native.request_id_from_headers(list(scope.get("headers", [])))
        scope.setdefault("state", {})["request_id"] = rid
        outer = CURRENT.get()
        req = Request(rid, tenant=outer.tenant if outer else None, method="http")
        token = CURRENT.set(req)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            CURRENT.reset(token)

    def _wsgi(self, environ: MutableMapping[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        rid, _source = _native.request_id_from_headers(_wsgi_headers(environ))
        environ["fasten.request_id"] = rid
        token = CURRENT.set(Request(rid, method="http"))

        def start(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [(k, v) for k, v in headers if k.lower() != "x-request-id"]
            headers.append(("X-Request-ID", rid))
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        try:
            result = self.app(environ, start)
        except BaseException:
            CURRENT.reset(token)
            raise
        return _Closing(result, lambda: _reset(token))


def _reset(token: Any) -> None:
    try:
        CURRENT.reset(token)
    except ValueError:
        pass


class _Closing:
    """A WSGI response that runs ``on_close`` when the server closes it."""

    def __init__(self, inner: Iterable[bytes], on_close: Callable[[], None], on_chunk: Optional[Callable[[bytes], None]] = None) -> None:
        self.inner = inner
        self.on_close = on_close
        self.on_chunk = on_chunk

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            if self.on_chunk is not None:
                self.on_chunk(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.inner, "close", None)
            if close is not None:
                close()
        finally:
            self.on_close()


def _route_template(scope: Scope) -> Optional[str]:
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    # Mounted sub-apps: the prefix the outer routers consumed.
    prefix = str(scope.get("root_path", ""))[len(str(scope.get("app_root_path", ""))) :]
    return prefix + template


class APILogger:
    """Writes one api row per request through the engine (which validates,
    caps fields, never stores the query string, and takes the request's
    tenant). A request with no ambient id (no ``RequestIDMiddleware``
    outside) gets one from its headers."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, *args: Any) -> Any:
        if len(args) == 3:
            return self._asgi(*args)
        return self._wsgi(*args)

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from .. import _pipeline

        req = CURRENT.get()
        token = None
        if req is None or req.request_id is None:
            rid, _ = _native.request_id_from_headers(list(scope.get("headers", [])))
            req = Request(rid, method="http")
            token = CURRENT.set(req)
        started = time.perf_counter()
        status = 0
        bytes_in = 0
        bytes_out = 0

        async def counting_receive() -> Message:
            nonlocal bytes_in
            message = await receive()
            bytes_in += len(message.get("body", b""))
            return message

        async def recording_send(message: Message) -> None:
            nonlocal status, bytes_out
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                bytes_out += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, recording_send)
        finally:
            p = _pipeline
            if p is not None and req.request_id is not None:
                p.record_api(
                    req.request_id,
                    scope.get("method", "GET"),
                    scope["path"],
                    status if status else 499,
                    time.perf_counter() - started,
                    route=_route_template(scope),
                    bytes_in=bytes_in,
                    bytes_out=bytes_out,
                    actor=req.actor,
                    target=req.target,
                    tenant=req.tenant,
                )
            if token is not None:
                CURRENT.reset(token)

    def _wsgi(self, environ: MutableMapping[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        from .. import _pipeline

        req = CURRENT.get()
        token = None
        if req is None or req.request_id is None:
            rid, _ = _native.request_id_from_headers(_wsgi_headers(environ))
            req = Request(rid, method="http")
            token = CURRENT.set(req)
        started = time.perf_counter()
        state = {"status": 0, "out": 0}

        def start(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            state["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        def count(chunk: bytes) -> None:
            state["out"] += len(chunk)

        def done() -> None:
            p = _pipeline
            if p is not None and req is not None and req.request_id is not None:
                length = environ.get("CONTENT_LENGTH") or ""
                template = environ.get("fasten.route")
                p.record_api(
                    req.request_id,
                    environ.get("REQUEST_METHOD", "GET"),
                    (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/",
                    state["status"] or 499,
                    time.perf_counter() - started,
                    route=template if isinstance(template, str) else None,
                    bytes_in=int(length) if length.isdigit() else None,
                    bytes_out=state["out"],
                    actor=req.actor,
                    target=req.target,
                    tenant=req.tenant,
                )
            if token is not None:
                _reset(token)

        try:
            result = self.app(environ, start)
        except BaseException:
            done()
            raise
        return _Closing(result, done, count)
