"""Recordings cannot grow server memory: the recorder's queue is bounded
(refused deltas are counted on the session, logged and shown), and one user
runs at most WEBPROF_MAX_RECORDINGS_PER_USER live recordings at once."""

from __future__ import annotations

import gc
import threading
import tracemalloc

import pytest
from test_session_views import host, login, no_recording_left  # noqa: F401 (fixtures)

from webprof.core.protocol import ProfileDelta
from webprof.sessions.models import Session
from webprof.sessions.recording import RECORDER, Recorder, now_ms

pytestmark = [pytest.mark.web, pytest.mark.django_db(transaction=True)]

FLOOD = 10_000


def cpu_delta(seq: int, start_ms: int) -> ProfileDelta:
    return ProfileDelta(host="box1", kind="cpu", seq=seq, start_ms=start_ms, interval_ms=1000,
                        frequency_hz=99, strings=["app", "main", f"leaf{seq % 50}"],
                        stacks=[[7, 0, 40, 1, 2]], health={"samples": 40})


@pytest.mark.usefixtures("host")
def test_full_queue_refuses_counts_logs_and_shows(django_user_model, caplog):
    client, user = login(django_user_model, "alice")
    started = now_ms()
    session = Session.objects.create(name="long", host="box1", owner=user, source="live",
                                     state="recording", started_ms=started)
    recorder = Recorder(max_queued=5)
    # A writer that has stalled: start() sees it alive and starts no other.
    recorder._thread = threading.current_thread()
    recorder.start(session)
    tracemalloc.start()
    try:
        for seq in range(1_000):
            recorder.feed(cpu_delta(seq, started + 1000 * seq))
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for seq in range(1_000, FLOOD):
            recorder.feed(cpu_delta(seq, started + 1000 * seq))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    print(f"\n{FLOOD} deltas into a stalled recorder: traced memory grew "
          f"{grown / 1e3:.1f} kB after the first 1,000")
    assert grown < 200_000, f"memory grew by {grown} bytes"
    assert recorder.status(session.pk)["dropped"] == FLOOD - 5
    refusals = [r for r in caplog.records if "dropped" in r.getMessage()]
    # Logged at 1, 10, 100 and 1000 drops, not once per delta.
    assert len(refusals) == 4 and "WEBPROF_RECORDER_QUEUE" in refusals[0].getMessage()

    # The writer catches up: the five queued are kept, the count is stored.
    writer = threading.Thread(target=recorder._run, daemon=True)
    recorder._thread = writer
    writer.start()
    assert recorder.stop(session.pk)
    recorder.wait_idle()
    session.refresh_from_db()
    assert (session.intervals, session.dropped_intervals) == (5, FLOOD - 5)
    page = client.get(f"/sessions/{session.pk}/").content.decode()
    assert 'id="dropped"' in page and f"<b>{FLOOD - 5}</b> intervals not kept" in page


@pytest.mark.usefixtures("host")
def test_recordings_per_user_are_capped(django_user_model, settings):
    settings.WEBPROF_MAX_RECORDINGS_PER_USER = 2
    alice, alice_user = login(django_user_model, "alice")
    bob, _ = login(django_user_model, "bob")
    # A trace's session is recorded too, but it is not a live recording.
    traced = Session.objects.create(name="trace", host="box1", owner=alice_user,
                                    source="trace", state="recording", started_ms=now_ms())
    RECORDER.start(traced, trace_id=7)
    for _ in range(2):
        assert alice.post("/sessions/record/", {"host": "box1"}).status_code == 201
    refused = alice.post("/sessions/record/", {"host": "box1"})
    assert refused.status_code == 409
    assert "already running 2 recordings" in refused.json()["errors"]["__all__"]
    assert Session.objects.filter(owner=alice_user, source="live").count() == 2
    assert bob.post("/sessions/record/", {"host": "box1"}).status_code == 201
    # Once one stops, alice may start another.
    first = Session.objects.filter(owner=alice_user, source="live").first()
    assert alice.post(f"/sessions/{first.pk}/stop/").status_code == 200
    RECORDER.wait_idle()
    assert alice.post("/sessions/record/", {"host": "box1"}).status_code == 201
