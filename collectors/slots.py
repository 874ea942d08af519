"""Sub-second windows of a drained interval, shared by the stack collectors.

The kernel programs key their counts by ``bpf_ktime_get_ns() / SLOT_NS``, an
absolute CLOCK_MONOTONIC slot; messages number windows from the interval's
wall-clock ``start_ms``.  :func:`wall_minus_mono_ns` measures the offset
between the two clocks at the drain and :func:`slot_windows` maps one to
the other.
"""

from __future__ import annotations

import time


def wall_minus_mono_ns() -> int:
    """time.time_ns() - CLOCK_MONOTONIC (bpf_ktime_get_ns's clock), read between
    two monotonic readings so the error is half the time the three calls take."""
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    wall = time.time_ns()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    return wall - (before + after) // 2


def slot_windows(slots: set[int], start_ms: int, interval_ms: int, slot_ms: int,
                 wall_minus_mono: int) -> dict[int, int]:
    """Monotonic slot number -> window of the message, counted from ``start_ms``.

    A kernel slot spans [s * slot_ms, (s + 1) * slot_ms) of CLOCK_MONOTONIC;
    its middle, moved to the wall clock, picks the window, so an event lands
    at most half a slot from its true window.  Slots outside the interval are
    clamped to its first or last window: events between the drain's clock
    reading and its set flip, and (off-CPU) blocks that ended in the slot of
    the previous flip in the other set (see ``OffCpuCollector._take_late``).
    ``wall_minus_mono`` is :func:`wall_minus_mono_ns` measured at the drain.
    """
    slot_ns = slot_ms * 1_000_000
    start_mono_ns = start_ms * 1_000_000 - wall_minus_mono
    last = max(1, -(-interval_ms // slot_ms)) - 1
    return {s: min(max((s * slot_ns + slot_ns // 2 - start_mono_ns) // slot_ns, 0), last)
            for s in slots}
