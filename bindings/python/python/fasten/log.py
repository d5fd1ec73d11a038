"""The sys stream from Python: ``fasten.log.info("user_created", user_id="u-42")``,
a ``logging.Handler`` and a structlog processor. Each row carries the
ambient request id and tenant; levels, field caps and redaction are the
engine's."""

from __future__ import annotations

import logging
from typing import Any, MutableMapping, Optional

from . import _native
from ._context import CURRENT

__all__ = ["FastenHandler", "debug", "error", "info", "structlog_processor", "warning", "write"]


def write(level: str, message: str, *, target: str = "python", **fields: Any) -> bool:
    """One sys row; ``False`` when the level is below ``FASTEN_SYS_LEVEL``."""
    from . import pipeline

    return _write(pipeline(), level, message, target, fields)


def _write(
    p: _native.Pipeline, level: str, message: str, target: str, fields: Optional[dict[str, Any]]
) -> bool:
    req = CURRENT.get()
    return p.log(
        level,
        message,
        target=target,
        fields=fields or None,
        request_id=req.request_id if req is not None else None,
        tenant=req.tenant if req is not None else None,
    )


def debug(event: str, /, **fields: Any) -> bool:
    """A DEBUG sys row with ``fields``."""
    return write("debug", event, **fields)


def info(event: str, /, **fields: Any) -> bool:
    """An INFO sys row with ``fields``."""
    return write("info", event, **fields)


def warning(event: str, /, **fields: Any) -> bool:
    """A WARN sys row with ``fields``."""
    return write("warn", event, **fields)


def error(event: str, /, **fields: Any) -> bool:
    """An ERROR sys row with ``fields``."""
    return write("error", event, **fields)


def _level(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    if levelno >= logging.DEBUG:
        return "debug"
    return "trace"


_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class FastenHandler(logging.Handler):
    """Sends ``logging`` records to the sys stream: the logger's name as
    target, ``extra=`` attributes as fields, the exception's text as the
    field ``exception``. Records logged before ``fasten.init()`` are
    skipped."""

    def emit(self, record: logging.LogRecord) -> None:
        from . import _pipeline

        p = _pipeline
        if p is None:
            return
        try:
            fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
            if record.exc_info:
                fields["exception"] = logging.Formatter().formatException(record.exc_info)
            _write(p, _level(record.levelno), record.getMessage(), record.name, fields)
        except Exception:
            self.handleError(record)


def structlog_processor(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: writes the event to the sys stream and passes
    it on unchanged, so put it before your renderer."""
    from . import _pipeline

    p = _pipeline
    if p is not None:
        fields = {k: v for k, v in event_dict.items() if k not in ("event", "level", "logger", "timestamp")}
        level = str(event_dict.get("level", method_name))
        if level in ("exception", "critical", "fatal"):
            level = "error"
        elif level == "warning":
            level = "warn"
        elif level not in ("trace", "debug", "info", "warn", "error"):
            level = "info"
        target = str(event_dict.get("logger") or "structlog")
        _write(p, level, str(event_dict.get("event", "")), target, fields)
    return event_dict
