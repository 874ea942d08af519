"""Websocket URL routes (the HTTP ones are in webprof.urls)."""

from __future__ import annotations

from django.urls import path

from .consumers import CollectorConsumer, LiveConsumer

websocket_urlpatterns = [
    path("ws/collector/", CollectorConsumer.as_asgi()),
    path("ws/live/", LiveConsumer.as_asgi()),
]
