"""What a targeted trace may ask for, checked the same way on both sides.

The server validates a request with :func:`parse_spec` before it sends
``trace.start``; the collector validates the same dict again before it loads
anything (a server is trusted, not blindly).  This module checks shape,
types, ranges and characters only.  Whether a pid, binary, symbol, syscall,
device, probe or tracepoint exists is for the collector to say, because only
it sees the host.

Nothing here is ever pasted into BPF C: numbers become ``-D`` constants,
names are handed to bcc's attach calls or resolved to addresses and ids.
The character rules below are still strict, so that a value that reaches a
log line, a path lookup or an attach call cannot smuggle quotes, separators,
newlines or ``..`` components.  Pure Python: imports neither Django nor bcc.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .kinds import KINDS

# Kind -> (label, the fields it uses besides duration and target), from the
# kind table: every kind can run as a trace.
TRACE_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    k.name: (k.trace_title, k.trace_fields) for k in KINDS}
TARGETS = ("system", "pid", "comm", "cgroup")
OPTION_FIELDS = ("frequency_hz", "min_block_us", "syscalls", "device", "binary", "symbols",
                 "probe", "tracepoint")
PID_MAX = 4_194_304  # the kernel's PID_MAX_LIMIT on 64-bit
MAX_MIN_BLOCK_US = 60_000_000
MAX_PATH = 4096

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Whole values only, always through .fullmatch(): with re.match, "^x$" also
# accepts "x\n" ($ matches before a final newline).
_COMM = re.compile(r"[^\x00-\x1f\x7f]{1,15}")
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_.$@]{0,255}")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_PROBE = re.compile(rf"{_IDENT}:{_IDENT}")
_TRACEPOINT = re.compile(r"[A-Za-z0-9_]{1,64}:[A-Za-z0-9_]{1,64}")
_SYSCALL = re.compile(r"[a-z0-9_]{1,32}")
_DEVICE = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclass(frozen=True)
class Limits:
    """Configurable ceilings (server settings; the collector has its own)."""

    max_duration_s: int = 3600
    max_frequency_hz: int = 999
    max_functions: int = 8
    max_syscalls: int = 32


@dataclass(frozen=True)
class TraceSpec:
    kind: str
    duration_s: int
    target: str = "system"
    pid: int | None = None
    comm: str | None = None
    cgroup: str | None = None
    frequency_hz: int | None = None
    min_block_us: int | None = None
    syscalls: list[str] = field(default_factory=list)
    device: str | None = None
    binary: str | None = None
    symbols: list[str] = field(default_factory=list)
    probe: str | None = None
    tracepoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [])}

    def describe(self) -> str:
        """One line for lists and the audit log."""
        what = TRACE_KINDS[self.kind][0]
        detail = {"funclat": f"{self.binary}:{','.join(self.symbols)}",
                  "usdt": f"{self.binary} {self.probe}", "tracepoint": self.tracepoint,
                  "syscall": ",".join(self.syscalls) or "all syscalls",
                  "biolat": self.device or "all devices",
                  "cpu": f"{self.frequency_hz or 49} Hz"}.get(self.kind)
        target = {"system": "whole system", "pid": f"pid {self.pid}",
                  "comm": f"process {self.comm}", "cgroup": f"cgroup {self.cgroup}"}
        parts = [what, detail, target[self.target], f"{self.duration_s} s"]
        return ", ".join(p for p in parts if p)


class SpecErrors(ValueError):
    """Per-field messages; ``errors`` maps a field name to what is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def parse_spec(data: Any, limits: Limits = Limits()) -> TraceSpec:
    """Validate a request dict into a TraceSpec; raise SpecErrors per field."""
    if not isinstance(data, dict):
        raise SpecErrors({"__all__": "a trace request must be a JSON object"})
    errors: dict[str, str] = {}
    known = {"kind", "duration_s", "target", "pid", "comm", "cgroup", *OPTION_FIELDS}
    for key in data:
        if key not in known:
            errors[str(key)[:64]] = "unknown field"
    kind = data.get("kind")
    if kind not in TRACE_KINDS:
        errors["kind"] = f"choose one of: {', '.join(TRACE_KINDS)}"
        raise SpecErrors(errors)
    values: dict[str, Any] = {"kind": kind}
    values["duration_s"] = _int(data, "duration_s", 1, limits.max_duration_s, errors,
                                required=True)
    _target(data, values, errors)
    used = TRACE_KINDS[kind][1]
    for name in OPTION_FIELDS:
        if name not in used and data.get(name) not in (None, "", []):
            errors[name] = f"not used by a {TRACE_KINDS[kind][0].lower()} trace"
    _options(kind, data, values, errors, limits)
    if errors:
        raise SpecErrors(errors)
    return TraceSpec(**values)


def _target(data: dict, values: dict[str, Any], errors: dict[str, str]) -> None:
    target = data.get("target", "system")
    if target not in TARGETS:
        errors["target"] = f"choose one of: {', '.join(TARGETS)}"
        return
    values["target"] = target
    for name in ("pid", "comm", "cgroup"):
        if name != target and data.get(name) not in (None, ""):
            errors[name] = f"only used when the target is {name}"
    if target == "pid":
        values["pid"] = _int(data, "pid", 1, PID_MAX, errors, required=True)
    elif target == "comm":
        comm = data.get("comm")
        if not isinstance(comm, str) or not _COMM.fullmatch(comm):
            errors["comm"] = "a process name of 1 to 15 printable characters"
        values["comm"] = comm
    elif target == "cgroup":
        values["cgroup"] = _path(data, "cgroup", errors)


def _options(kind: str, data: dict, values: dict[str, Any], errors: dict[str, str],
             limits: Limits) -> None:
    if kind == "cpu":
        values["frequency_hz"] = _int(data, "frequency_hz", 1, limits.max_frequency_hz, errors,
                                      default=49)
    elif kind in ("offcpu", "offwake"):
        values["min_block_us"] = _int(data, "min_block_us", 0, MAX_MIN_BLOCK_US, errors,
                                      default=1)
    elif kind == "syscall":
        values["syscalls"] = _names(data, "syscalls", _SYSCALL, limits.max_syscalls, errors,
                                    "syscall names are lowercase letters, digits and _",
                                    required=False)
    elif kind == "biolat":
        device = data.get("device")
        if device not in (None, ""):
            if not isinstance(device, str) or not _DEVICE.fullmatch(device):
                errors["device"] = "a block device name such as sda, vda or nvme0n1"
            values["device"] = device
    elif kind == "funclat":
        values["binary"] = _path(data, "binary", errors)
        values["symbols"] = _names(data, "symbols", _SYMBOL, limits.max_functions, errors,
                                   "a symbol is letters, digits, _ . $ @, not starting "
                                   "with a digit", required=True)
    elif kind == "usdt":
        values["binary"] = _path(data, "binary", errors)
        probe = data.get("probe")
        if not isinstance(probe, str) or not _PROBE.fullmatch(probe):
            errors["probe"] = "provider:name, each a C identifier"
        values["probe"] = probe
    elif kind == "tracepoint":
        tp = data.get("tracepoint")
        if not isinstance(tp, str) or not _TRACEPOINT.fullmatch(tp):
            errors["tracepoint"] = "category:name, e.g. sched:sched_switch"
        values["tracepoint"] = tp


def _int(data: dict, name: str, low: int, high: int, errors: dict[str, str], *,
         required: bool = False, default: int | None = None) -> int | None:
    value = data.get(name)
    if value in (None, ""):
        if required:
            errors[name] = "required"
        return default
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,12}", value.strip()):
        value = int(value)
    if type(value) is not int:
        errors[name] = "must be a whole number"
        return None
    if not low <= value <= high:
        errors[name] = f"must be between {low} and {high}"
        return None
    return value


def _path(data: dict, name: str, errors: dict[str, str]) -> str | None:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        errors[name] = "required: an absolute path"
        return None
    if len(value) > MAX_PATH or _CONTROL.search(value):
        errors[name] = "must be a path without control characters, at most 4096 bytes"
    elif not value.startswith("/"):
        errors[name] = "must be an absolute path (starting with /)"
    elif ".." in value.split("/"):
        errors[name] = "must not contain '..' components"
    return value


def _names(data: dict, name: str, pattern: re.Pattern[str], most: int,
           errors: dict[str, str], rule: str, *, required: bool) -> list[str]:
    value = data.get(name)
    if isinstance(value, str):
        value = [v.strip() for v in value.replace("\n", ",\n").split(",") if v.strip()]
    if value in (None, []):
        if required:
            errors[name] = "required: at least one"
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors[name] = "must be a list of names"
        return []
    bad = [v for v in value if not pattern.fullmatch(v)]
    if bad:
        errors[name] = f"{bad[0]!r} is not valid: {rule}"
    elif len(value) > most:
        errors[name] = f"at most {most} (limit); got {len(value)}"
    elif len(set(value)) != len(value):
        errors[name] = "a name is given twice"
    return list(value)
