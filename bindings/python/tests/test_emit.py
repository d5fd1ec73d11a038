"""emit / emit_durable with every option, and bad input refused with the
field named."""

from __future__ import annotations

import math
import pathlib

import pytest

import fasten
from conftest import settings


def test_every_option_lands_in_the_sealed_row(db: pathlib.Path) -> None:
    row = fasten.emit_durable(
        "USER_UPDATED",
        target="cust-42",
        actor="admin",
        actor_kind="agent",
        outcome="denied",
        method="grpc",
        severity="critical",
        tenant="acme",
        request_id="req-opt-1",
        detail={"plan": "pro", "seats": 3, "ratio": 0.5, "tags": ["a", None, True]},
    )
    assert row["code"] == "USER_UPDATED"
    assert row["domain"] == "pytest"
    assert row["category"] == "user"
    assert row["action"] == "update"
    assert row["target"] == "cust-42"
    assert (row["actor"], row["actor_kind"]) == ("admin", "agent")
    assert row["outcome"] == "denied"
    assert row["method"] == "grpc"
    assert row["severity"] == "critical"
    assert row["tenant_id"] == "acme"
    assert row["request_id"] == "req-opt-1"
    assert row["detail"] == {"plan": "pro", "seats": 3, "ratio": 0.5, "tags": ["a", None, True]}
    assert (row["service_id"], row["source_node_id"]) == ("py-test", "py-node-1")
    assert row["monotonic_seq"] == 1 and row["prev_hash"] == "genesis"
    assert row["canonical_form_id"] == "3"
    assert fasten.contract.row_hash(row) == row["hash"]


def test_defaults_and_chain(db: pathlib.Path) -> None:
    first = fasten.emit("USER_CREATED")
    assert first.startswith("evt-") and len(first) == 24
    row = fasten.emit_durable("USER_CREATED")
    assert (row["actor"], row["actor_kind"], row["outcome"], row["method"]) == ("system", "service", "success", "sdk")
    assert row["severity"] == "info" and row["tenant_id"] is None and row["target"] == ""
    assert len(row["request_id"]) == 32
    assert row["monotonic_seq"] == 2
    fasten.flush(timeout=5.0)
    report = fasten.verify(f"sqlite:///{db}")
    assert report["ok"] is True, report
    assert fasten.queue_stats()["written"] == 2


def test_secrets_are_redacted_by_the_engine(db: pathlib.Path) -> None:
    row = fasten.emit_durable("USER_UPDATED", detail={"password": "hunter2", "card": "4111 1111 1111 1111", "plan": "pro"})
    assert row["detail"]["plan"] == "pro"
    assert "hunter2" not in str(row["detail"])
    assert "4111 1111 1111 1111" not in str(row["detail"])
    pii = fasten.emit_durable("CARD_UPDATED", detail={"last4": "4242", "name": "Ada"})
    assert pii["pii_in_detail"] is True
    assert pii["detail"].get("last4") == "4242" and "Ada" not in str(pii["detail"])


@pytest.mark.parametrize(
    ("kwargs", "kind", "field"),
    [
        ({"code": "NO_SUCH_CODE"}, "unknown_code", "code"),
        ({"code": "USER_CREATED", "detail": {"x": math.nan}}, "invalid_event", "detail"),
        ({"code": "USER_CREATED", "detail": {"x": [1, math.inf]}}, "invalid_event", "detail"),
        ({"code": "USER_CREATED", "detail": ["not", "a", "dict"]}, "invalid_event", "detail"),
        ({"code": "USER_CREATED", "detail": "text"}, "invalid_event", "detail"),
        ({"code": "USER_CREATED", "detail": {1: "int key"}}, "invalid_event", "detail"),
        ({"code": "USER_CREATED", "detail": {"when": object()}}, "invalid_event", "detail"),
        ({"code": "USER_CREATED", "request_id": "a b\n<script>"}, "invalid_event", "request_id"),
        ({"code": "USER_CREATED", "request_id": "x" * 129}, "invalid_event", "request_id"),
        ({"code": "USER_CREATED", "outcome": "maybe"}, "invalid_event", "outcome"),
        ({"code": "USER_CREATED", "method": "carrier-pigeon"}, "invalid_event", "method"),
        ({"code": "USER_CREATED", "severity": "loud"}, "invalid_event", "severity"),
        ({"code": "USER_CREATED", "actor": "a", "actor_kind": "robot"}, "invalid_event", "actor_kind"),
        ({"code": "USER_CREATED", "actor_kind": "user"}, "invalid_event", "actor_kind"),
        ({"code": "USER_CREATED", "actor": "bad\nactor"}, "invalid_event", "actor"),
    ],
)
def test_bad_input_raises_naming_the_field(db: pathlib.Path, kwargs: dict, kind: str, field: str) -> None:
    with pytest.raises(fasten.FastenError) as info:
        fasten.emit(**kwargs)
    assert info.value.kind == kind, str(info.value)
    assert info.value.field == field, str(info.value)
    if field not in ("code", "request_id"):
        assert field in str(info.value)
    assert fasten.queue_stats()["enqueued"] == 0


def test_nan_message_names_the_path(db: pathlib.Path) -> None:
    with pytest.raises(fasten.FastenError, match=r"detail\.readings\[1\]"):
        fasten.emit("USER_CREATED", detail={"readings": [1.0, math.nan]})


def test_unknown_setting_names_the_nearest(tmp_path: pathlib.Path) -> None:
    with pytest.raises(fasten.FastenError, match="FASTEN_AUDIT_DSN") as info:
        fasten.init(env=False, service_id="s", node_id="n", audit_dns="sqlite:///x.db")
    assert info.value.kind == "config"


def test_bad_dsn_is_a_config_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(fasten.FastenError) as info:
        fasten.init(env=False, service_id="s", node_id="n", audit_dsn="sqlite:/a.db")
    assert (info.value.kind, info.value.var) == ("config", "FASTEN_AUDIT_DSN")


def test_init_reads_the_environment(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTEN_SERVICE_ID", "from-env")
    monkeypatch.setenv("FASTEN_NODE_ID", "env-node")
    monkeypatch.setenv("FASTEN_AUDIT_DSN", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv("FASTEN_STDOUT", "none")
    fasten.init(node_id="override-node")
    try:
        row = fasten.emit_durable("USER_CREATED")
        assert (row["service_id"], row["source_node_id"]) == ("from-env", "override-node")
    finally:
        fasten.shutdown()


def test_register_and_raise_mode(tmp_path: pathlib.Path) -> None:
    fasten.register(
        "billing",
        {"INVOICE_SENT": fasten.Meta(category="invoice", action="send", severity="warn", retention_class="long")},
    )
    fasten.init(env=False, **settings(tmp_path / "r.db", audit_store_failure_strategy="raise"))
    try:
        fasten.emit("INVOICE_SENT", target="inv-1")
        # In raise mode emit returns after the commit: the row is readable now.
        assert fasten.queue_stats()["written"] == 1
        row = fasten.emit_durable("INVOICE_SENT")
        assert (row["domain"], row["severity"]) == ("billing", "warn")
    finally:
        fasten.shutdown()
    with pytest.raises(fasten.FastenError) as info:
        fasten.register("billing", {"bad code": fasten.Meta(category="x", action="y")})
    assert info.value.kind == "codes"


def test_codes_file_errors_name_the_line(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.codes.yaml"
    bad.write_text("domain: x\ncodes:\n  lower_case:\n    category: a\n    action: b\n")
    with pytest.raises(fasten.FastenError) as info:
        fasten.codes.load(bad)
    assert info.value.kind == "codes"
    assert "bad.codes.yaml" in str(info.value)


def test_codes_file_parse_errors_keep_the_cause_once(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.codes.yaml"
    bad.write_text("domain: bad\ncodes:\n  ORDER_PLACED:\n    category: a\n    action: b\n    severity: loud\n")
    with pytest.raises(fasten.FastenError) as info:
        fasten.codes.load(bad)
    message = str(info.value)
    assert info.value.kind == "codes"
    assert "bad.codes.yaml:6:15: cannot parse the code file: " in message, message
    assert message.count('invalid severity "loud"') == 1, message


def test_emit_before_init_raises() -> None:
    fasten.shutdown()
    with pytest.raises(fasten.FastenError) as info:
        fasten.emit("USER_CREATED")
    assert info.value.kind == "closed"


def test_rows_queued_at_exit_are_flushed(tmp_path: pathlib.Path) -> None:
    import subprocess
    import sys

    from conftest import CODES

    db = tmp_path / "exit.db"
    # One commit (one fsync) per row, so the writer is far behind when the
    # script ends; the handler registered first runs after fasten's (atexit
    # is last in, first out) and reports what was written by then.
    script = (
        "import atexit, fasten\n"
        "p = None\n"
        "atexit.register(lambda: print('written', p.queue_stats()['written']))\n"
        f"fasten.codes.load({str(CODES)!r})\n"
        f"p = fasten.init(env=False, service_id='s', node_id='n', audit_dsn={('sqlite:///' + str(db))!r}, stdout='none', audit_batch_size=1)\n"
        "for i in range(500):\n"
        "    fasten.emit('USER_CREATED', target=str(i))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, timeout=60, capture_output=True, text=True)
    assert out.stdout.strip() == "written 500", out.stdout + out.stderr
    report = fasten.verify(f"sqlite:///{db}")
    assert report["ok"] and report["nodes"][0]["rows"] == 500, report
