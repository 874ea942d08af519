"""ASGI entry point: ``daphne webprof.asgi:application``.

HTTP goes to Django behind ASGIStaticFilesHandler, which serves the static
files straight from the finders (the project's static/ and plotly's bundled
plotly.min.js) so the embedded server needs no collectstatic and no network.
Websockets get the session user (AuthMiddlewareStack) for /ws/live/; the
collector endpoint authenticates with its bearer token instead.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webprof.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from .routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
