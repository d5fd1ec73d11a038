"""paho-mqtt against the real Mosquitto: a publish inside a request carries
its id, the handler restores it, and audit rows emitted there share it."""

from __future__ import annotations

import json
import pathlib
import queue
import uuid

import pytest

import fasten
import fasten.shim.mqtt
from conftest import need_server

import paho.mqtt.client as paho


def connect(client_id: str, protocol: int) -> "paho.Client":
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    client.connect("127.0.0.1", 1883)
    return client


@pytest.mark.parametrize("protocol", ["v5", "v311"])
def test_round_trip_keeps_the_id(db: pathlib.Path, protocol: str) -> None:
    need_server("127.0.0.1", 1883, "Mosquitto")
    proto = paho.MQTTv5 if protocol == "v5" else paho.MQTTv311
    topic_root = f"pytest/{uuid.uuid4().hex[:8]}"
    got: "queue.Queue[tuple[str | None, str, dict]]" = queue.Queue()

    @fasten.shim.mqtt.handler(f"{topic_root}/+/setpoint")
    def on_setpoint(client: object, userdata: object, msg: object) -> None:
        row = fasten.emit_durable("USER_UPDATED", target="line-1")
        got.put((fasten.current_request_id(), row["method"], json.loads(msg.payload)))  # type: ignore[attr-defined]

    sub = connect(f"sub-{uuid.uuid4().hex[:6]}", proto)
    sub.on_message = on_setpoint
    subscribed: "queue.Queue[bool]" = queue.Queue()
    sub.on_subscribe = lambda *a: subscribed.put(True)
    sub.loop_start()
    pub = connect(f"pub-{uuid.uuid4().hex[:6]}", proto)
    pub.loop_start()
    try:
        sub.subscribe(f"{topic_root}/#", qos=1)
        subscribed.get(timeout=10)
        with fasten.request_context(id="req-mqtt-1"):
            fasten.shim.mqtt.publish(pub, f"{topic_root}/line-1/setpoint", {"celsius": 21.5}, qos=1).wait_for_publish(10)
        # A message that does not match the handler's filter is ignored.
        fasten.shim.mqtt.publish(pub, f"{topic_root}/line-1/other", b"\x00binary", qos=1).wait_for_publish(10)
        # A hostile id in the payload is replaced, never trusted.
        pub.publish(f"{topic_root}/line-2/setpoint", json.dumps({"_req": "bad id\n"}), qos=1).wait_for_publish(10)
        rid, method, payload = got.get(timeout=10)
        assert (rid, method) == ("req-mqtt-1", "mqtt")
        assert payload == {"_req": "req-mqtt-1", "celsius": 21.5}
        rid2, _, _ = got.get(timeout=10)
        assert rid2 is not None and len(rid2) == 32 and rid2 != "req-mqtt-1"
        assert got.empty()
    finally:
        pub.loop_stop()
        sub.loop_stop()
        pub.disconnect()
        sub.disconnect()


def test_request_id_of_prefers_the_user_property() -> None:
    class Msg:
        topic = "t/1"
        payload = b'{"_req":"from-payload"}'
        properties = type("P", (), {"UserProperty": [("request-id", "from-prop")]})()

    assert fasten.shim.mqtt.request_id_of(Msg()) == ("from-prop", "user_property")
    Msg.properties = type("P", (), {"UserProperty": [("request-id", "x" * 200)]})()
    assert fasten.shim.mqtt.request_id_of(Msg()) == ("from-payload", "payload")
