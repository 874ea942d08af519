"""Export a FlameTree to speedscope JSON and pprof, and import folded stacks.

The root's children of a FlameTree are process names (comm), so every
exported stack starts with the comm as its outermost frame; that keeps one
process per subtree in every viewer.

pprof is hand-encoded (varints and length-delimited fields) so the pure core
needs no protobuf dependency.  Pure Python: imports neither Django nor bcc.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable

from webprof.core.flame import FlameTree, FoldedFormatError

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"
SPEEDSCOPE_UNITS = ("none", "nanoseconds", "microseconds", "milliseconds", "seconds", "bytes")
KERNEL_SUFFIX = "_[k]"
# bcc's profile -f -d puts this pseudo-frame between the user and kernel stacks.
BCC_DELIMITER = "-"


# --------------------------------------------------------------------------- speedscope


def to_speedscope(tree: FlameTree, name: str, unit: str = "none") -> dict:
    """speedscope's file format with one "sampled" profile.

    ``unit`` is "none" for sample counts and "microseconds" for off-CPU time.
    Each distinct stack becomes one sample (root first, as speedscope wants)
    whose weight is the stack's self weight, so no per-sample expansion.
    """
    if unit not in SPEEDSCOPE_UNITS:
        raise ValueError(f"unknown speedscope unit {unit!r}; expected one of {SPEEDSCOPE_UNITS}")
    frames: list[dict[str, str]] = []
    index: dict[str, int] = {}
    samples: list[list[int]] = []
    weights: list[int] = []
    for path, weight in tree.stacks():
        sample = []
        for frame in path:
            idx = index.get(frame)
            if idx is None:
                idx = index[frame] = len(frames)
                frames.append({"name": frame})
            sample.append(idx)
        samples.append(sample)
        weights.append(weight)
    profile = {
        "type": "sampled",
        "name": name,
        "unit": unit,
        "startValue": 0,
        "endValue": sum(weights),
        "samples": samples,
        "weights": weights,
    }
    return {
        "$schema": SPEEDSCOPE_SCHEMA,
        "shared": {"frames": frames},
        "profiles": [profile],
        "name": name,
        "activeProfileIndex": 0,
        "exporter": "webprof",
    }


# --------------------------------------------------------------------------- pprof
#
# Field numbers from github.com/google/pprof/proto/profile.proto:
#   Profile:   1 sample_type (ValueType, repeated)   2 sample (Sample, repeated)
#              4 location (repeated)   5 function (repeated)   6 string_table (repeated)
#              11 period_type (ValueType)   12 period (int64)
#   ValueType: 1 type (string index)   2 unit (string index)
#   Sample:    1 location_id (packed uint64, LEAF FIRST)   2 value (packed int64)
#   Location:  1 id (uint64, nonzero)   4 line (Line, repeated)
#   Line:      1 function_id (uint64)
#   Function:  1 id (uint64, nonzero)   2 name (string index)   3 system_name (string index)
# string_table[0] must be "".

_VARINT = 0
_LEN = 2


def _varint(value: int) -> bytes:
    """Base-128 varint; negative int64 values use 10-byte two's complement."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field_no: int, wire_type: int) -> bytes:
    return _varint(field_no << 3 | wire_type)


def _int_field(field_no: int, value: int) -> bytes:
    """A scalar field; zero is the proto3 default and is omitted."""
    return _key(field_no, _VARINT) + _varint(value) if value else b""


def _len_field(field_no: int, payload: bytes) -> bytes:
    return _key(field_no, _LEN) + _varint(len(payload)) + payload


def _packed(field_no: int, values: Iterable[int]) -> bytes:
    return _len_field(field_no, b"".join(_varint(v) for v in values))


class _Strings:
    """The profile's string table: index 0 is always the empty string."""

    def __init__(self) -> None:
        self.table: list[str] = [""]
        self.index: dict[str, int] = {"": 0}

    def __call__(self, text: str) -> int:
        idx = self.index.get(text)
        if idx is None:
            idx = self.index[text] = len(self.table)
            self.table.append(text)
        return idx


def _value_type(strings: _Strings, type_unit: tuple[str, str]) -> bytes:
    return _int_field(1, strings(type_unit[0])) + _int_field(2, strings(type_unit[1]))


def to_pprof(
    tree: FlameTree, sample_type: tuple[str, str] = ("samples", "count"), period: int = 0
) -> bytes:
    """A gzipped perftools profile.proto (``go tool pprof``, Pyroscope, Parca).

    One Location and one Function per distinct frame name (ids are equal and
    start at 1).  ``period`` is the sampling period in ``sample_type``'s unit;
    0 leaves it unset.
    """
    strings = _Strings()
    parts: list[bytes] = [_len_field(1, _value_type(strings, sample_type))]
    func_ids: dict[str, int] = {}
    for path, weight in tree.stacks():
        ids = []
        for frame in path:
            fid = func_ids.get(frame)
            if fid is None:
                fid = func_ids[frame] = len(func_ids) + 1
            ids.append(fid)
        ids.reverse()  # pprof lists the leaf first
        parts.append(_len_field(2, _packed(1, ids) + _packed(2, [weight])))
    for frame, fid in func_ids.items():
        line = _int_field(1, fid)
        parts.append(_len_field(4, _int_field(1, fid) + _len_field(4, line)))
        name = strings(frame)
        parts.append(_len_field(5, _int_field(1, fid) + _int_field(2, name) + _int_field(3, name)))
    if period:
        parts.append(_len_field(11, _value_type(strings, sample_type)))
        parts.append(_int_field(12, period))
    # The string table goes last: every string has been interned by now.
    parts.extend(_len_field(6, s.encode("utf-8")) for s in strings.table)
    return gzip.compress(b"".join(parts), mtime=0)


# --------------------------------------------------------------------------- folded import


# Limits of a folded import.  A line of a real profile has at most a few
# thousand frames (perf's kernel.perf_event_max_stack defaults to 127); the
# tree costs a few hundred bytes per distinct frame in memory, so the number
# of distinct nodes is bounded too.
MAX_FOLDED_FRAMES = 10_000  # frames in one line
MAX_FOLDED_LINE_CHARS = 1 << 20  # characters in one line
MAX_FOLDED_NODES = 2_000_000  # distinct frames (tree nodes) in one file


def parse_folded_any(text: str | Iterable[str], *, max_frames: int = MAX_FOLDED_FRAMES,
                     max_line_chars: int = MAX_FOLDED_LINE_CHARS,
                     max_nodes: int = MAX_FOLDED_NODES) -> FlameTree:
    """Parse folded stacks from webprof, FlameGraph or bcc into a new tree.

    ``text`` is the whole file or its lines (without line ends), so a caller
    can stream a large file.  Accepted dialects, all
    ``comm;outermost;...;leaf COUNT`` per line:

    - webprof's own ``FlameTree.to_folded`` output;
    - FlameGraph's ``stackcollapse-perf.pl`` (optionally ``comm-PID`` as the
      first frame, ``_[k]``/``_[j]`` annotations, C++ names containing spaces:
      the count is whatever follows the last whitespace);
    - bcc ``profile -f`` (with ``-d`` a lone ``-`` frame separates user from
      kernel frames: it is dropped and the kernel frames get webprof's
      ``_[k]`` suffix so they are told apart like in live profiles).

    Blank lines and ``#`` comments are skipped.  The first bad line raises
    FoldedFormatError with its 1-based number; nothing partial is returned.
    So do a line longer than ``max_line_chars``, one with more than
    ``max_frames`` frames, and a file whose tree would hold more than
    ``max_nodes`` nodes.  An input with no stacks at all is also an error,
    reported on line 1.
    """
    tree = FlameTree()
    stacks = 0
    nodes = 0
    lines = text.splitlines() if isinstance(text, str) else text
    for line_no, raw in enumerate(lines, start=1):
        if len(raw) > max_line_chars:
            raise FoldedFormatError(line_no, raw, f"line longer than {max_line_chars} characters")
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.count(";") >= max_frames:
            raise FoldedFormatError(line_no, raw, f"{line.count(';') + 1} frames, more than "
                                    f"{max_frames}")
        frames, weight = _parse_line(line_no, raw, line)
        nodes += _add_counting(tree, frames, weight)
        if nodes > max_nodes:
            raise FoldedFormatError(line_no, raw, f"the stacks so far make more than "
                                    f"{max_nodes} distinct frames")
        stacks += 1
    if not stacks:
        raise FoldedFormatError(1, text[:120] if isinstance(text, str) else "",
                                "no stacks found")
    return tree


def _add_counting(tree: FlameTree, frames: list[str], weight: int) -> int:
    """``tree.add(frames, weight)``; return the number of nodes it created."""
    if not weight:
        return 0
    node = tree.root
    node.total += weight
    created = 0
    for name in frames:
        child = node.children.get(name)
        if child is None:
            child = node.child(name)
            created += 1
        child.total += weight
        node = child
    node.self_count += weight
    return created


def _parse_line(line_no: int, raw: str, line: str) -> tuple[list[str], int]:
    parts = line.rsplit(None, 1)
    if len(parts) != 2:
        raise FoldedFormatError(line_no, raw, "expected 'frame;frame;... COUNT'")
    stack, count = parts
    if not (count.isascii() and count.isdigit()):
        raise FoldedFormatError(line_no, raw, "count is not a non-negative integer")
    frames = stack.split(";")
    if any(not f.strip() for f in frames):
        raise FoldedFormatError(line_no, raw, "empty frame name")
    return _mark_kernel(frames), int(count)


def _mark_kernel(frames: list[str]) -> list[str]:
    """Drop bcc's user/kernel delimiter, suffixing the frames after it.

    The first frame is the comm and never a delimiter (a process may really
    be called "-" in principle, but its stack would still start there).
    """
    try:
        split = frames.index(BCC_DELIMITER, 1)
    except ValueError:
        return frames
    kernel = [f if f.endswith(KERNEL_SUFFIX) else f + KERNEL_SUFFIX for f in frames[split + 1 :]]
    return frames[:split] + kernel
