"""PostgreSQL: 8 threads and 4 processes emit into one table; the chain
verifies with the Rust CLI."""

from __future__ import annotations

import multiprocessing
import subprocess
import threading

import fasten

PER_WORKER = 50


def _process_worker(dsn: str, node: str, codes: str) -> None:
    fasten.codes.load(codes)
    fasten.init(env=False, service_id="py-pg", node_id=node, audit_dsn=dsn, stdout="none")
    for i in range(PER_WORKER):
        fasten.emit("ORDER_PLACED", target=f"{node}-{i}", detail={"i": i})
    fasten.shutdown()


def test_threads_and_processes(pg_table: str, cli: str, tmp_path: object) -> None:
    from conftest import CODES

    fasten.init(env=False, service_id="py-pg", node_id="pg-threads", audit_dsn=pg_table, stdout="none")
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with fasten.request_context(id=f"thread-{n}"):
                for i in range(PER_WORKER):
                    fasten.emit("ORDER_PLACED", target=f"t{n}-{i}")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    # Four processes (two of them on one node, which must not fork its chain).
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_worker, args=(pg_table, node, str(CODES))) for node in ("pg-p1", "pg-p2", "pg-p3", "pg-p3")]
    for p in procs:
        p.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert not errors, errors
    fasten.flush()
    assert fasten.queue_stats()["written"] == 8 * PER_WORKER
    fasten.shutdown()
    report = fasten.verify(pg_table)
    rows = {n["source_node_id"]: n["rows"] for n in report["nodes"]}
    assert report["ok"], report
    assert rows == {"pg-threads": 8 * PER_WORKER, "pg-p1": PER_WORKER, "pg-p2": PER_WORKER, "pg-p3": 2 * PER_WORKER}
    out = subprocess.run([cli, "verify", "--dsn", pg_table], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


FORK_SCRIPT = """
import multiprocessing, sys
import fasten
fasten.codes.load(sys.argv[1])
fasten.init(env=False, service_id="py-pg", node_id="pg-fork", audit_dsn=sys.argv[2], stdout="none")
fasten.emit_durable("ORDER_PLACED")

def child():
    fasten.emit_durable("ORDER_PLACED")  # rebuilt in the child on first use
    fasten.shutdown()

procs = [multiprocessing.get_context("fork").Process(target=child) for _ in range(2)]
for p in procs:
    p.start()
for p in procs:
    p.join(60)
fasten.shutdown()
print([p.exitcode for p in procs])
"""


def test_fork_children_on_postgres(pg_table: str) -> None:
    # In a process of its own: this one has used SQLite, after which a
    # forked child refuses to start (test_fork.py).
    import sys

    from conftest import CODES

    out = subprocess.run([sys.executable, "-c", FORK_SCRIPT, str(CODES), pg_table], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[0, 0]", out.stdout + out.stderr
    report = fasten.verify(pg_table)
    assert report["ok"] and report["nodes"][0]["rows"] == 3, report
