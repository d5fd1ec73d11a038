"""Scheduled jobs: each run gets the request id ``scheduler-<run_id>`` and a
``job started`` / ``job finished`` (or ``job failed``) sys row with its
duration and outcome, written by the engine's run record."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Awaitable, Callable, TypeVar, cast

from ._context import request_context

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["job"]


def job(name: str) -> Callable[[F], F]:
    """Decorates a job function, sync or ``async``; works under any
    scheduler (APScheduler, schedule, cron, a loop). Audit rows emitted in
    a run get ``method=scheduler`` and the run's id."""

    def decorate(fn: F) -> F:
        from . import pipeline

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                run = pipeline().start_job(name)
                try:
                    with request_context(run.request_id, method="scheduler"):
                        result = await cast(Callable[..., Awaitable[Any]], fn)(*args, **kwargs)
                except BaseException as e:
                    run.finish(f"{type(e).__name__}: {e}")
                    raise
                run.finish(None)
                return result

            return cast(F, run_async)

        @functools.wraps(fn)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            run = pipeline().start_job(name)
            try:
                with request_context(run.request_id, method="scheduler"):
                    result = fn(*args, **kwargs)
            except BaseException as e:
                run.finish(f"{type(e).__name__}: {e}")
                raise
            run.finish(None)
            return result

        return cast(F, run_sync)

    return decorate
