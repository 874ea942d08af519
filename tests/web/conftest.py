"""Fixtures for in-process Django + Channels tests.

Each test gets an empty hub and an empty in-memory channel layer: the layer's
asyncio queues belong to one event loop, and pytest-asyncio gives every test
its own loop.
"""

from __future__ import annotations

import pytest
from channels.layers import get_channel_layer
from django.conf import settings
from django.test import Client

from webprof.hub import configure_hub


@pytest.fixture(autouse=True)
async def fresh_hub_and_layer():
    configure_hub(settings.WEBPROF_KEEP_INTERVALS, settings.WEBPROF_MAX_NODES)
    await get_channel_layer().flush()
    yield
    await get_channel_layer().flush()


@pytest.fixture
def session_cookie(django_user_model) -> bytes:
    """A logged-in session, as the Cookie header a browser would send."""
    user = django_user_model.objects.create_user("alice", password="s3cret-pass")
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()




@pytest.fixture
def logged_in(django_user_model) -> Client:
    """A test client logged in as an ordinary user, "bob"."""
    user = django_user_model.objects.create_user("bob", password="s3cret-pass")
    client = Client()
    client.force_login(user)
    return client
