"""build_profile_delta: merged stacks to one profile.delta, without bcc or root."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from collectors.delta import build_profile_delta
from webprof.core import protocol as P

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]

META = {"host": "web-1", "kind": "cpu", "seq": 5, "start_ms": 1_700_000_000_000,
        "interval_ms": 1000, "frequency_hz": 99, "slot_ms": 20}


def test_strings_in_first_use_order_rows_and_slots() -> None:
    merged = {
        (42, "nginx", ("main", "serve", "read_[k]")): {3: 2},
        (42, "nginx", ("main", "log")): {40: 1, 0: 4, 17: 3},  # windows out of order
        (7, "sh", ("main",)): {49: 6},
    }
    delta = build_profile_delta(merged, {"samples": 16}, **META)
    assert delta.strings == ["nginx", "main", "serve", "read_[k]", "log", "sh"]
    assert delta.stacks == [[42, 0, 2, 1, 2, 3], [42, 0, 8, 1, 4], [7, 5, 6, 1]]
    # Windows strictly increasing; the stack's weight is their sum.
    assert delta.slots == [[3, 2], [0, 4, 17, 3, 40, 1], [49, 6]]
    assert (delta.host, delta.kind, delta.seq, delta.start_ms, delta.interval_ms,
            delta.frequency_hz, delta.slot_ms, delta.trace_id) == (
        "web-1", "cpu", 5, 1_700_000_000_000, 1000, 99, 20, 0)


def test_health_has_every_key_and_the_given_counts() -> None:
    delta = build_profile_delta({}, {"samples": 9, "stacks": 3, "unknown_symbols": 1}, **META)
    assert list(delta.health) == list(P.HEALTH_KEYS)
    assert delta.health == {**dict.fromkeys(P.HEALTH_KEYS, 0), "samples": 9, "stacks": 3,
                            "unknown_symbols": 1}
    assert (delta.strings, delta.stacks, delta.slots) == ([], [], [])


def test_off_cpu_kind_without_frequency() -> None:
    merged = {(1, "db", ("main", "--", "wake", "kworker")): {0: 1500, 1: 20}}
    delta = build_profile_delta(merged, {}, **{**META, "kind": "offwake", "frequency_hz": 0})
    assert delta.stacks == [[1, 0, 1520, 1, 2, 3, 4]] and delta.slots == [[0, 1500, 1, 20]]
    assert P.decode(P.encode(delta)) == delta


def test_decode_accepts_a_large_random_delta() -> None:
    rng = random.Random(7)
    names = [f"fn{i}" for i in range(300)]
    merged: dict = {}
    for _ in range(2000):
        frames = tuple(rng.choice(names) for _ in range(rng.randint(1, 12)))
        windows = merged.setdefault((rng.randint(1, 50), f"comm{rng.randint(0, 5)}", frames), {})
        for _ in range(rng.randint(1, 4)):
            w = rng.randrange(50)
            windows[w] = windows.get(w, 0) + rng.randint(1, 9)
    delta = build_profile_delta(merged, {"samples": 1}, **META)
    again = P.decode(P.encode(delta))
    assert again == delta
    total = sum(n for windows in merged.values() for n in windows.values())
    assert sum(row[2] for row in again.stacks) == total
    assert sorted((pid, comm, tuple(frames), weight)
                  for pid, comm, frames, weight in again.iter_stacks()) == sorted(
        (pid, comm, frames, sum(w.values())) for (pid, comm, frames), w in merged.items())


def test_builder_loads_neither_bcc_nor_django() -> None:
    code = ("import sys, collectors.delta; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('bcc', 'django')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
