"""fasten without HTTP: register a code, emit, flush, verify.

    python examples/quickstart.py
"""

from __future__ import annotations

import os
import tempfile

import fasten


def main() -> None:
    fasten.register("iam", {"USER_UPDATED": fasten.Meta(category="user", action="update", retention_class="long")})
    path = os.path.join(tempfile.mkdtemp(), "audit.db")
    fasten.init(env=False, service_id="quickstart", node_id="node-1", audit_dsn=f"sqlite:///{path}", stdout="none")
    with fasten.request_context(actor="admin", tenant="acme"):
        fasten.emit("USER_UPDATED", target="cust-42", detail={"plan": "pro", "password": "hunter2"})
        row = fasten.emit_durable("USER_UPDATED", target="cust-43", outcome="failure")
    fasten.flush(timeout=5.0)
    print(row["monotonic_seq"], row["request_id"], row["hash"])
    report = fasten.verify(f"sqlite:///{path}")
    print(report)
    fasten.shutdown()


if __name__ == "__main__":
    main()
