"""fasten.emit from Python beside logging.info to a FileHandler and beside a
plain sqlite3 insert-per-call, measured in the same run (a benchmark, not a
test). Prints p50/p99 per call and the ratios against each baseline.

    python bench/bench_emit.py [--n 20000]
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import statistics
import tempfile
import time
from typing import Callable, List

import fasten


def measure(n: int, call: Callable[[int], object]) -> List[float]:
    for i in range(min(1000, n)):  # warm up
        call(i)
    out = []
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        call(i)
        out.append((clock() - t0) / 1000.0)
    return out


def pct(samples: List[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    n = ap.parse_args().n
    tmp = tempfile.mkdtemp()

    logger = logging.getLogger("bench")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(os.path.join(tmp, "bench.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)

    conn = sqlite3.connect(os.path.join(tmp, "plain.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, code TEXT, target TEXT, detail TEXT)")

    fasten.register("bench", {"ORDER_PLACED": fasten.Meta(category="order", action="create")})
    fasten.init(
        env=False, service_id="bench", node_id="n1", audit_dsn=f"sqlite:///{tmp}/fasten.db", stdout="none",
        audit_queue_capacity=n + 2000,
    )

    results = {
        "logging.info -> FileHandler": measure(n, lambda i: logger.info("order placed %s", i)),
        "sqlite3 INSERT per call (autocommit, WAL, FULL)": measure(
            n, lambda i: conn.execute("INSERT INTO t (code, target, detail) VALUES (?, ?, ?)", ("ORDER_PLACED", f"o-{i}", '{"total":12}'))
        ),
        "fasten.emit": measure(n, lambda i: fasten.emit("ORDER_PLACED", target=f"o-{i}", detail={"total": 12})),
    }
    t0 = time.perf_counter()
    fasten.flush(timeout=120.0)
    drain = time.perf_counter() - t0
    stats = fasten.queue_stats()
    fasten.shutdown()

    print(f"n = {n} calls each (after 1000 warm-up calls), microseconds per call")
    print(f"{'':50} {'p50':>8} {'p99':>8} {'mean':>8}")
    for name, s in results.items():
        print(f"{name:50} {pct(s, 0.5):8.2f} {pct(s, 0.99):8.2f} {statistics.fmean(s):8.2f}")
    e, lg, sq = results["fasten.emit"], results["logging.info -> FileHandler"], results["sqlite3 INSERT per call (autocommit, WAL, FULL)"]
    print(f"fasten.emit p50 / logging p50 = {pct(e, 0.5) / pct(lg, 0.5):.2f}   p99 ratio = {pct(e, 0.99) / pct(lg, 0.99):.2f}")
    print(f"fasten.emit p50 / sqlite3 p50 = {pct(e, 0.5) / pct(sq, 0.5):.3f}   p99 ratio = {pct(e, 0.99) / pct(sq, 0.99):.3f}")
    print(f"flush after the emits took {drain * 1000:.1f} ms; writer committed {stats['written']} rows in {stats['batches']} batches")


if __name__ == "__main__":
    main()
