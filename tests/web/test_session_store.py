"""Sessions written interval by interval and read back by range (SQLite and PostgreSQL)."""

from __future__ import annotations

import random

import pytest

from webprof.core.protocol import LatencyDelta, ProfileDelta
from webprof.sessions.export import ExportError, export_session, import_folded
from webprof.sessions.models import ProfileChunk, SessionStack, SessionString
from webprof.sessions.store import SessionReader, save_deltas, stored_bytes

pytestmark = [pytest.mark.web, pytest.mark.django_db]

ORIGIN = 1_750_000_000_000


def phase_delta(second: int, leaf: str, samples: int) -> ProfileDelta:
    """One second of CPU samples, all in function ``leaf``, spread over slots."""
    per_slot = [samples // 50 + (1 if i < samples % 50 else 0) for i in range(50)]
    pairs = [x for i, n in enumerate(per_slot) if n for x in (i, n)]
    return ProfileDelta(host="h", kind="cpu", seq=second, start_ms=ORIGIN + second * 1000,
                        interval_ms=1000, frequency_hz=99, strings=["app", "main", leaf],
                        stacks=[[42, 0, samples, 1, 2]], health={"samples": samples},
                        slot_ms=20, slots=[pairs])


def make_session(seconds: int = 150):
    # Phases of known length: "early" for the first 70 s, then "late".
    deltas = [phase_delta(s, "early" if s < 70 else "late", 99) for s in range(seconds)]
    deltas.append(LatencyDelta(host="h", kind="syscall", seq=0, start_ms=ORIGIN,
                               interval_ms=1000, series={"read": [[2, 4, 9]]}, health={}))
    return save_deltas(deltas, name="phases", host="h", started_ms=ORIGIN,
                       frequency_hz=99, interval_ms=1000)


def folded_of(session, **kw) -> dict[str, int]:
    tree = SessionReader(session).tree("cpu", **kw).tree
    return {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1])
            for line in tree.to_folded().splitlines()}


def test_ranges_read_rollups_and_edges_and_agree_with_ground_truth() -> None:
    session = make_session()
    assert session.state == "complete" and session.kinds == ["cpu", "syscall"]
    assert session.ended_ms == ORIGIN + 150_000 and session.intervals == 151
    # Stacks and names are stored once, not once per interval.
    assert SessionStack.objects.filter(session=session).count() == 2
    assert SessionString.objects.filter(session=session).count() == 4
    assert ProfileChunk.objects.filter(session=session, level=1).count() == 3
    assert folded_of(session) == {"app;main;early": 70 * 99, "app;main;late": 80 * 99}
    whole = SessionReader(session).tree("cpu", ORIGIN, ORIGIN + 150_000)
    assert (whole.rollups_read, whole.chunks_read) == (3, 0)
    part = SessionReader(session).tree("cpu", ORIGIN + 30_000, ORIGIN + 150_000)
    assert (part.rollups_read, part.chunks_read) == (2, 30)  # the first minute is cut
    assert part.tree.total == 120 * 99
    # A range cutting through seconds at slot precision: 69.5 s .. 70.5 s.
    cut = folded_of(session, from_ms=ORIGIN + 69_500, to_ms=ORIGIN + 70_500)
    assert cut == {"app;main;early": 49, "app;main;late": 50}
    assert session.size_bytes > 0 and stored_bytes(session) > 0


def test_heatmap_timeline_and_latency() -> None:
    session = make_session(seconds=3)
    reader = SessionReader(session)
    hm = reader.heatmap("cpu")
    assert (hm.columns, hm.rows) == (3, 50)
    assert sum(map(sum, hm.z)) == 3 * 99 and hm.z[0][0] == 2 and hm.z[49][0] == 1
    assert reader.timeline("cpu") == [[ORIGIN + s * 1000, 1000, 99] for s in range(3)]
    assert reader.latency("syscall")[0]["series"] == {"read": [[2, 4, 9]]}


def test_export_import_round_trip_and_bad_files() -> None:
    session = make_session(seconds=5)
    folded = export_session(session, "folded").data
    again = import_folded(folded, "again")
    assert again.source == "import" and again.kinds == ["cpu"]
    assert export_session(again, "folded").data == folded
    with pytest.raises(ExportError, match="line 2"):
        import_folded(b"a;b 1\nthis line has no count\n", "bad")
    with pytest.raises(ExportError, match="no 'offcpu' profile"):
        export_session(session, "pprof", kind="offcpu")


def test_random_ranges_equal_reading_every_interval() -> None:
    rng = random.Random(7)
    deltas = []
    for s in range(130):
        leaf = f"f{rng.randrange(8)}"
        deltas.append(phase_delta(s, leaf, rng.randrange(1, 120)))
    session = save_deltas(deltas, name="r", host="h", started_ms=ORIGIN)
    reader = SessionReader(session)
    for _ in range(10):
        a = ORIGIN + rng.randrange(0, 130_000)
        b = a + rng.randrange(1, 130_000)
        got = reader.tree("cpu", a, b).tree.total
        want = 0
        for d in deltas:
            for slot, weight in zip(d.slots[0][::2], d.slots[0][1::2], strict=True):
                if a <= d.start_ms + slot * 20 < b:
                    want += weight
        assert got == want, (a - ORIGIN, b - ORIGIN)
