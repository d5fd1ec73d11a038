"""Integrations: ``fasten.shim.http`` (ASGI and WSGI middleware) and
``fasten.shim.mqtt`` (paho-mqtt)."""
