"""The one registry of collector connections in this server process.

Per host it holds the open collector connections (their Channels channel
names, newest last), the last ``collector.hello`` (what the host runs; kept
after a disconnect so the host page can still say what ran), the last
errors the collector reported and when it was last heard from.  The hub,
the trace broker, the pages and the API all read this one registry.

Unlike the hub's streams, which only the hub's worker thread touches, this
registry is read from the event loop, from request threads (sync views) and
from database threads, so every access takes its lock.  Each operation is a
few dict lookups; none blocks.  Imports neither Django nor bcc.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from .core.clock import now_ms
from .core.protocol import CollectorHello
from .core.view_messages import HostStatus

MAX_ERRORS = 10  # errors kept per host for the host page


@dataclass
class HostLink:
    """What this process knows of one host's collectors."""

    host: str
    channels: list[str] = field(default_factory=list)  # open connections, newest last
    hello: CollectorHello | None = None
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_ERRORS))
    last_seen_ms: int = 0


@dataclass(frozen=True)
class HostView:
    """A consistent copy of one host's link, for a page."""

    connected: bool
    hello: CollectorHello | None
    errors: tuple[str, ...]
    last_seen_ms: int


class HostRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._links: dict[str, HostLink] = {}

    def _link(self, host: str) -> HostLink:
        link = self._links.get(host)
        if link is None:
            link = self._links[host] = HostLink(host)
        return link

    # -- a collector's connection -----------------------------------------------
    def connected(self, hello: CollectorHello, channel: str) -> None:
        with self._lock:
            link = self._link(hello.host)
            link.channels.append(channel)
            link.hello = hello
            link.last_seen_ms = now_ms()

    def hello_again(self, hello: CollectorHello) -> None:
        """A connected collector changed what it runs (after collector.config)."""
        with self._lock:
            self._link(hello.host).hello = hello

    def seen(self, host: str) -> None:
        with self._lock:
            self._link(host).last_seen_ms = now_ms()

    def error(self, host: str, text: str) -> None:
        with self._lock:
            self._link(host).errors.append(text)

    def disconnected(self, host: str, channel: str) -> bool:
        """Forget one connection; True when the host still has another."""
        with self._lock:
            link = self._link(host)
            if channel in link.channels:
                link.channels.remove(channel)
            link.last_seen_ms = now_ms()
            return bool(link.channels)

    # -- reading ----------------------------------------------------------------
    def channel_for(self, host: str) -> str | None:
        """The connection that gets new traces and questions: the host's newest."""
        with self._lock:
            link = self._links.get(host)
            return link.channels[-1] if link and link.channels else None

    def is_connected(self, host: str) -> bool:
        return self.channel_for(host) is not None

    def running(self, host: str) -> list[str] | None:
        """What the host's collector last said runs (None: never said hello here)."""
        with self._lock:
            link = self._links.get(host)
            return list(link.hello.collectors) if link and link.hello else None

    def interval_ms(self, host: str) -> int | None:
        """The collector's drain interval from its last hello (None: never said hello)."""
        with self._lock:
            link = self._links.get(host)
            return link.hello.interval_ms if link and link.hello else None

    def view(self, host: str) -> HostView:
        with self._lock:
            link = self._links.get(host) or HostLink(host)
            return HostView(bool(link.channels), link.hello, tuple(link.errors),
                            link.last_seen_ms)

    def status(self, host: str) -> HostStatus:
        """The ``host.status`` message browsers get."""
        view = self.view(host)
        return HostStatus(host=host, connected=view.connected, last_seen_ms=view.last_seen_ms)
