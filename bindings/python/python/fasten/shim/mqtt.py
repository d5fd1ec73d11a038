"""Request ids over MQTT with paho-mqtt (2.x).

``publish(client, topic, payload)`` sends the ambient request id (or a fresh
one) twice, as the engine's MQTT helpers do: the v5 user property
``request-id`` (MQTT v5 clients) and, when the payload is a JSON object, its
key ``_req``. ``@handler("devices/+/setpoint")`` runs a message callback
with the message's id ambient and ``method=mqtt``; a hostile or missing id
is replaced by a fresh one, never trusted.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any, Callable, List, Optional, Tuple, TypeVar, Union

from .. import _native
from .._context import CURRENT, request_context

__all__ = ["USER_PROPERTY", "handler", "publish", "request_id_of"]

USER_PROPERTY: str = _native.MQTT_USER_PROPERTY

Payload = Union[bytes, bytearray, str, dict[str, Any], list[Any], None]
Callback = TypeVar("Callback", bound=Callable[[Any, Any, Any], Any])


def _is_v5(client: Any) -> bool:
    from paho.mqtt.client import MQTTv5

    return getattr(client, "protocol", getattr(client, "_protocol", None)) == MQTTv5


def publish(
    client: Any,
    topic: str,
    payload: Payload = None,
    qos: int = 0,
    retain: bool = False,
    properties: Any = None,
) -> Any:
    """``client.publish`` carrying the request id; returns paho's
    ``MQTTMessageInfo``. A dict or list payload is sent as JSON."""
    if payload is None:
        data = b""
    elif isinstance(payload, (dict, list)):
        data = json.dumps(payload, separators=(",", ":")).encode()
    elif isinstance(payload, str):
        data = payload.encode()
    else:
        data = bytes(payload)
    req = CURRENT.get()
    stamped, rid = _native.mqtt_stamp(data, req.request_id if req is not None else None)
    if _is_v5(client):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        if properties is None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        else:
            # A copy whose user properties lose any old request-id.
            props = copy.copy(properties)
            kept = [(k, v) for k, v in getattr(properties, "UserProperty", []) if k != USER_PROPERTY]
            object.__setattr__(props, "UserProperty", kept)
        props.UserProperty = (USER_PROPERTY, rid)
        return client.publish(topic, stamped, qos=qos, retain=retain, properties=props)
    return client.publish(topic, stamped, qos=qos, retain=retain)


def request_id_of(message: Any) -> Tuple[str, str]:
    """``(id, source)`` of a paho ``MQTTMessage``: source is
    ``user_property``, ``payload`` or ``minted``."""
    props = getattr(message, "properties", None)
    user: List[Tuple[str, str]] = list(getattr(props, "UserProperty", None) or []) if props is not None else []
    return _native.mqtt_request_id_of(message.topic, bytes(message.payload), user)


def handler(topic_filter: str) -> Callable[[Callback], Callback]:
    """Decorates a paho ``on_message(client, userdata, message)`` callback:
    it runs only for topics matching ``topic_filter``, with the message's
    request id ambient. Use it as ``client.on_message`` or with
    ``client.message_callback_add(wrapped.topic_filter, wrapped)``."""

    def decorate(fn: Callback) -> Callback:
        from paho.mqtt.client import topic_matches_sub

        @functools.wraps(fn)
        def on_message(client: Any, userdata: Any, message: Any) -> Optional[Any]:
            if not topic_matches_sub(topic_filter, message.topic):
                return None
            rid, _source = request_id_of(message)
            with request_context(rid, method="mqtt"):
                return fn(client, userdata, message)

        on_message.topic_filter = topic_filter  # type: ignore[attr-defined]
        return on_message  # type: ignore[return-value]

    return decorate
