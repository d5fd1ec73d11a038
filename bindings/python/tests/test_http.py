"""A FastAPI app (examples/fastapi_app.py) served by a real uvicorn process
on loopback: one request through the middleware gives api, sys and audit
rows sharing one id, read back through the mounted reader. And the same
middleware under WSGI."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Iterator
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

import fasten
import fasten.shim.http
from conftest import BINDING

TOKEN = "pytest-reader-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"null")


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[str]:
    port = free_port()
    db = tmp_path / "shop.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FASTEN_")},
        "FASTEN_SERVICE_ID": "shop",
        "FASTEN_NODE_ID": "node-1",
        "FASTEN_AUDIT_DSN": f"sqlite:///{db}",
        "FASTEN_SYS_DSN": f"sqlite:///{db}",
        "FASTEN_API_DSN": f"sqlite:///{db}",
        "FASTEN_STDOUT": "none",
        "FASTEN_CODES": str(BINDING / "examples" / "codes" / "shop.codes.yaml"),
        "FASTEN_READER_TOKENS": TOKEN,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(BINDING / "examples"), "fastapi_app:app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not start (exit {proc.poll()})")
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # uvicorn exits by re-raising the SIGTERM it handled gracefully.
    assert proc.returncode in (0, -signal.SIGTERM)


def test_one_request_three_streams_one_id(server: str) -> None:
    status, headers, body = call(f"{server}/orders/o-17", "POST", {"X-Request-ID": "req-http-1"})
    assert status == 200, body
    assert headers["x-request-id"] == "req-http-1" and body["request_id"] == "req-http-1"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    deadline = time.monotonic() + 10
    while True:
        status, _, timeline = call(f"{server}/api/v1/logs/correlate?request_id=req-http-1", headers=auth)
        assert status == 200, timeline
        text = json.dumps(timeline)
        if all(k in text for k in ('"ORDER_PLACED"', '"placing order"', '"/orders/{order_id}"')):
            break
        assert time.monotonic() < deadline, timeline
        time.sleep(0.2)
    status, _, audit = call(f"{server}/api/v1/logs/audit?request_id=req-http-1", headers=auth)
    assert status == 200
    [row] = audit["rows"]
    assert (row["code"], row["actor"], row["target"], row["method"]) == ("ORDER_PLACED", "u-42", "o-17", "http")
    assert "4111 1111 1111 1111" not in json.dumps(row)
    status, _, api = call(f"{server}/api/v1/logs/api?request_id=req-http-1", headers=auth)
    [api_row] = api["rows"]
    assert (api_row["method"], api_row["route"], api_row["path"], api_row["status"]) == ("POST", "/orders/{order_id}", "/orders/o-17", 200)
    assert api_row["actor"] == "u-42" and api_row["target"] == "o-17"
    status, _, sys_page = call(f"{server}/api/v1/logs/sys?request_id=req-http-1", headers=auth)
    assert [r["message"] for r in sys_page["rows"]] == ["placing order"]
    status, _, verify = call(f"{server}/api/v1/logs/audit/verify", headers=auth)
    assert status == 200 and verify["ok"] is True


def test_reader_auth_and_hostile_ids(server: str) -> None:
    assert call(f"{server}/api/v1/logs/audit")[0] == 401
    assert call(f"{server}/api/v1/logs/audit", headers={"Authorization": "Bearer wrong-token-000000000"})[0] == 401
    assert call(f"{server}/api/v1/logs/audit?bogus=1", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 400
    status, headers, body = call(f"{server}/orders/o-1", "POST", {"X-Request-ID": "<script>alert(1)</script>"})
    assert status == 200 and len(body["request_id"]) == 32 and headers["x-request-id"] == body["request_id"]
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    status, _, body = call(f"{server}/orders/o-2", "POST", {"traceparent": tp})
    assert body["request_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_reader_refuses_to_build_without_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTEN_READER_TOKENS", raising=False)
    with pytest.raises(fasten.FastenError) as info:
        fasten.reader.router()
    assert (info.value.kind, info.value.var) == ("config", "FASTEN_READER_TOKENS")
    with pytest.raises(fasten.FastenError):
        fasten.reader.router(tokens=["short"])
    fasten.reader.router(allow_unauthenticated=True)


class Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_wsgi_middleware(db: pathlib.Path) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        fasten.set_actor("w-1")
        fasten.emit("USER_UPDATED", target="w")
        environ["fasten.route"] = "/things/{id}"
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [str(fasten.current_request_id()).encode()]

    wrapped = fasten.shim.http.RequestIDMiddleware(fasten.shim.http.APILogger(app))
    httpd = make_server("127.0.0.1", 0, wrapped, handler_class=Quiet)
    port = httpd.server_address[1]
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/things/9?secret=x", headers={"X-Request-ID": "req-wsgi-1"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 201 and resp.read() == b"req-wsgi-1"
            assert resp.headers["X-Request-ID"] == "req-wsgi-1"
    finally:
        httpd.shutdown()
    p = fasten.pipeline()
    p.flush(5.0)
    [api_row] = json.loads(p.api_rows("req-wsgi-1", 10))
    assert (api_row["route"], api_row["path"], api_row["status"], api_row["actor"]) == ("/things/{id}", "/things/9", 201, "w-1")
    assert api_row["bytes_out"] == len(b"req-wsgi-1")
