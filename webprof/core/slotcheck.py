"""Checks of a ``profile.delta``'s sub-second ``slots`` (see ProfileDelta).

``slots[i]`` is ``[slot, weight, slot, weight, ...]`` for ``stacks[i]``:
slots in ``0..n_slots - 1`` and strictly increasing, weights > 0 summing to
the stack's weight.  Checked on every interval, so the common "all good"
answer is found in bulk passes; the slow per-entry check only runs to name
the first bad entry.  Pure Python.
"""

from __future__ import annotations

import operator
from itertools import chain, islice, repeat


def slots_all_good(stacks: list[list[int]], slots: list[list[int]], n_slots: int) -> bool:
    """Every check of :func:`slot_problem` at once, in bulk C-level passes.

    A delta can hold tens of thousands of entries and is validated on every
    interval, so this avoids a Python loop per entry; it only says yes or no.
    """
    if not slots:
        return True
    if not set(map(type, slots)) <= {list}:
        return False
    lengths = list(map(len, slots))
    if min(lengths, default=2) < 2 or any(map(operator.and_, lengths, repeat(1))):
        return False
    flat = list(chain.from_iterable(slots))
    if not set(map(type, flat)) <= {int}:
        return False
    times, weights = flat[0::2], flat[1::2]  # every entry has even length
    if min(weights) <= 0 or min(times) < 0 or max(times) >= n_slots:
        return False
    per_entry = map(sum, map(operator.itemgetter(slice(1, None, 2)), slots))
    if list(per_entry) != list(map(operator.itemgetter(2), stacks)):
        return False
    # Slots in range, so entry i's slot t maps to i * n_slots + t and "strictly
    # increasing within every entry" is "strictly increasing overall".
    pairs = map(operator.rshift, lengths, repeat(1))
    offsets = chain.from_iterable(map(repeat, range(0, len(slots) * n_slots, n_slots), pairs))
    keys = list(map(operator.add, times, offsets))
    return all(map(operator.lt, keys, islice(keys, 1, None)))

def slot_problem(weight: int, pairs: object, n_slots: int) -> str | None:
    """What is wrong with one stack's ``[slot, weight, ...]`` list, or None."""
    if type(pairs) is not list or any(type(x) is not int for x in pairs):
        return "must be a list of ints"
    if len(pairs) % 2:
        return f"has odd length {len(pairs)}: it must be [slot, weight, ...] pairs"
    times, weights = pairs[0::2], pairs[1::2]
    if any(not 0 <= t < n_slots for t in times):
        return f"has a slot outside 0..{n_slots - 1}"
    if any(map(operator.ge, times, islice(times, 1, None))):
        return "has slots that are not strictly increasing"
    if any(w <= 0 for w in weights):
        return "has a weight <= 0"
    if sum(weights) != weight:
        return f"weights sum to {sum(weights)}, not the stack's weight {weight}"
    return None
