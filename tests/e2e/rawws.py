"""A websocket client over a raw TCP stream, for tests that must control
exactly when bytes go out: frames in the same write as the upgrade request,
or right after the 101 without reading anything else.

``websockets`` cannot do either (it waits for the handshake and reads the
close frame), so this speaks RFC 6455 by hand: masked client frames, a
parser for the server's unmasked ones.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct

OP_TEXT, OP_CLOSE = 0x1, 0x8


def frame(text: str, opcode: int = OP_TEXT) -> bytes:
    """One final, masked client frame."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def upgrade_request(port: int, path: str, headers: dict[str, str]) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawSocket:
    """One TCP connection: the handshake answer, then the server's frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawSocket:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def status(self, timeout: float = 5) -> int:
        """The HTTP status of the handshake answer (its headers are consumed)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        return int(head.split(b" ", 2)[1])

    async def frames(self, timeout: float = 5) -> tuple[list[str], int | None]:
        """The text frames until the server's close, and its close code
        (None when the connection ended without a close frame)."""
        texts: list[str] = []
        try:
            while True:
                first, second = await asyncio.wait_for(self.reader.readexactly(2), timeout)
                size = second & 0x7F
                if size == 126:
                    size = struct.unpack("!H", await self.reader.readexactly(2))[0]
                elif size == 127:
                    size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
                payload = await self.reader.readexactly(size)
                opcode = first & 0x0F
                if opcode == OP_CLOSE:
                    return texts, struct.unpack("!H", payload[:2])[0] if payload else 1005
                if opcode == OP_TEXT:
                    texts.append(payload.decode())
        except asyncio.IncompleteReadError:
            return texts, None

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass
