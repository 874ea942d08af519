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

import functools
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields
from itertools import islice
from typing import Any, ClassVar

PROTOCOL_VERSION = 1
# Largest counter, weight or id a message may carry: JavaScript's numbers
# hold integers exactly up to here, and the database's 64-bit columns hold
# sums of many of them.
MAX_SAFE_INT = 2**53 - 1


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
            f"protocol version {shown(version)} is not supported (want {PROTOCOL_VERSION})"
        )
    kind = data.get("type")
    cls = known.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {shown(kind)}")
    body = {k: v for k, v in data.items() if k not in ("v", "type")}
    _check_fields(kind, cls, body)
    _check_any_fields(kind, cls, body)
    try:
        message = cls(**body)
        message.validate()
    except ProtocolError:
        raise
    except (TypeError, ValueError, LookupError, ArithmeticError, RecursionError) as exc:
        # The checks above should make this unreachable; a peer must still see
        # the documented error rather than a server traceback.
        raise ProtocolError(f"{kind}: malformed message ({type(exc).__name__})") from None
    return message


def _json_object(data: str | bytes | dict[str, Any]) -> dict[str, Any]:
    if isinstance(data, (bytes, bytearray)):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"not UTF-8: {exc.reason}") from None
    if isinstance(data, str):
        data = _parse_json(data)
    elif isinstance(data, dict):
        _refuse_lone_surrogates(data)  # built in Python: no escapes to look for
    if not isinstance(data, dict):
        raise ProtocolError("a message must be a JSON object")
    return data


# JSON's escapes can spell a UTF-16 surrogate on its own ("\ud800"); text that
# arrived as UTF-8 cannot hold one otherwise.  Only such an escape makes the
# exact (slower) check worth running.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _parse_json(text: str) -> Any:
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except ProtocolError:
        raise
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc.msg} at character {exc.pos}") from None
    except RecursionError:
        raise ProtocolError("not JSON this server accepts: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer beyond Python's int-string limit
        raise ProtocolError(f"not JSON this server accepts: {_first_line(exc)}") from None
    if _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(data)
    return data


def _refuse_constant(name: str) -> Any:
    raise ProtocolError(f"not JSON: {name} is not a JSON number")


def _first_line(exc: BaseException) -> str:
    return str(exc).split(";")[0].split("\n")[0][:120]


def _refuse_lone_surrogates(data: Any) -> None:
    """Raise ProtocolError if any string (value or key) holds a lone UTF-16
    surrogate: it cannot be encoded as UTF-8, so every viewer it reached
    would fail to receive its messages.  Iterative: nesting is not bounded yet."""
    work = [data]
    while work:
        value = work.pop()
        if type(value) is str:
            if not _is_unicode(value):
                raise ProtocolError(f"string {_show(value)} holds a lone surrogate "
                                    "(\\ud800-\\udfff): strings must be valid Unicode")
        elif type(value) is dict:
            work.extend(value.keys())
            work.extend(value.values())
        elif type(value) is list:
            work.extend(value)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _show(text: str) -> str:
    return ascii(text[:40]) + ("..." if len(text) > 40 else "")


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters: error texts go back
    to the peer and into the log, and must not echo a megabyte."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} characters)"
    text = repr(value) if not isinstance(value, (list, dict)) or len(value) < 20 else \
        f"<{type(value).__name__} of {len(value)} entries>"
    return text if len(text) <= limit else text[:limit] + "..."


def shown_names(names: typing.Collection[str], limit: int = 10) -> str:
    """Sorted names as a list, at most ``limit`` of them, each cut short."""
    first = sorted(names)[:limit] if len(names) <= 10_000 else list(islice(names, limit))
    text = "[" + ", ".join(shown(n, 40) for n in first)
    return text + (f", ... {len(names)} in all]" if len(names) > limit else "]")


# Fields typed ``Any`` (trace specs, query arguments and answers) are passed on
# and re-encoded; their nesting is bounded so that re-encoding cannot recurse
# out of the stack.
MAX_ANY_DEPTH = 32


def _check_any_fields(kind: str, cls: type[Message], body: dict[str, Any]) -> None:
    for name in _any_fields(cls):
        if name in body and _depth_exceeds(body[name], MAX_ANY_DEPTH):
            raise ProtocolError(f"{kind}: field {name!r} is nested deeper than {MAX_ANY_DEPTH}")


@functools.cache
def _any_fields(cls: type[Message]) -> tuple[str, ...]:
    hints = typing.get_type_hints(cls)
    return tuple(f.name for f in fields(cls) if _holds_any(hints[f.name]))  # type: ignore[arg-type]


def _holds_any(hint: Any) -> bool:
    return hint is Any or any(_holds_any(arg) for arg in typing.get_args(hint))


def _depth_exceeds(value: Any, limit: int) -> bool:
    work = [(value, 1)]
    while work:
        item, depth = work.pop()
        if type(item) is dict:
            children: Any = item.values()
        elif type(item) is list:
            children = item
        else:
            continue
        if depth > limit:
            return True
        work.extend((child, depth + 1) for child in children)
    return False


def _check_fields(kind: str, cls: type[Message], body: dict[str, Any]) -> None:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    extra = set(body) - names
    if extra:
        raise ProtocolError(f"{kind}: unexpected fields {shown_names(extra)}")
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
        raise ProtocolError(f"{message_type}: unknown kind {shown(kind)}")


def check_health(message_type: str, health: dict[str, int], known: typing.Collection[str]) -> None:
    """Raise ProtocolError when ``health`` names a counter not in ``known``."""
    unknown = set(health) - set(known)
    if unknown:
        raise ProtocolError(f"{message_type}: unknown health counters {shown_names(unknown)}")


def check_range(kind: str, name: str, value: int, low: int, high: int) -> None:
    """Raise ProtocolError unless ``low <= value <= high``."""
    if not low <= value <= high:
        shown = value if value.bit_length() < 64 else "a number that large"
        raise ProtocolError(f"{kind}: {name} must be {low}..{high}, not {shown}")


def check_strings(kind: str, name: str, values: list[str], max_count: int,
                  max_chars: int) -> None:
    """Raise ProtocolError when ``values`` has more than ``max_count`` entries
    or one longer than ``max_chars`` characters."""
    if len(values) > max_count:
        raise ProtocolError(f"{kind}: {name} has {len(values)} entries, more than {max_count}")
    if values and max(map(len, values)) > max_chars:
        i = next(i for i, v in enumerate(values) if len(v) > max_chars)
        raise ProtocolError(f"{kind}: {name}[{i}] is longer than {max_chars} characters")


def check_counters(kind: str, counters: dict[str, int], high: int) -> None:
    """Raise ProtocolError naming the first counter outside ``0..high``."""
    for name, value in counters.items():
        if not 0 <= value <= high:
            shown = value if value.bit_length() < 64 else "a number that large"
            raise ProtocolError(f"{kind}: health counter {name!r} must be 0..{high}, "
                                f"not {shown}")
