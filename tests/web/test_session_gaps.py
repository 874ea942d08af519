"""A hole in a recording (the collector restarted for 11 s) is counted on the
session and drawn as a break in the timeline, not as the last rate carried
across it."""

from __future__ import annotations

import pytest
from test_session_store import ORIGIN, phase_delta

from webprof.core.protocol import LatencyDelta
from webprof.sessions.store import SessionReader, save_deltas

pytestmark = [pytest.mark.web, pytest.mark.django_db]

BEFORE, HOLE_S, AFTER = 20, 11, 10  # seconds recorded, missing, recorded again


def latency(second: int) -> LatencyDelta:
    return LatencyDelta(host="h", kind="syscall", seq=second, start_ms=ORIGIN + second * 1000,
                        interval_ms=1000, series={"read": [[2, 4, 9]]}, health={})


def seconds() -> list[int]:
    return [*range(BEFORE), *range(BEFORE + HOLE_S, BEFORE + HOLE_S + AFTER)]


def gapped_session(with_latency: bool = True):
    deltas = []
    for n, second in enumerate(seconds()):
        delta = phase_delta(second, "hot", 99)
        # The restarted collector counts its seq from 0 again.
        deltas.append(delta.__class__(**{**delta.__dict__, "seq": n if second < BEFORE
                                         else second - BEFORE - HOLE_S}))
        if with_latency:
            deltas.append(latency(second))
    return save_deltas(deltas, name="restart", host="h", started_ms=ORIGIN,
                       frequency_hz=99, interval_ms=1000)


def test_an_11_s_hole_is_counted_once_across_kinds() -> None:
    session = gapped_session()
    assert (session.gaps, session.gap_ms) == (1, HOLE_S * 1000)
    session.refresh_from_db()
    assert (session.gaps, session.gap_ms) == (1, HOLE_S * 1000)
    assert session.duration_ms == (BEFORE + HOLE_S + AFTER) * 1000


def test_continuous_sessions_have_no_gap() -> None:
    deltas = [phase_delta(s, "hot", 99) for s in range(40)] + [latency(s) for s in range(40)]
    session = save_deltas(deltas, name="steady", host="h", started_ms=ORIGIN,
                          frequency_hz=99, interval_ms=1000)
    assert (session.gaps, session.gap_ms) == (0, 0)
    points = SessionReader(session).timeline("cpu")
    assert len(points) == 40 and None not in {p[2] for p in points}


def test_the_timeline_carries_a_null_point_at_the_hole(client, django_user_model) -> None:
    session = gapped_session(with_latency=False)
    points = SessionReader(session).timeline("cpu")
    assert len(points) == BEFORE + AFTER + 1
    assert points[BEFORE] == [ORIGIN + BEFORE * 1000, HOLE_S * 1000, None]
    assert points[BEFORE - 1][2] == 99 and points[BEFORE + 1] == [
        ORIGIN + (BEFORE + HOLE_S) * 1000, 1000, 99]
    # The same through the page's JSON, and the count on the page.
    user = django_user_model.objects.create_user("ann", password="pw-123456789")
    session.owner = user
    session.save()
    client.force_login(user)
    data = client.get(f"/sessions/{session.pk}/timeline.json").json()
    assert data["kinds"]["cpu"]["points"][BEFORE] == [ORIGIN + BEFORE * 1000, 11000, None]
    page = client.get(f"/sessions/{session.pk}/").content.decode()
    assert 'id="gaps"' in page and "1 gap" in page and "11.0 s" in page
