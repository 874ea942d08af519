"""Sessions to files and back: folded stacks, speedscope JSON, pprof.

Used by the session page's download links and by ``webprof export`` /
``webprof import``, so both produce the same bytes.
"""

from __future__ import annotations

import codecs
import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..core.flame import FoldedFormatError
from ..core.formats import MAX_FOLDED_LINE_CHARS, parse_folded_any, to_pprof, to_speedscope
from ..core.kinds import STACK, unit
from .models import Session
from .store import SessionReader, save_tree

FORMATS = ("folded", "speedscope", "pprof")
MAX_IMPORT_BYTES = 64 * 1024 * 1024
IMPORT_CHUNK_BYTES = 1024 * 1024


class ExportError(ValueError):
    """An export or import request that cannot be honoured; says why."""


@dataclass
class Exported:
    data: bytes
    content_type: str
    filename: str


def export_session(session: Session, fmt: str, kind: str | None = None,
                   from_ms: int | None = None, to_ms: int | None = None) -> Exported:
    """One profile kind of a session (the first it has, by default), over a
    range in unix ms (the whole session by default)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    kinds = [k for k in session.kinds if k in STACK]
    if kind is None:
        if not kinds:
            raise ExportError("this session has no profile (only latency histograms)")
        kind = kinds[0]
    elif kind not in kinds:
        raise ExportError(f"this session has no {kind!r} profile; it has: "
                          f"{', '.join(kinds) or 'none'}")
    if from_ms is not None and to_ms is not None and to_ms <= from_ms:
        raise ExportError("the range must end after it starts")
    result = SessionReader(session).tree(kind, from_ms, to_ms)
    weight_unit = unit(kind)
    base = _slug(session.name) or f"session-{session.pk}"
    if fmt == "folded":
        return Exported(result.tree.to_folded().encode("utf-8"), "text/plain; charset=utf-8",
                        f"{base}.{kind}.folded")
    if fmt == "speedscope":
        doc = to_speedscope(result.tree, f"{session.name} ({kind})",
                            "microseconds" if weight_unit == "us" else "none")
        return Exported(json.dumps(doc).encode("utf-8"), "application/json",
                        f"{base}.{kind}.speedscope.json")
    sample_type = {"samples": ("samples", "count"), "us": ("off_cpu", "microseconds"),
                   "hits": ("hits", "count")}[weight_unit]
    return Exported(to_pprof(result.tree, sample_type), "application/octet-stream",
                    f"{base}.{kind}.pb.gz")


def import_folded(data: bytes | BinaryIO, name: str, owner: Any = None,
                  host: str = "") -> Session:
    """A new session from folded stacks; nothing is created if a line is bad.

    ``data`` is the file's bytes or a binary file object (an upload), read in
    chunks of IMPORT_CHUNK_BYTES: reading stops with ExportError as soon as
    MAX_IMPORT_BYTES are passed, and lines are parsed as they arrive."""
    if not name.strip():
        raise ExportError("give the imported session a name")
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    size = getattr(stream, "size", None)  # an upload knows its size: refuse before reading
    if isinstance(size, int) and size > MAX_IMPORT_BYTES:
        raise ExportError(too_big_message())
    try:
        tree = parse_folded_any(folded_lines(stream))
    except FoldedFormatError as exc:
        raise ExportError(str(exc)) from None
    if not tree.total:
        raise ExportError("the file has no stacks with a count above zero")
    return save_tree(tree, int(time.time() * 1000), name=name.strip()[:200],
                     owner=owner if getattr(owner, "is_authenticated", False) else None,
                     host=host, source="import")


# What str.splitlines() splits on.
_LINE_ENDS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def too_big_message() -> str:
    return f"the file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB"


def folded_lines(stream: BinaryIO, limit: int | None = None,
                 max_line_chars: int = MAX_FOLDED_LINE_CHARS) -> Iterator[str]:
    """The text lines of a UTF-8 byte stream, without their line ends, read
    chunk by chunk.  Raises ExportError past ``limit`` bytes, on bytes that
    are not UTF-8, and on a line longer than ``max_line_chars`` before it has
    been read whole."""
    limit = MAX_IMPORT_BYTES if limit is None else limit
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    line_no = 0
    pending = ""
    while True:
        chunk = stream.read(IMPORT_CHUNK_BYTES)
        final = not chunk
        if len(chunk) + offset > limit:
            raise ExportError(too_big_message())
        try:
            pending += decoder.decode(chunk, final=final)
        except UnicodeDecodeError as exc:
            raise ExportError(f"the file is not UTF-8 text (byte {offset + exc.start} is "
                              "not)") from None
        offset += len(chunk)
        lines = pending.splitlines(keepends=True)
        pending = ""
        # The last piece may go on in the next chunk, "\r" too (of a "\r\n").
        if lines and not final and (lines[-1][-1] not in _LINE_ENDS or lines[-1][-1] == "\r"):
            pending = lines.pop()
        for line in lines:
            line_no += 1
            yield line[:-2] if line.endswith("\r\n") else line.rstrip(_LINE_ENDS)
        if len(pending) > max_line_chars:
            raise ExportError(f"line {line_no + 1}: line longer than {max_line_chars} "
                              "characters")
        if final:
            return


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:80]
