"""ASGI entry point: ``daphne webprof.asgi:application``.

HTTP goes to Django behind ASGIStaticFilesHandler, which serves the static
files straight from the finders (the project's static/ and plotly's bundled
plotly.min.js) so the embedded server needs no collectstatic and no network.

Websockets: the collector endpoint authenticates with its bearer token.  The
browser endpoint /ws/live/ gets the session user (AuthMiddlewareStack), so a
page on another site could open it with the user's cookie: Channels'
AllowedHostsOriginValidator refuses the handshake (403) when the Origin
header names a host outside ``ALLOWED_HOSTS``.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webprof.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import path  # noqa: E402

from .routing import BROWSER_PATH, COLLECTOR_PATH, browser_consumer, collector_consumer  # noqa: E402


def browser_origin_checked(app: Any) -> Any:
    """``app`` behind AllowedHostsOriginValidator for every browser.

    Browsers always send Origin on a websocket handshake (RFC 6455 4.1), and
    that is what a cross-site page cannot forge.  A request without one is
    not from a browser: it can carry a cookie only if its owner gave it one,
    so it goes on to the login check (the e2e tests' clients are such).
    """

    async def route(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if any(name == b"origin" for name, _ in scope.get("headers", [])):
            # Built per handshake: it copies ALLOWED_HOSTS when built, and the
            # setting must be the one in force now (tests change it).
            return await AllowedHostsOriginValidator(app)(scope, receive, send)
        return await app(scope, receive, send)

    return route


application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": URLRouter([
            path(COLLECTOR_PATH, collector_consumer),
            path(BROWSER_PATH, browser_origin_checked(AuthMiddlewareStack(browser_consumer))),
        ]),
    }
)
