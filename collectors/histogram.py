"""Log2 latency histograms: bucketing, merging, percentiles and text rendering.

Pure Python (no bcc), shared by the latency collectors and their tests.

A histogram is a list of buckets ``[low_us, high_us, count]`` in increasing
order, holding only non-empty buckets, as in the ``latency.delta`` message.
The bucket of slot 0 is ``[0, 1)`` (under a microsecond); slot ``k >= 1`` is
``[2**(k-1), 2**k)``.  The kernel programs compute the same slots.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Bucket = list[int]  # [low_us, high_us, count]
BAR_WIDTH = 40


def slot_of(value_us: int) -> int:
    """The log2 slot holding ``value_us`` (an integer number of microseconds)."""
    if value_us < 0:
        raise ValueError(f"negative latency: {value_us}")
    return int(value_us).bit_length()


def bounds(slot: int) -> tuple[int, int]:
    """``[low, high)`` in microseconds of a slot."""
    if slot < 0:
        raise ValueError(f"negative slot: {slot}")
    return (0, 1) if slot == 0 else (1 << (slot - 1), 1 << slot)


def from_slots(counts: Mapping[int, int]) -> list[Bucket]:
    """Slot -> count to a sorted bucket list, dropping empty slots."""
    return [[*bounds(slot), n] for slot, n in sorted(counts.items()) if n > 0]


def from_values(values_us: Iterable[int]) -> list[Bucket]:
    """Bucket raw measurements (used by tests and as a reference)."""
    counts: dict[int, int] = {}
    for value in values_us:
        slot = slot_of(value)
        counts[slot] = counts.get(slot, 0) + 1
    return from_slots(counts)


def merge(*histograms: Iterable[Bucket]) -> list[Bucket]:
    """Sum histograms bucket by bucket."""
    totals: dict[tuple[int, int], int] = {}
    for histogram in histograms:
        for low, high, n in histogram:
            totals[low, high] = totals.get((low, high), 0) + n
    return [[low, high, n] for (low, high), n in sorted(totals.items()) if n > 0]


def total(histogram: Iterable[Bucket]) -> int:
    return sum(n for _, _, n in histogram)


def percentile(histogram: list[Bucket], q: float) -> float | None:
    """The ``q``-quantile (0 < q <= 1) in microseconds, None when empty.

    Interpolates linearly inside the bucket where the cumulative count
    reaches ``q * total`` (the rule of Prometheus' histogram_quantile): exact
    values are lost by bucketing, and a uniform spread within the bucket is
    the least biased guess; the answer always lies inside the right bucket.
    """
    if not 0 < q <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {q}")
    count = total(histogram)
    if count == 0:
        return None
    rank = q * count
    seen = 0
    for low, high, n in histogram:
        if n and seen + n >= rank:
            return low + (high - low) * (rank - seen) / n
        seen += n
    return float(histogram[-1][1])


def percentiles(histogram: list[Bucket],
                qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> dict[str, float | None]:
    """``{"p50": ..., "p90": ..., "p99": ...}`` in microseconds."""
    return {f"p{round(q * 100):d}": percentile(histogram, q) for q in qs}


def peak(histogram: list[Bucket]) -> Bucket | None:
    """The bucket with the largest count (the lowest one on ties)."""
    best = None
    for bucket in histogram:
        if best is None or bucket[2] > best[2]:
            best = bucket
    return best


def render(histogram: list[Bucket], unit: str = "usecs", width: int = BAR_WIDTH) -> str:
    """A log2 histogram as text, one row per bucket with a bar of stars::

             usecs               : count      distribution
                 2 -> 3          : 5         |****                  |

    Rows run from the first to the last non-empty bucket, empty ones
    included so the shape reads right; bounds are inclusive integers.
    """
    lines = [f"{unit:>10} {'':<14}: {'count':<10} distribution"]
    if not histogram:
        return lines[0] + "\n"
    by_slot = {slot_of(low): n for low, _, n in histogram}
    first, last = min(by_slot), max(by_slot)
    biggest = max(by_slot.values())
    for slot in range(first, last + 1):
        low, high = bounds(slot)
        n = by_slot.get(slot, 0)
        stars = (n * width + biggest - 1) // biggest if biggest else 0
        bar = "*" * stars
        lines.append(f"{low:>10} -> {high - 1:<10} : {n:<10} |{bar:<{width}}|")
    return "\n".join(lines) + "\n"


def render_all(series: Mapping[str, list[Bucket]], label: str = "series",
               unit: str = "usecs") -> str:
    """Every series, largest first, each under a ``label = name`` heading."""
    parts = []
    for name in sorted(series, key=lambda s: (-total(series[s]), s)):
        histogram = series[name]
        stats = percentiles(histogram)
        summary = ", ".join(f"{k} {v:.0f}" for k, v in stats.items() if v is not None)
        parts.append(f"\n{label} = {name}  (count {total(histogram)}; {summary} us)\n"
                     + render(histogram, unit))
    return "".join(parts).lstrip("\n")
