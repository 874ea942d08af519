"""Host names as collectors report them, checked the same way on both sides.

A host name ends up in URLs (``/hosts/<name>/``), group names and file
names, so it is held to DNS-like rules: ASCII letters, digits, ``-`` and
``_`` in dot-separated labels of 1..63 characters, 253 characters in all
(RFC 1035's limits; ``_`` is allowed because real machine names use it).
The server's ingest refuses any other name; ``webprof collect --name``
refuses it before connecting.

Pure Python: imports neither Django nor bcc.
"""

from __future__ import annotations

import re

MAX_HOST_NAME = 253
MAX_LABEL = 63
_LABEL = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


def host_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid host name, or None when it is."""
    if not name:
        return "host name is empty"
    if len(name) > MAX_HOST_NAME:
        return f"host name is {len(name)} characters long, at most {MAX_HOST_NAME} allowed"
    for label in name.split("."):
        if not label:
            return f"host name {name!r} has an empty label (a leading, trailing or double dot)"
        if len(label) > MAX_LABEL:
            return f"host name {name!r} has a label over {MAX_LABEL} characters"
        if not _LABEL.fullmatch(label):
            return (f"host name {name!r} may hold only letters, digits, '-', '_' and '.' "
                    "(ASCII)")
    return None
