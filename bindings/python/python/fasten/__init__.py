"""fasten: typed, hash-chained, tamper-evident audit rows for Python services.

One call to :func:`init`, then :func:`emit` at each change that matters. The
rows are written by fasten's Rust engine (the same one Rust services use), so
a row written from Python is indistinguishable from one written from Rust.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import _native
from ._context import (
    current_request_id,
    request_context,
    set_actor,
    set_target,
    set_tenant,
)
from ._native import FastenError, Pipeline

__all__ = [
    "FastenError",
    "Meta",
    "agent",
    "Pipeline",
    "codes",
    "current_request_id",
    "emit",
    "emit_durable",
    "flush",
    "init",
    "log",
    "pipeline",
    "queue_stats",
    "register",
    "request_context",
    "set_actor",
    "set_target",
    "set_tenant",
    "shutdown",
    "verify",
]

Value = Union[str, int, float, bool, Sequence[str], "os.PathLike[str]"]

_lock = threading.Lock()
_pipeline: Optional[Pipeline] = None
_pairs: Optional[List[tuple[str, str]]] = None
_atexit_registered = False


def _text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def _env_pairs() -> Dict[str, str]:
    pairs = {}
    for name, value in os.environ.items():
        if not name.startswith("FASTEN_"):
            continue
        if _native.env_is_known(name):
            pairs[name] = value
        else:
            nearest = _native.env_nearest(name)
            hint = f" (did you mean {nearest}?)" if nearest else ""
            warnings.warn(f"fasten does not read {name}{hint}", stacklevel=3)
    return pairs


def init(*, env: bool = True, **settings: Value) -> Pipeline:
    """Starts the engine. Reads the ``FASTEN_*`` environment (unless
    ``env=False``); each keyword overrides one variable: ``service_id=`` is
    ``FASTEN_SERVICE_ID``, ``audit_dsn=`` is ``FASTEN_AUDIT_DSN`` and so on
    (an unknown keyword raises, naming the nearest). A second ``init``
    flushes and replaces the first. Rows are flushed at interpreter exit.
    """
    global _pipeline, _pairs, _atexit_registered, _sqlite_used
    pairs = _env_pairs() if env else {}
    for key, value in settings.items():
        pairs["FASTEN_" + key.upper()] = _text(value)
    items = sorted(pairs.items())
    if _forked_from_sqlite and (_uses_sqlite(items) or "FASTEN_AUDIT_DSN" not in pairs):
        raise _native_error("forked", _SQLITE_AFTER_FORK)
    with _lock:
        old, _pipeline = _pipeline, None
        if old is not None:
            try:
                old.shutdown(5.0)
            except FastenError:
                pass
        _sqlite_used = _sqlite_used or _uses_sqlite(items) or "FASTEN_AUDIT_DSN" not in pairs
        p = _native.build(items)
        _sqlite_used = _sqlite_used or _uses_sqlite(items, p.dsn())
        _pipeline, _pairs = p, items
        if not _atexit_registered:
            atexit.register(_at_exit)
            _atexit_registered = True
    return p


_SQLITE_AFTER_FORK = (
    "fasten used SQLite in this process before os.fork(), and SQLite's connections and "
    "process-wide locks must not cross a fork (a child can hang or lose rows): call "
    "fasten.init() only in the workers, after they are forked (gunicorn post_fork, the app's "
    "lifespan), or use PostgreSQL"
)
_forked_from_sqlite = False
# Set once this process has started a pipeline on SQLite. SQLite keeps
# process-wide mutexes, and a fork taken while any thread (a writer, a
# stream thread, a connection closing) is inside SQLite leaves them locked
# in the child forever (seen: a child's init hung in sqlite3Malloc after the
# parent's pipeline was shut down). So a child of such a process refuses
# SQLite outright rather than hang or lose rows.
_sqlite_used = False


def _uses_sqlite(pairs: Sequence[tuple[str, str]], audit_dsn: Optional[str] = None) -> bool:
    dsns = [v for k, v in pairs if k in ("FASTEN_AUDIT_DSN", "FASTEN_SYS_DSN", "FASTEN_API_DSN")]
    if audit_dsn is not None:
        dsns.append(audit_dsn)
    return any(d.strip().startswith("sqlite:") for d in dsns)


def _after_fork_in_child() -> None:
    # The parent's writer thread did not come along: forget its handle (the
    # native side never joins it). On PostgreSQL a new pipeline is built on
    # first use; SQLite's locks are per process and its connections must not
    # cross a fork, so there the child gets a clear error instead.
    global _pipeline, _forked_from_sqlite
    _pipeline = None
    _forked_from_sqlite = _forked_from_sqlite or _sqlite_used


os.register_at_fork(after_in_child=_after_fork_in_child)


def pipeline() -> Pipeline:
    """The pipeline :func:`init` started (rebuilt after ``os.fork()`` from
    the same settings); ``FastenError`` (kind ``closed``) before ``init``."""
    global _pipeline
    p = _pipeline
    if p is not None:
        return p
    with _lock:
        if _pipeline is None:
            if _forked_from_sqlite:
                raise _native_error("forked", _SQLITE_AFTER_FORK)
            if _pairs is None:
                raise _native_error("closed", "fasten is not initialised: call fasten.init() first")
            _pipeline = _native.build(_pairs)
        return _pipeline


def _native_error(kind: str, message: str) -> FastenError:
    err = FastenError(message)
    err.kind = kind
    err.field = None
    err.var = None
    return err


def _at_exit() -> None:
    p = _pipeline
    if p is not None:
        try:
            p.shutdown(5.0)
        except FastenError as e:
            warnings.warn(f"fasten: rows may be lost at exit: {e}", stacklevel=1)


def emit(
    code: str,
    *,
    target: Optional[str] = None,
    actor: Optional[str] = None,
    actor_kind: Optional[str] = None,
    outcome: Optional[str] = None,
    method: Optional[str] = None,
    severity: Optional[str] = None,
    tenant: Optional[str] = None,
    request_id: Optional[str] = None,
    detail: Optional[Mapping[str, Any]] = None,
) -> str:
    """Queues one audit row and returns its event id. Request id, actor,
    tenant and method default to the ambient request's. Raises
    ``FastenError`` naming the field and the rule."""
    p = _pipeline or pipeline()
    req = _CURRENT.get()
    if req is not None:
        if request_id is None:
            request_id = req.request_id
        if actor is None and req.actor is not None:
            actor = req.actor
            actor_kind = actor_kind or req.actor_kind
        if tenant is None:
            tenant = req.tenant
        if method is None:
            method = req.method
    return p.emit(
        code,
        target=target,
        actor=actor,
        actor_kind=actor_kind,
        outcome=outcome,
        method=method,
        severity=severity,
        tenant=tenant,
        request_id=request_id,
        detail=detail,
    )


def emit_durable(
    code: str,
    *,
    target: Optional[str] = None,
    actor: Optional[str] = None,
    actor_kind: Optional[str] = None,
    outcome: Optional[str] = None,
    method: Optional[str] = None,
    severity: Optional[str] = None,
    tenant: Optional[str] = None,
    request_id: Optional[str] = None,
    detail: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Like :func:`emit`, but returns once the row is committed, with the
    sealed row as a dict (its ``hash``, ``monotonic_seq`` …)."""
    p = _pipeline or pipeline()
    req = _CURRENT.get()
    if req is not None:
        if request_id is None:
            request_id = req.request_id
        if actor is None and req.actor is not None:
            actor = req.actor
            actor_kind = actor_kind or req.actor_kind
        if tenant is None:
            tenant = req.tenant
        if method is None:
            method = req.method
    row: Dict[str, Any] = json.loads(
        p.emit_durable(
            code,
            target=target,
            actor=actor,
            actor_kind=actor_kind,
            outcome=outcome,
            method=method,
            severity=severity,
            tenant=tenant,
            request_id=request_id,
            detail=detail,
        )
    )
    return row


def flush(timeout: float = 5.0) -> None:
    """Returns once every row emitted before is committed (GIL released)."""
    (_pipeline or pipeline()).flush(timeout)


def shutdown(timeout: float = 5.0) -> Dict[str, int]:
    """Flushes and stops the engine: ``{"written": n, "unwritten": m}``."""
    global _pipeline, _pairs
    with _lock:
        p, _pipeline, _pairs = _pipeline, None, None
    if p is None:
        return {"written": 0, "unwritten": 0}
    written, unwritten = p.shutdown(timeout)
    return {"written": written, "unwritten": unwritten}


def queue_stats() -> Dict[str, Any]:
    """The audit queue's counters (depth, written, queue_full …)."""
    return (_pipeline or pipeline()).queue_stats()


def verify(dsn: str) -> Dict[str, Any]:
    """Verifies every chain in a store, as ``fasten verify --json`` does."""
    report: Dict[str, Any] = json.loads(_native.verify(dsn))
    return report


class Meta:
    """A code's metadata, as in a ``*.codes.yaml`` file."""

    __slots__ = (
        "category",
        "action",
        "severity",
        "description",
        "retention_class",
        "pii_in_detail",
        "detail_passthrough_keys",
    )

    def __init__(
        self,
        category: str,
        action: str,
        *,
        severity: Optional[str] = None,
        description: Optional[str] = None,
        retention_class: Optional[str] = None,
        pii_in_detail: bool = False,
        detail_passthrough_keys: Sequence[str] = (),
    ) -> None:
        self.category = category
        self.action = action
        self.severity = severity
        self.description = description
        self.retention_class = retention_class
        self.pii_in_detail = pii_in_detail
        self.detail_passthrough_keys = list(detail_passthrough_keys)


def register(domain: str, codes: Mapping[str, Meta]) -> None:
    """Registers a domain's codes (all or nothing); before or after init."""
    _native.register(
        domain,
        [
            (
                code,
                m.category,
                m.action,
                m.severity,
                m.description,
                m.retention_class,
                m.pii_in_detail,
                m.detail_passthrough_keys,
            )
            for code, m in codes.items()
        ],
    )


from ._context import CURRENT as _CURRENT  # noqa: E402
from . import agent, codes, contract, log, reader, scheduler, shim  # noqa: E402
from .shim import http as _http  # noqa: E402,F401
