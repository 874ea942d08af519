"""The shape every wire message shares: base class, error, encoding and decoding.

Messages travel as JSON objects ``{"v": PROTOCOL_VERSION, "type": ..., ...}``.
A message class is a frozen dataclass with a dotted ``type`` that maps onto a
Channels handler name (``live.interval`` -> ``live_interval``).
:func:`decode_with` rejects unknown types, missing or extra fields, wrong
types and other versions with one exception, :class:`ProtocolError`.

The message modules (``protocol.py``, ``trace_messages.py``) import only
this one; ``protocol.decode`` names every known message class explicitly.
Pure Python: imports neither Django nor bcc.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any, ClassVar

PROTOCOL_VERSION = 1


class ProtocolError(ValueError):
    """A message does not follow the protocol.  ``str()`` says why."""


class Message:
    type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose: asdict() would deep-copy megabytes of tree lists.
        body = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return {"v": PROTOCOL_VERSION, "type": self.type, **body}

    def validate(self) -> None:
        """Checks beyond field types; overridden where a message needs them."""


def type_map(*classes: type[Message]) -> dict[str, type[Message]]:
    """``{cls.type: cls}``; a type named twice is a programming error."""
    found: dict[str, type[Message]] = {}
    for cls in classes:
        if cls.type in found:
            raise TypeError(f"two message classes share the type {cls.type!r}")
        found[cls.type] = cls
    return found


def handler_name(message_type: str) -> str:
    """Channels handler for a message type: ``live.interval`` -> ``live_interval``."""
    return message_type.replace(".", "_")


def encode(message: Message) -> str:
    return json.dumps(message.to_dict(), separators=(",", ":"), ensure_ascii=False)


def decode_with(known: Mapping[str, type[Message]], data: str | bytes | dict[str, Any]) -> Message:
    """Parse and validate one message of a type in ``known``; raise
    :class:`ProtocolError` if it is bad."""
    data = _json_object(data)
    version = data.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {version!r} is not supported (want {PROTOCOL_VERSION})"
        )
    kind = data.get("type")
    cls = known.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {kind!r}")
    body = {k: v for k, v in data.items() if k not in ("v", "type")}
    _check_fields(kind, cls, body)
    message = cls(**body)
    message.validate()
    return message


def _json_object(data: str | bytes | dict[str, Any]) -> dict[str, Any]:
    if isinstance(data, (bytes, bytearray)):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"not UTF-8: {exc.reason}") from None
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"not JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(data, dict):
        raise ProtocolError("a message must be a JSON object")
    return data


def _check_fields(kind: str, cls: type[Message], body: dict[str, Any]) -> None:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    extra = set(body) - names
    if extra:
        raise ProtocolError(f"{kind}: unexpected fields {sorted(extra)}")
    required = {
        f.name
        for f in fields(cls)  # type: ignore[arg-type]
        if f.default is MISSING and f.default_factory is MISSING
    }
    missing = required - set(body)
    if missing:
        raise ProtocolError(f"{kind}: missing fields {sorted(missing)}")
    for name, value in body.items():
        if not _matches(value, hints[name]):
            raise ProtocolError(f"{kind}: field {name!r} has the wrong type")


def _matches(value: Any, hint: Any) -> bool:
    """Check a JSON value against a (simple) type hint, without coercion."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    scalar = _SCALARS.get(hint)
    if scalar is not None:
        return type(value) in scalar
    if origin is list:
        return _matches_list(value, hint)
    if origin is dict:
        return _matches_dict(value, hint)
    return False


# Exact JSON types per scalar hint: bool is not an int here, an int is a float.
_SCALARS: dict[Any, tuple[type, ...]] = {bool: (bool,), int: (int,), float: (int, float),
                                         str: (str,)}


def _matches_list(value: Any, hint: Any) -> bool:
    (arg,) = typing.get_args(hint) or (Any,)
    if type(value) is not list:
        return False
    if arg is int:  # the common, large case: check quickly
        return all(type(x) is int for x in value)
    return all(_matches(x, arg) for x in value)


def _matches_dict(value: Any, hint: Any) -> bool:
    _key_t, val_t = typing.get_args(hint) or (Any, Any)
    if type(value) is not dict:
        return False
    if val_t is list:
        return all(type(v) is list for v in value.values())
    return all(_matches(v, val_t) for v in value.values())


def check_non_negative(kind: str, **values: int) -> None:
    """Raise ProtocolError naming the first of ``values`` that is negative."""
    for name, value in values.items():
        if value < 0:
            raise ProtocolError(f"{kind}: {name} must not be negative")


def check_kind(message_type: str, kind: str, allowed: typing.Container[str]) -> None:
    """Raise ProtocolError unless ``kind`` is in ``allowed``."""
    if kind not in allowed:
        raise ProtocolError(f"{message_type}: unknown kind {kind!r}")


def check_health(message_type: str, health: dict[str, int], known: typing.Collection[str]) -> None:
    """Raise ProtocolError when ``health`` names a counter not in ``known``."""
    unknown = set(health) - set(known)
    if unknown:
        raise ProtocolError(f"{message_type}: unknown health counters {sorted(unknown)}")
