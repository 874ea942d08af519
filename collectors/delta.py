"""Merged stacks to one ``profile.delta``: the strings table, rows and windows.

Every stack loader (on-CPU samples, off-CPU and off-wake time, probe hits)
merges its interval into ``{(pid, comm, frames): {window: weight}}`` with
frames outermost first and weights > 0, then calls
:func:`build_profile_delta`.  Pure Python: no bcc, no kernel access.

This runs once per interval over up to tens of thousands of stacks
(bench/drain_bench.py times it), hence the plain loops and bound methods.
"""

from __future__ import annotations

from webprof.core.protocol import HEALTH_KEYS, ProfileDelta

Merged = dict[tuple[int, str, tuple[str, ...]], dict[int, int]]


def build_profile_delta(merged: Merged, health: dict[str, int], *, host: str, kind: str,
                        seq: int, start_ms: int, interval_ms: int, frequency_hz: int,
                        slot_ms: int) -> ProfileDelta:
    """The message: one stacks entry per merged stack, its windows beside it.

    Names (process names and frames) go into the strings table in the order
    they are first met; each stack's ``slots`` entry lists its windows in
    increasing order with their weights, and its weight is their sum.
    ``health`` holds the interval's counters; those it lacks are 0.
    """
    index = _StringIndex()  # insertion-ordered: becomes the strings table
    lookup = index.__getitem__
    rows: list[list[int]] = []
    slot_rows: list[list[int]] = []
    append, append_slots = rows.append, slot_rows.append
    for (pid, comm, frames), per_window in merged.items():
        if len(per_window) == 1:  # the common case at 1 s intervals
            ((w, n),) = per_window.items()
            append_slots([w, n])
        else:
            pairs: list[int] = []
            for w in sorted(per_window):
                pairs += (w, per_window[w])
            n = sum(per_window.values())
            append_slots(pairs)
        row = [pid, index[comm], n]
        row += map(lookup, frames)
        append(row)
    counters = dict.fromkeys(HEALTH_KEYS, 0)
    counters.update(health)
    return ProfileDelta(host=host, kind=kind, seq=seq, start_ms=start_ms,
                        interval_ms=interval_ms, frequency_hz=frequency_hz,
                        strings=list(index), stacks=rows, health=counters, slot_ms=slot_ms,
                        slots=slot_rows)


class _StringIndex(dict):
    """name -> index in the strings table; a missing name gets the next index.

    Subscripting a dict subclass that only adds ``__missing__`` stays a C
    call for names already present, which is nearly every frame.
    """

    def __missing__(self, name: str) -> int:
        index = self[name] = len(self)
        return index
