"""Pure helpers of the latency collectors: log2 buckets, percentiles, text, syscall names."""

from __future__ import annotations

import pytest

from collectors import histogram as h
from collectors import syscalls

pytestmark = pytest.mark.unit


def test_slots_and_bounds() -> None:
    assert [h.slot_of(v) for v in (0, 1, 2, 3, 4, 7, 8, 2047, 2048, 4095)] == \
        [0, 1, 2, 2, 3, 3, 4, 11, 12, 12]
    assert h.bounds(0) == (0, 1) and h.bounds(1) == (1, 2) and h.bounds(12) == (2048, 4096)
    for value in range(0, 5000, 7):
        low, high = h.bounds(h.slot_of(value))
        assert low <= value < high
    with pytest.raises(ValueError):
        h.slot_of(-1)


def test_from_values_keeps_only_non_empty_buckets_in_order() -> None:
    assert h.from_values([0, 0, 1, 3, 2100, 2]) == [[0, 1, 2], [1, 2, 1], [2, 4, 2],
                                                    [2048, 4096, 1]]
    assert h.from_slots({5: 0, 1: 3}) == [[1, 2, 3]]


def test_merge_sums_bucket_by_bucket() -> None:
    a = [[1, 2, 3], [4, 8, 1]]
    b = [[0, 1, 2], [4, 8, 5]]
    assert h.merge(a, b) == [[0, 1, 2], [1, 2, 3], [4, 8, 6]]
    assert h.merge() == []
    assert h.total(h.merge(a, b)) == h.total(a) + h.total(b)


def test_percentiles_interpolate_inside_the_right_bucket() -> None:
    hist = [[1, 2, 50], [2, 4, 40], [1024, 2048, 10]]
    stats = h.percentiles(hist)
    assert stats["p50"] == pytest.approx(2.0)  # exactly at the end of the first bucket
    assert stats["p90"] == pytest.approx(4.0)
    assert 1024 <= stats["p99"] < 2048
    assert stats["p99"] == pytest.approx(1024 + 1024 * 0.9)
    assert h.percentile([[8, 16, 4]], 0.5) == pytest.approx(12.0)
    assert h.percentile([], 0.5) is None
    with pytest.raises(ValueError):
        h.percentile(hist, 0)


def test_percentile_is_monotonic_and_within_data() -> None:
    hist = h.from_values([3, 5, 5, 9, 17, 17, 17, 300, 5000])
    values = [h.percentile(hist, q / 100) for q in range(1, 101)]
    assert values == sorted(values)
    assert hist[0][0] <= values[0] and values[-1] <= hist[-1][1]


def test_peak_picks_largest_count() -> None:
    assert h.peak([[1, 2, 3], [2048, 4096, 9], [4096, 8192, 9]]) == [2048, 4096, 9]
    assert h.peak([]) is None


def test_render_has_bcc_layout_and_fills_gaps() -> None:
    text = h.render([[2, 4, 5], [16, 32, 10]])
    lines = text.splitlines()
    assert lines[0].split() == ["usecs", ":", "count", "distribution"]
    rows = [line.split() for line in lines[1:]]
    assert [r[:3] for r in rows] == [["2", "->", "3"], ["4", "->", "7"], ["8", "->", "15"],
                                     ["16", "->", "31"]]
    assert [int(r[4]) for r in rows] == [5, 0, 0, 10]
    bars = [line[line.index("|") + 1:line.rindex("|")] for line in lines[1:]]
    assert [bar.count("*") for bar in bars] == [20, 0, 0, 40]
    assert all(len(bar) == h.BAR_WIDTH for bar in bars)
    assert h.render([]).count("\n") == 1


def test_render_all_orders_by_count_and_prints_percentiles() -> None:
    text = h.render_all({"read": [[1, 2, 1]], "clock_nanosleep": [[2048, 4096, 9]]},
                        label="syscall")
    assert text.index("syscall = clock_nanosleep") < text.index("syscall = read")
    assert "p50 3072" in text


def test_syscall_names_from_header() -> None:
    text = """
#define __NR_read 0
#define __NR_write 1
#define __NR3264_fcntl 25
#define __NR_fcntl __NR3264_fcntl
#define __NR_arch_base 400
#define __NR_later (__NR_arch_base + 3)
#define __NR_syscalls 451
"""
    table = syscalls.parse_unistd(text)
    assert table == {0: "read", 1: "write", 25: "fcntl", 400: "arch_base", 403: "later"}


def test_syscall_name_fallback_and_this_machine() -> None:
    assert syscalls.name(1 << 20) == f"syscall_{1 << 20}"
    if syscalls.table():  # headers installed: names match the machine's own numbers
        assert syscalls.name(syscalls.number("clock_nanosleep")) == "clock_nanosleep"
