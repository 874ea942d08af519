"""Websocket URL routes (the HTTP ones are in webprof.urls).

Two kinds of peer, two routes: collectors authenticate with a bearer token
and send no Origin; browsers authenticate with their session cookie, so
their route is wrapped (webprof/asgi.py) in the session middleware and an
Origin check against ``ALLOWED_HOSTS``.
"""

from __future__ import annotations

from .consumers import CollectorConsumer, LiveConsumer

COLLECTOR_PATH = "ws/collector/"
BROWSER_PATH = "ws/live/"

collector_consumer = CollectorConsumer.as_asgi()
browser_consumer = LiveConsumer.as_asgi()
