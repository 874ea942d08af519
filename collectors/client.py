"""The collector's websocket session: connect, say hello, stream deltas, reconnect.

:class:`Uplink` sends from an :class:`Outbox`, a bounded buffer of encoded
messages.  The collection loop and the trace desk keep filling it while the
server is away; up to ``buffer_intervals`` are kept (oldest dropped first,
and counted) and sent after reconnecting.
Reconnects back off exponentially (0.5 s doubling to 10 s).  A close with
code 4001 means the token is wrong: retrying cannot help, so it stops with
:class:`BadToken`.  A ``wss://`` server whose certificate does not verify
(against ``--ca-file``, else the system's trust store) stops it with
:class:`BadCertificate` for the same reason.

The server may send ``collector.config``; the uplink decodes (and so
validates) it and hands it to ``on_config``.  ``trace.start``,
``trace.cancel`` and ``collector.query`` go to ``on_trace`` (the runner's
trace desk); ``on_disconnect`` is called each time an established
connection is lost, so running traces can be stopped.  After the runner applied it,
:meth:`Uplink.set_hello` queues the new ``collector.hello``, which is also
what a reconnect says first.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from collectors.console import log
from webprof.core.protocol import (
    CLOSE_BAD_TOKEN,
    MAX_MESSAGE_BYTES,
    CollectorConfig,
    CollectorHello,
    Error,
    ProtocolError,
    decode,
    encode,
)
from webprof.core.trace_messages import CollectorQuery, TraceCancel, TraceStart

# A server that hangs without closing the connection is noticed within about
# twice this (a ping, then its timeout); running traces are then detached.
# The websockets default of 20 s + 20 s kept probes attached for ~41 s.
PING_EVERY_S = 10

BUFFER_INTERVALS = 60  # messages kept while the server is away
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0


class BadToken(Exception):
    """The server refused the collector token."""


class BadCertificate(Exception):
    """The server's TLS certificate did not verify; the message says how to fix it."""


# The context every wss:// Uplink verifies with unless given its own: the
# runner sets it once from --ca-file (see use_ca_file).  None: the system's
# trust store, websockets' default.
_default_tls: ssl.SSLContext | None = None


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A client context that trusts only ``ca_file`` (PEM), else the system store.

    ValueError names the file and what is wrong with it.
    """
    if not ca_file:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:  # missing, unreadable, or no PEM certificate in it
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"--ca-file {ca_file}: cannot load a CA certificate: {detail}") from None


def use_ca_file(ca_file: str | None) -> None:
    """Verify every ``wss://`` server of this process against ``ca_file``."""
    global _default_tls
    _default_tls = tls_context(ca_file) if ca_file else None


def certificate_problem(url: str, exc: ssl.SSLCertVerificationError) -> str:
    """One line: what failed to verify and how to fix it."""
    what = exc.verify_message or exc.reason or str(exc)
    if exc.verify_code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
        fix = ("connect with --server using a name the certificate was issued for, "
               "or reissue the certificate for this name")
    else:
        fix = ("pass --ca-file PATH with the CA certificate (PEM) that signed the "
               "server's certificate, or install that CA in the system's trust store")
    return f"the TLS certificate of {url} was not accepted ({what}); {fix}"


def collector_url(server: str) -> str:
    """``http://h:8000`` / ``ws://h:8000/`` -> ``ws://h:8000/ws/collector/``."""
    url = server.strip().rstrip("/")
    for old, new in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(old):
            url = new + url[len(old):]
    if not url.startswith(("ws://", "wss://")):
        url = "ws://" + url
    return url + "/ws/collector/"


class Outbox:
    """Encoded messages waiting to be sent, at most ``buffer_intervals`` of them.

    Its own object so that what produces messages (the trace desk) can be
    built before the :class:`Uplink` that sends them and calls it back.
    """

    def __init__(self, buffer_intervals: int = BUFFER_INTERVALS) -> None:
        self.buffer: collections.deque[str] = collections.deque()
        self.buffer_intervals = buffer_intervals
        self.dropped = 0
        self.ready = asyncio.Event()  # set when buffer has something to send

    def push(self, text: str) -> None:
        """Queue one encoded message; drop the oldest when the buffer is full."""
        if len(self.buffer) >= self.buffer_intervals:
            self.buffer.popleft()
            self.dropped += 1
            log(f"server unreachable: buffer of {self.buffer_intervals} intervals full, "
                f"dropped {self.dropped} interval(s) so far")
        self.buffer.append(text)
        self.ready.set()


class Uplink:
    def __init__(self, url: str, token: str, hello: CollectorHello,
                 buffer_intervals: int = BUFFER_INTERVALS,
                 on_config: Callable[[CollectorConfig], None] | None = None,
                 on_trace: Callable[[Any], None] | None = None,
                 on_disconnect: Callable[[], None] | None = None,
                 outbox: Outbox | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.url = url
        # Only a wss:// URL takes an SSL context (websockets refuses one for ws://).
        self.tls = (tls or _default_tls) if url.startswith("wss://") else None
        self.on_config = on_config
        self.on_trace = on_trace  # TraceStart, TraceCancel, CollectorQuery
        self.on_disconnect = on_disconnect
        self.token = token
        self.hello = hello
        self.outbox = outbox if outbox is not None else Outbox(buffer_intervals)
        self.sent = 0

    def push(self, text: str) -> None:
        self.outbox.push(text)

    @property
    def buffer(self) -> collections.deque[str]:
        return self.outbox.buffer

    @property
    def dropped(self) -> int:
        return self.outbox.dropped

    def set_hello(self, hello: CollectorHello) -> None:
        """What runs changed: tell the server now, and say so first on reconnect."""
        self.hello = hello
        self.push(encode(hello))

    async def run(self, finished: asyncio.Event) -> None:
        """Connect and send until ``finished`` is set and the buffer is flushed.

        Raises :class:`BadToken` on close code 4001 (or HTTP 401/403) and
        :class:`BadCertificate` when the server's certificate does not verify.
        """
        tls = {"ssl": self.tls} if self.tls is not None else {}
        delay, attempt = BACKOFF_FIRST_S, 0
        while True:
            connected = False
            try:
                async with connect(self.url, additional_headers={
                        "Authorization": f"Bearer {self.token}"},
                        max_size=MAX_MESSAGE_BYTES, proxy=None, open_timeout=5,
                        close_timeout=2, ping_interval=PING_EVERY_S,
                        ping_timeout=PING_EVERY_S, **tls) as ws:
                    await ws.send(encode(self.hello))
                    connected = True
                    if attempt:
                        log(f"connected to {self.url} after {attempt} attempt(s); "
                            f"sending {len(self.buffer)} buffered interval(s)")
                    delay, attempt = BACKOFF_FIRST_S, 0
                    if await self._stream(ws, finished):
                        return
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == CLOSE_BAD_TOKEN:
                    raise BadToken() from None
                reason = f"connection closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
            except InvalidStatus as exc:
                if exc.response.status_code in (401, 403):
                    raise BadToken() from None
                reason = f"server answered HTTP {exc.response.status_code}"
            except InvalidURI as exc:
                raise ValueError(f"bad server URL {self.url!r}: {exc}") from None
            except ssl.SSLCertVerificationError as exc:
                raise BadCertificate(certificate_problem(self.url, exc)) from None
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = str(exc) or type(exc).__name__
            if connected and self.on_disconnect is not None:
                self.on_disconnect()
            if finished.is_set():
                log(f"stopping: {reason}; {len(self.buffer)} interval(s) not sent")
                return
            attempt += 1
            log(f"{reason}; reconnecting in {delay:g} s (attempt {attempt})")
            try:
                await asyncio.wait_for(finished.wait(), timeout=delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _stream(self, ws: ClientConnection, finished: asyncio.Event) -> bool:
        """Send buffered messages as they come; True once finished and flushed."""
        closed = asyncio.ensure_future(self._read_until_closed(ws))
        try:
            while True:
                while self.buffer:
                    await ws.send(self.buffer[0])
                    self.buffer.popleft()  # only after the send succeeded
                    self.sent += 1
                if finished.is_set():
                    await ws.close()
                    return True
                self.outbox.ready.clear()
                waiters = {asyncio.ensure_future(self.outbox.ready.wait()),
                           asyncio.ensure_future(finished.wait()), closed}
                done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for task in pending - {closed}:
                    task.cancel()
                if closed in done:
                    closed.result()  # re-raises ConnectionClosed with its code
        finally:
            closed.cancel()

    async def _read_until_closed(self, ws: ClientConnection) -> None:
        """Read (and log) server messages so a close frame is seen at once."""
        async for message in ws:
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            self._handle(text)
        await ws.wait_closed()
        raise ConnectionClosed(ws.protocol.close_rcvd, ws.protocol.close_sent)

    def _handle(self, text: str) -> None:
        """One message from the server: a config to apply or an error to log."""
        try:
            message = decode(text)
        except ProtocolError as exc:
            log(f"server sent a message that was refused: {exc}")
            self.push(encode(Error(code="bad_message", message=str(exc)[:500])))
            return
        if isinstance(message, CollectorConfig) and self.on_config is not None:
            log(f"server asks to run: {', '.join(message.collectors) or 'nothing'}")
            self.on_config(message)
        elif (isinstance(message, (TraceStart, TraceCancel, CollectorQuery))
              and self.on_trace is not None):
            self.on_trace(message)
        elif isinstance(message, Error):
            log(f"server reported {message.code}: {message.message[:300]}")
        else:
            log(f"ignored unexpected {message.type} from the server")
