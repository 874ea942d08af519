"""Live recordings: sessions written while a host's collector streams.

The server is one daphne process, so recordings live in this module's
:data:`RECORDER`.  The collector consumer calls :meth:`Recorder.feed` with
every delta (a dict lookup, then a queue put: nothing blocks the event loop);
one writer thread applies them to each recording of that host, in order, and
ends fixed-length recordings when their time is up, even if the collector
has gone quiet.

A recording is either live (``trace_id`` 0: every live delta of its host)
or bound to one targeted trace (only deltas carrying that ``trace_id``).
Trace deltas never reach live recordings, nor live deltas a trace's: a
trace's session holds exactly what the trace measured.  A trace recording
has no clock of its own; it ends when the trace does (the trace broker
calls :meth:`Recorder.stop`).

The queue holds at most ``WEBPROF_RECORDER_QUEUE`` deltas: when the writer
falls behind (a slow disk, many recordings), a delta is refused, logged and
counted on every recording that wanted it (``Session.dropped_intervals``,
shown on the session page) rather than growing memory without bound.
Control items (stop, mark) are never refused.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections

from ..core.clock import now_ms
from ..core.protocol import LatencyDelta, ProfileDelta
from .models import Session
from .store import SessionWriter

log = logging.getLogger(__name__)
# A fixed-length recording waits this long past its end for the last interval.
STOP_GRACE_MS = 2500
POLL_S = 0.25


@dataclass
class Recording:
    writer: SessionWriter
    host: str
    started_ms: int
    stop_at_ms: int | None
    trace_id: int = 0  # 0: the host's live stream; else only this trace's deltas
    intervals: int = 0
    errors: int = 0
    dropped: int = 0  # deltas refused because the queue was full

    @property
    def owner_id(self) -> int | None:
        return self.writer.session.owner_id

    def status(self) -> dict[str, Any]:
        now = now_ms()
        return {"state": "recording", "elapsed_ms": now - self.started_ms,
                "remaining_ms": None if self.stop_at_ms is None
                else max(0, self.stop_at_ms - now),
                "intervals": self.intervals, "size_bytes": self.writer.session.size_bytes,
                "errors": self.errors, "dropped": self.dropped}


class Recorder:
    def __init__(self, max_queued: int | None = None) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.max_queued = max_queued or settings.WEBPROF_RECORDER_QUEUE
        self._queued = 0  # deltas in the queue; guarded by _lock
        self._lock = threading.Lock()
        self._active: dict[int, Recording] = {}
        self._hosts: dict[str, int] = {}  # host -> number of active live recordings
        self._traces: dict[int, int] = {}  # trace id -> its recording's session id
        self._thread: threading.Thread | None = None

    # ---- called from views and consumers (any thread) ----

    def start(self, session: Session, trace_id: int = 0) -> None:
        """Record into ``session``: its host's live deltas, or with ``trace_id``
        only that trace's (then it runs until :meth:`stop`)."""
        with self._lock:
            self._active[session.pk] = Recording(
                SessionWriter(session), session.host, session.started_ms,
                None if trace_id else session.stop_at_ms, trace_id)
            if trace_id:
                self._traces[trace_id] = session.pk
            else:
                self._hosts[session.host] = self._hosts.get(session.host, 0) + 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="webprof-recorder",
                                                daemon=True)
                self._thread.start()

    def feed(self, delta: ProfileDelta | LatencyDelta) -> None:
        wanted = self._traces if delta.trace_id else self._hosts
        if not wanted.get(delta.trace_id or delta.host):
            return
        with self._lock:
            if self._queued >= self.max_queued:
                self._refuse(delta)
                return
            self._queued += 1
        self._queue.put(("delta", delta))

    def _refuse(self, delta: ProfileDelta | LatencyDelta) -> None:
        """Count a delta the full queue refused on each recording that wanted
        it; log the 1st, 10th, 100th... (the total is logged when it ends).
        Called holding _lock."""
        for sid, rec in self._active.items():
            if rec.host == delta.host and rec.trace_id == delta.trace_id:
                rec.dropped += 1
                if str(rec.dropped).strip("0") == "1":  # 1, 10, 100, ...
                    log.warning("recording %s: interval %s of %s dropped, the recorder is "
                                "%d deltas behind (WEBPROF_RECORDER_QUEUE); %d dropped so far",
                                sid, delta.seq, delta.kind, self.max_queued, rec.dropped)

    def live_recordings_of(self, user_id: int) -> int:
        """Recordings started from the live pages by one user, running now."""
        with self._lock:
            return sum(1 for r in self._active.values()
                       if not r.trace_id and r.owner_id == user_id)

    def stop(self, session_id: int, state: str = "complete") -> bool:
        """Ask for a recording to end (after the deltas fed before this call)
        with the session in ``state``; False if it is not recording here."""
        with self._lock:
            if session_id not in self._active:
                return False
        self._queue.put(("stop", (session_id, state)))
        return True

    def status(self, session_id: int) -> dict[str, Any] | None:
        with self._lock:
            rec = self._active.get(session_id)
            return rec.status() if rec else None

    def is_recording(self, session_id: int) -> bool:
        with self._lock:
            return session_id in self._active

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Block until queued work is written (tests, shutdown)."""
        done = threading.Event()
        with self._lock:  # the thread only exits holding the lock, with an empty queue
            if self._thread is None:
                return
            self._queue.put(("mark", done))
        done.wait(timeout_s)

    # ---- the writer thread ----

    def _run(self) -> None:
        """Serve the queue; exit once idle with nothing recording, so no thread
        (and no database connection) lingers between recordings."""
        while True:
            try:
                what, item = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                with self._lock:
                    if not self._active and self._queue.empty():
                        self._thread = None
                        connections.close_all()  # this thread's own connections
                        return
                what, item = "tick", None
            if what == "mark":
                item.set()
                continue
            try:
                close_old_connections()
                if what == "delta":
                    with self._lock:
                        self._queued -= 1
                    self._apply(item)
                elif what == "stop":
                    self._finish(*item)
                self._expire()
            except Exception:  # noqa: BLE001 - the thread must outlive one bad write
                log.exception("recorder: %s failed", what)

    def _apply(self, delta: ProfileDelta | LatencyDelta) -> None:
        with self._lock:
            recs = [(sid, r) for sid, r in self._active.items()
                    if r.host == delta.host and r.trace_id == delta.trace_id]
        for sid, rec in recs:
            end_ms = delta.start_ms + delta.interval_ms
            # A trace's deltas are all its own, whatever the collector's clock says.
            if end_ms <= rec.started_ms and not rec.trace_id:
                continue  # an interval that ended before the user pressed Record
            if rec.stop_at_ms is not None and delta.start_ms >= rec.stop_at_ms:
                self._finish(sid, "complete")
                continue
            try:
                rec.writer.add(delta)
                rec.intervals += 1
            except Exception:
                rec.errors += 1
                log.exception("recording %s: interval %s of %s not saved", sid, delta.seq,
                              delta.kind)

    def _expire(self) -> None:
        now = now_ms()
        with self._lock:
            due = [sid for sid, r in self._active.items()
                   if r.stop_at_ms is not None and now >= r.stop_at_ms + STOP_GRACE_MS]
        for sid in due:
            self._finish(sid, "complete")

    def _finish(self, session_id: int, state: str) -> None:
        with self._lock:
            rec = self._active.pop(session_id, None)
            if rec is None:
                return
            if rec.trace_id:
                self._traces.pop(rec.trace_id, None)
            else:
                self._hosts[rec.host] -= 1
                if not self._hosts[rec.host]:
                    del self._hosts[rec.host]
        session = rec.writer.finish(state)
        if rec.dropped:
            Session.objects.filter(pk=session_id).update(dropped_intervals=rec.dropped)
            log.warning("recording %s ended with %d intervals dropped (WEBPROF_RECORDER_QUEUE)",
                        session_id, rec.dropped)
        if session.ended_ms is None or session.intervals == 0:
            Session.objects.filter(pk=session_id).update(ended_ms=session.started_ms)


RECORDER = Recorder()


def mark_interrupted() -> int:
    """At start-up: recordings of a previous server process cannot resume."""
    return Session.objects.filter(state="recording").update(state="interrupted")
