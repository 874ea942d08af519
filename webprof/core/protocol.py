"""Every message between collector, server and browser, with its validation.

Messages travel as JSON objects ``{"v": PROTOCOL_VERSION, "type": ..., ...}``.
The dotted type maps onto a Channels handler name (``live.interval`` ->
``live_interval``).  :func:`decode` rejects unknown types, missing or extra
fields, wrong types and other versions with one exception,
:class:`ProtocolError`.

Pure Python: imports neither Django nor bcc.  docs/PROTOCOL.md describes the
same messages for people.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import kinds
from .message import MAX_SAFE_INT as MAX_SAFE_INT  # counters, weights and ids
from .message import PROTOCOL_VERSION as PROTOCOL_VERSION  # re-exported: the wire's API
from .message import (
    Message,
    ProtocolError,
    check_counters,
    check_health,
    check_kind,
    check_non_negative,
    check_range,
    check_strings,
    decode_with,
    shown,
    shown_names,
    type_map,
)
from .message import encode as encode
from .message import handler_name as handler_name
from .slotcheck import slot_problem, slots_all_good
from .trace_messages import TRACE_MESSAGES
from .view_messages import (
    HostStatus,
    LatencyInterval,
    LatencySnapshot,
    LiveInterval,
    LiveSnapshot,
)

# Largest websocket frame the server accepts from a collector, in bytes.  A
# 999 Hz interval over 2 CPUs with 10,000 distinct deep stacks encodes to
# about 1.5 MB, so 8 MiB leaves room without letting one peer exhaust memory.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024

# Websocket close codes (4000-4999 are reserved for applications by RFC 6455).
CLOSE_BAD_TOKEN = 4001  # collector token missing or wrong
CLOSE_NOT_LOGGED_IN = 4003  # browser socket without an authenticated user
CLOSE_PROTOCOL_ERROR = 4002  # too many malformed messages from one peer
CLOSE_TOO_BIG = 4009  # "message too big"; daphne (autobahn) cannot send 1009 itself

# Health counters a collector reports with every interval.  All are counts
# for that interval only.
HEALTH_KEYS = (
    "samples",  # samples taken by the kernel program
    "stacks",  # distinct (pid, user stack, kernel stack) keys drained
    "lost_user_stacks",  # get_stackid(user) failed with -EFAULT: no user stack
    "lost_kernel_stacks",  # get_stackid(kernel) failed with -EFAULT
    "stack_map_full",  # get_stackid failed with -EEXIST/-ENOMEM: stack map too small
    "counts_map_full",  # the counts map had no room for a new key
    "unknown_symbols",  # frames left as [unknown] after symbolization
    "lost_events",  # events the kernel program could not record (perf buffer lost, ...)
    "start_map_full",  # a start timestamp could not be stored (latency/off-CPU maps full)
    "filtered",  # events dropped on purpose by the collector's filters
)

# Bounds on every number and length a peer sends, so that one message cannot
# make the server build huge structures (the session recorder allocates one
# cell per sub-second slot, the live tree one node per frame).  Each sits well
# above what the collectors produce; docs/PROTOCOL.md lists them.
# User and kernel stacks hold at most 127 frames each (PERF_MAX_STACK_DEPTH);
# an offwake stack is two of each plus a separator and the waker's name.
MAX_FRAMES_PER_STACK = 1024
MAX_STACKS_PER_DELTA = 262_144  # the collectors' counts maps hold 40,960 keys per set
MAX_STRINGS = 1_048_576  # entries of a profile.delta's strings table
# Characters in one name.  Symbols are not truncated by the collectors and
# demangled C++ templates run to thousands of characters.
MAX_STRING_CHARS = 65_536
MAX_SERIES_PER_DELTA = 1024  # a syscall series per system call (~450) fits
MAX_BUCKETS_PER_SERIES = 64  # log2 buckets of microseconds: 0..2^63
MAX_BUCKET_US = 2**64
# start_ms: unix ms up to 2100-01-01.  The floor stays 0: a board without a
# real-time clock starts in 1970 until NTP runs.
MAX_START_MS = 4_102_444_800_000
MAX_INTERVAL_MS = 3_600_000  # one hour; collectors drain every 0.1..60 s
MAX_FREQUENCY_HZ = 100_000
MAX_SLOT_MS = 60_000
MAX_SLOTS_PER_INTERVAL = 262_144  # ceil(interval_ms / slot_ms)
MAX_PID = 2**22  # PID_MAX_LIMIT: pids are below it
MAX_ID = MAX_SAFE_INT  # seq, trace_id, query_id
MAX_COLLECTORS = 64  # names in a collector.hello

# Width of the sub-second windows of profile.delta ``slots``, in milliseconds:
# 50 rows per second in a FlameScope-style heatmap, and at 99 Hz about two
# samples per CPU per window.
DEFAULT_SLOT_MS = 20

# Frame separating the blocked stack (below) from the waker's stack (above)
# in "offwake" stacks, as in Brendan Gregg's offwaketime folded output.
WAKER_SEPARATOR = "--"


@dataclass(frozen=True)
class CollectorHello(Message):
    """Collector -> server, first message after connecting."""

    type: ClassVar[str] = "collector.hello"
    host: str
    kernel: str
    collectors: list[str]
    frequency_hz: int
    interval_ms: int
    agent_version: str

    def validate(self) -> None:
        # The host name's length is checked by the ingest, which answers bad_host.
        check_range(self.type, "frequency_hz", self.frequency_hz, 0, MAX_FREQUENCY_HZ)
        check_range(self.type, "interval_ms", self.interval_ms, 0, MAX_INTERVAL_MS)
        check_strings(self.type, "collectors", self.collectors, MAX_COLLECTORS, 64)
        check_strings(self.type, "kernel", [self.kernel], 1, 256)
        check_strings(self.type, "agent_version", [self.agent_version], 1, 256)


@dataclass(frozen=True)
class ProfileDelta(Message):
    """Collector -> server, once per interval and collector kind.

    ``strings`` is a table of frame and process names.  Each entry of
    ``stacks`` is ``[pid, comm_index, weight, frame_index...]`` with frames
    outermost first; kernel frames carry the suffix ``_[k]``.  ``weight`` is a
    sample count for kind ``cpu`` and microseconds blocked for ``offcpu`` and
    ``offwake`` (see the kind table, core/kinds.py).  An ``offwake`` stack is the blocked
    stack, then WAKER_SEPARATOR, then the waker's stack innermost first, then
    the waker's process name, so the waker sits above the blocked stack.

    Sub-second time: when ``slot_ms > 0``, ``slots[i]`` says when the weight
    of ``stacks[i]`` fell, as a flat ``[slot, weight, slot, weight, ...]``:
    ``slot`` numbers ``slot_ms``-wide windows from ``start_ms`` (0 up to
    ``slot_count() - 1``, strictly increasing), weights are > 0 and sum to the
    stack's weight.  ``slot_ms == 0`` with ``slots == []`` means no such data
    (off-CPU kinds, older collectors).
    """

    type: ClassVar[str] = "profile.delta"
    host: str
    kind: str
    seq: int
    start_ms: int  # wall clock, unix milliseconds, when the interval began
    interval_ms: int
    frequency_hz: int
    strings: list[str]
    stacks: list[list[int]]
    health: dict[str, int]
    slot_ms: int = 0  # width of a sub-second window; 0: no sub-second data
    slots: list[list[int]] = field(default_factory=list)  # per stack: slot, weight, ...
    trace_id: int = 0  # the targeted trace this belongs to; 0: the live stream

    def validate(self) -> None:
        _check_delta_kind(self.type, self.kind, "stack", self.trace_id)
        check_non_negative("profile.delta", trace_id=self.trace_id)
        check_non_negative("profile.delta", seq=self.seq, interval_ms=self.interval_ms)
        _check_interval(self.type, self.seq, self.start_ms, self.interval_ms, self.trace_id)
        check_range(self.type, "frequency_hz", self.frequency_hz, 0, MAX_FREQUENCY_HZ)
        check_strings(self.type, "strings", self.strings, MAX_STRINGS, MAX_STRING_CHARS)
        if len(self.stacks) > MAX_STACKS_PER_DELTA:
            raise ProtocolError(f"profile.delta: {len(self.stacks)} stacks, more than "
                                f"{MAX_STACKS_PER_DELTA}")
        self._validate_stacks()
        check_health(self.type, self.health, HEALTH_KEYS)
        check_counters(self.type, self.health, MAX_SAFE_INT)
        self._validate_slots()

    def _validate_stacks(self) -> None:
        n = len(self.strings)
        longest = MAX_FRAMES_PER_STACK + 3
        total = 0
        for i, entry in enumerate(self.stacks):
            if not 3 <= len(entry) <= longest or any(type(x) is not int for x in entry):
                if len(entry) > longest:
                    raise ProtocolError(f"profile.delta: stacks[{i}] has {len(entry) - 3} "
                                        f"frames, more than {MAX_FRAMES_PER_STACK}")
                raise ProtocolError(f"profile.delta: stacks[{i}] must be [pid, comm, weight, ...]")
            if not 0 < entry[2] <= MAX_SAFE_INT or not 0 <= entry[0] < MAX_PID:
                raise ProtocolError(f"profile.delta: stacks[{i}] has a bad pid or weight")
            if not all(0 <= x < n for x in entry[3:]) or not 0 <= entry[1] < n:
                raise ProtocolError(f"profile.delta: stacks[{i}] names a string not in the table")
            total += entry[2]
        if total > MAX_SAFE_INT:
            raise ProtocolError(f"profile.delta: weights sum to more than {MAX_SAFE_INT}")

    def slot_count(self) -> int:
        """Windows in the interval: ceil(interval_ms / slot_ms), at least 1."""
        return max(1, -(-self.interval_ms // self.slot_ms)) if self.slot_ms > 0 else 0

    def _validate_slots(self) -> None:
        if type(self.slot_ms) is not int or self.slot_ms < 0:
            raise ProtocolError("profile.delta: slot_ms must be an int >= 0")
        if self.slot_ms == 0:
            if self.slots:
                raise ProtocolError("profile.delta: slots given but slot_ms is 0")
            return
        check_range(self.type, "slot_ms", self.slot_ms, 0, MAX_SLOT_MS)
        if self.slot_count() > MAX_SLOTS_PER_INTERVAL:
            raise ProtocolError(f"profile.delta: interval_ms / slot_ms makes {self.slot_count()}"
                                f" slots, more than {MAX_SLOTS_PER_INTERVAL}")
        if len(self.slots) != len(self.stacks):
            raise ProtocolError(f"profile.delta: {len(self.slots)} slots entries for "
                                f"{len(self.stacks)} stacks (need one per stack)")
        if slots_all_good(self.stacks, self.slots, self.slot_count()):
            return
        # Something is wrong: find the first bad entry, entry by entry.
        for i, (entry, pairs) in enumerate(zip(self.stacks, self.slots, strict=True)):
            problem = slot_problem(entry[2], pairs, self.slot_count())
            if problem:
                raise ProtocolError(f"profile.delta: slots[{i}] {problem}")
        raise ProtocolError("profile.delta: bad slots")  # the two checks disagree: a bug

    def iter_stacks(self) -> typing.Iterator[tuple[int, str, list[str], int]]:
        """Yield ``(pid, comm, frames, weight)``."""
        s = self.strings
        for entry in self.stacks:
            yield entry[0], s[entry[1]], [s[i] for i in entry[3:]], entry[2]


@dataclass(frozen=True)
class LiveSubscribe(Message):
    """Browser -> server: watch one host, optionally one process."""

    type: ClassVar[str] = "live.subscribe"
    host: str
    pid: int | None = None
    comm: str | None = None
    kind: str = "cpu"  # a live stack kind (kinds.LIVE_STACK)

    def validate(self) -> None:
        check_kind(self.type, self.kind, kinds.LIVE_STACK)
        if self.pid is not None and not 0 < self.pid < 2**22:
            raise ProtocolError("live.subscribe: pid out of range")
        if self.comm is not None and len(self.comm) > 64:
            raise ProtocolError("live.subscribe: comm longer than 64 characters")


@dataclass(frozen=True)
class LatencyDelta(Message):
    """Collector -> server, once per interval and latency kind.

    ``series`` maps a series name ("all", a syscall name, "sda:read",
    "nginx:4242", ...) to log2 buckets ``[low_us, high_us, count]`` with
    ``high_us = 2 * low_us`` (the first bucket is ``[0, 1, n]``); only
    non-empty buckets are sent.
    """

    type: ClassVar[str] = "latency.delta"
    host: str
    kind: str
    seq: int
    start_ms: int
    interval_ms: int
    series: dict[str, list[list[int]]]
    health: dict[str, int]
    unit: str = "us"
    trace_id: int = 0  # the targeted trace this belongs to; 0: the live stream

    def validate(self) -> None:
        _check_delta_kind(self.type, self.kind, "histogram", self.trace_id)
        check_non_negative("latency.delta", trace_id=self.trace_id)
        if self.unit != "us":
            raise ProtocolError("latency.delta: unit must be 'us'")
        check_non_negative("latency.delta", seq=self.seq, interval_ms=self.interval_ms)
        _check_interval(self.type, self.seq, self.start_ms, self.interval_ms, self.trace_id)
        if len(self.series) > MAX_SERIES_PER_DELTA:
            raise ProtocolError(f"latency.delta: {len(self.series)} series, more than "
                                f"{MAX_SERIES_PER_DELTA}")
        check_strings(self.type, "series names", list(self.series), MAX_SERIES_PER_DELTA,
                      MAX_STRING_CHARS)
        for name, buckets in self.series.items():
            if len(buckets) > MAX_BUCKETS_PER_SERIES:
                raise ProtocolError(f"latency.delta: series {name[:80]!r} has {len(buckets)} "
                                    f"buckets, more than {MAX_BUCKETS_PER_SERIES}")
            for bucket in buckets:
                if (len(bucket) != 3 or not 0 <= bucket[0] < bucket[1] <= MAX_BUCKET_US
                        or not 0 <= bucket[2] <= MAX_SAFE_INT):
                    raise ProtocolError(f"latency.delta: bad bucket {bucket!r:.80} in "
                                        f"{name[:80]!r}")
        check_health(self.type, self.health, HEALTH_KEYS)
        check_counters(self.type, self.health, MAX_SAFE_INT)


@dataclass(frozen=True)
class LatencySubscribe(Message):
    """Browser -> server: watch one host's histograms of one latency kind."""

    type: ClassVar[str] = "latency.subscribe"
    host: str
    kind: str

    def validate(self) -> None:
        check_kind(self.type, self.kind, kinds.LIVE_HISTOGRAM)


@dataclass(frozen=True)
class CollectorConfig(Message):
    """Server -> collector: which collectors to run, with their options.

    The collector validates it again (names, ranges) before acting on it and
    answers with a new collector.hello listing what actually runs.
    """

    type: ClassVar[str] = "collector.config"
    collectors: list[str]  # live kinds (kinds.LIVE)
    frequency_hz: int = 49
    pid: int | None = None  # offcpu/offwake/syscall filter
    comm: str | None = None
    min_block_us: int = 1
    max_block_us: int | None = None
    user_threads_only: bool = True

    def validate(self) -> None:
        bad = [c for c in self.collectors if c not in kinds.LIVE]
        if bad:
            raise ProtocolError(f"collector.config: unknown collectors {shown_names(bad)}")
        if not 1 <= self.frequency_hz <= 999:
            raise ProtocolError("collector.config: frequency_hz must be 1..999")
        if self.pid is not None and not 0 < self.pid < 2**22:
            raise ProtocolError("collector.config: pid out of range")
        if self.comm is not None and not 0 < len(self.comm) <= 15:
            raise ProtocolError("collector.config: comm must be 1..15 characters")
        if not 0 <= self.min_block_us <= MAX_SAFE_INT or (
            self.max_block_us is not None
            and not self.min_block_us <= self.max_block_us <= MAX_SAFE_INT
        ):
            raise ProtocolError("collector.config: bad block time range")


@dataclass(frozen=True)
class Error(Message):
    """Either direction: a message was refused.  ``code`` is machine-readable."""

    type: ClassVar[str] = "error"
    code: str
    message: str
    dropped: int = 0  # messages refused so far on this connection

    def validate(self) -> None:
        # A collector's errors are logged by the server: keep them short.
        check_strings(self.type, "code", [self.code], 1, 64)
        check_strings(self.type, "message", [self.message], 1, MAX_STRING_CHARS)
        check_range(self.type, "dropped", self.dropped, 0, MAX_SAFE_INT)


# Every message decode() knows: this module's and the trace messages.
MESSAGE_TYPES: dict[str, type[Message]] = type_map(
    CollectorHello,
    ProfileDelta,
    LiveSubscribe,
    LiveSnapshot,
    LiveInterval,
    LatencyDelta,
    LatencySubscribe,
    LatencySnapshot,
    LatencyInterval,
    CollectorConfig,
    HostStatus,
    Error,
    *TRACE_MESSAGES,
)


def decode(data: str | bytes | dict[str, Any]) -> Message:
    """Parse and validate one message; raise :class:`ProtocolError` if it is bad."""
    return decode_with(MESSAGE_TYPES, data)


def _check_delta_kind(message_type: str, kind: str, family: str, trace_id: int) -> None:
    """A delta's kind must be of its message's family; a trace-only kind needs a trace."""
    row = kinds.BY_NAME.get(kind)
    if row is None or row.family != family or (not row.live and trace_id <= 0):
        raise ProtocolError(f"{message_type}: unknown kind {shown(kind)}")


def _check_interval(message_type: str, seq: int, start_ms: int, interval_ms: int,
                    trace_id: int) -> None:
    """The numbers every delta shares, against the bounds above."""
    check_range(message_type, "seq", seq, 0, MAX_ID)
    check_range(message_type, "start_ms", start_ms, 0, MAX_START_MS)
    check_range(message_type, "interval_ms", interval_ms, 0, MAX_INTERVAL_MS)
    check_range(message_type, "trace_id", trace_id, 0, MAX_ID)
