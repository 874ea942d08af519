"""The server's side of trace requests: its limits, request bodies and the
arguments of host questions, all checked before a collector is asked.

Bodies come as JSON (``curl -H 'Content-Type: application/json' -d '{...}'``)
or as an HTML form.  ``curl -d '{...}'`` without the header sends JSON
labelled as a form; a form body that starts with ``{`` is read as JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from ..core.tracespec import MAX_PATH, Limits

MAX_NAME = 200
MAX_HOST = 255
FORM_IGNORED = ("csrfmiddlewaretoken",)
_PREFIX = re.compile(r"[A-Za-z0-9_.$@:]{0,128}")  # with .fullmatch
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadRequest(ValueError):
    """A request the server refuses; ``errors`` maps fields to messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def server_limits() -> Limits:
    return Limits(max_duration_s=settings.WEBPROF_TRACE_MAX_DURATION_S,
                  max_frequency_hz=settings.WEBPROF_TRACE_MAX_FREQUENCY_HZ,
                  max_functions=settings.WEBPROF_TRACE_MAX_FUNCTIONS)


def max_per_host() -> int:
    return settings.WEBPROF_TRACE_MAX_PER_HOST


def read_body(request: HttpRequest) -> dict[str, Any]:
    """The request's fields as one dict (form lists stay lists)."""
    ctype = request.content_type or ""
    # A multipart body is streamed into request.POST; request.body is gone then.
    raw = b"" if ctype == "multipart/form-data" else request.body
    looks_json = ctype == "application/json" or (
        ctype in ("", "application/x-www-form-urlencoded", "text/plain")
        and raw.lstrip()[:1] == b"{")
    if looks_json:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest({"__all__": f"malformed JSON body: {exc}"}) from None
        if not isinstance(data, dict):
            raise BadRequest({"__all__": "the body must be a JSON object"})
        return data
    data = {}
    for key in request.POST:
        if key in FORM_IGNORED:
            continue
        values = request.POST.getlist(key)
        data[key] = values if len(values) > 1 else values[0]
    return data


def take_host_and_name(data: dict[str, Any], errors: dict[str, str]) -> tuple[str, str]:
    """Remove ``host`` and ``name`` from ``data`` (the rest is the spec); check them."""
    host, name = data.pop("host", None), data.pop("name", None)
    if not isinstance(host, str) or not host.strip():
        errors["host"] = "required: the name of a connected host"
        host = ""
    elif len(host) > MAX_HOST or _CONTROL.search(host):
        errors["host"] = f"a host name of at most {MAX_HOST} printable characters"
    if name is None:
        name = ""
    if not isinstance(name, str) or len(name.strip()) > MAX_NAME or _CONTROL.search(name):
        errors["name"] = f"a name of 1 to {MAX_NAME} printable characters"
        name = ""
    return host.strip(), name.strip()


# Host questions: URL word -> (collector query, the arguments it takes).
QUERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "processes": ("processes", ()),
    "symbols": ("symbols", ("binary", "prefix", "limit")),
    "usdt": ("usdt_probes", ("binary",)),
    "tracepoints": ("tracepoints", ("prefix", "limit")),
    "devices": ("devices", ()),
    "syscalls": ("syscalls", ()),
}


def query_args(what: str, params: Any) -> dict[str, Any]:
    """Check a host question's query-string arguments; raise BadRequest."""
    _query, allowed = QUERIES[what]
    errors: dict[str, str] = {}
    args: dict[str, Any] = {}
    for key in params:
        if key not in allowed:
            errors[key[:64]] = "unknown parameter"
    if "binary" in allowed:
        binary = params.get("binary", "")
        if not binary:
            errors["binary"] = "required: an absolute path"
        elif (len(binary) > MAX_PATH or _CONTROL.search(binary) or not binary.startswith("/")
              or ".." in binary.split("/")):
            errors["binary"] = "an absolute path without '..' or control characters"
        args["binary"] = binary
    if "prefix" in allowed:
        prefix = params.get("prefix", "")
        if not _PREFIX.fullmatch(prefix):
            errors["prefix"] = "letters, digits and _ . $ @ : only, at most 128"
        args["prefix"] = prefix
    if "limit" in allowed:
        limit = params.get("limit", "50")
        if not (limit.isdigit() and 1 <= int(limit) <= 200):
            errors["limit"] = "must be between 1 and 200"
        else:
            args["limit"] = int(limit)
    if errors:
        raise BadRequest(errors)
    return args


def field_errors(sentence: str, fields: tuple[str, ...]) -> dict[str, str]:
    """A collector's error sentence as per-field errors: "binary: not ELF"
    belongs to ``binary``; anything else to ``__all__``."""
    field, sep, rest = sentence.partition(":")
    if sep and field.strip() in fields:
        return {field.strip(): rest.strip()}
    return {"__all__": sentence}
