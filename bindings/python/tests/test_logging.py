"""The sys stream from fasten.log, logging and structlog, with the
ambient request id and tenant."""

from __future__ import annotations

import json
import logging
import pathlib

import structlog

import fasten
import fasten.log


def sys_rows(request_id: str) -> list[dict]:
    p = fasten.pipeline()
    p.flush(5.0)
    rows: list[dict] = json.loads(p.sys_rows(request_id, 100))
    return rows


def test_log_kwargs_become_fields(db: pathlib.Path) -> None:
    with fasten.request_context(id="req-log-1", tenant="acme"):
        assert fasten.log.info("user_created", user_id="u-42", n=3, nested={"a": [1, 2.5]}, obj=object)
        fasten.log.error("failed", password="hunter2")
    rows = sys_rows("req-log-1")
    by_message = {r["message"]: r for r in rows}
    created = by_message["user_created"]
    assert created["level"] == "INFO"
    assert created["tenant_id"] == "acme"
    assert created["fields"]["user_id"] == "u-42" and created["fields"]["n"] == 3
    assert created["fields"]["nested"] == {"a": [1, 2.5]}
    assert "hunter2" not in json.dumps(by_message["failed"])
    assert by_message["failed"]["level"] == "ERROR"


def test_logging_handler(db: pathlib.Path) -> None:
    logger = logging.getLogger("shop.orders")
    logger.setLevel(logging.DEBUG)
    handler = fasten.log.FastenHandler()
    logger.addHandler(handler)
    try:
        with fasten.request_context(id="req-log-2"):
            logger.warning("order %s is late", "o-1", extra={"order_id": "o-1"})
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception("order failed")
    finally:
        logger.removeHandler(handler)
    rows = {r["message"]: r for r in sys_rows("req-log-2")}
    late = rows["order o-1 is late"]
    assert (late["level"], late["target"], late["fields"]["order_id"]) == ("WARN", "shop.orders", "o-1")
    assert "ValueError: boom" in rows["order failed"]["fields"]["exception"]


def test_structlog_processor(db: pathlib.Path) -> None:
    out: list[str] = []
    log = structlog.wrap_logger(
        structlog.PrintLogger(),
        processors=[structlog.processors.add_log_level, fasten.log.structlog_processor, lambda _l, _m, ed: json.dumps(ed)],
    )
    with fasten.request_context(id="req-log-3"):
        log.info("cart_checked_out", items=2)
    rows = sys_rows("req-log-3")
    assert [(r["message"], r["level"], r["fields"]["items"]) for r in rows] == [("cart_checked_out", "INFO", 2)]


def test_log_levels_below_threshold_are_dropped(tmp_path: pathlib.Path) -> None:
    from conftest import settings

    fasten.init(env=False, **settings(tmp_path / "l.db", sys_level="warn"))
    try:
        assert fasten.log.info("quiet") is False
        assert fasten.log.warning("loud") is True
    finally:
        fasten.shutdown()
