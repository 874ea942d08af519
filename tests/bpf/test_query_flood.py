"""A flood of host questions does not delay the intervals: the runner's real
drain loop (collectors/runner.py ``_collect``) with a real CPU collector,
while 200 questions arrive at its TraceDesk in bursts of 25: symbols of a
large library, the process list, and paths that block a reader (/proc/kmsg,
trace_pipe, a FIFO).  Every delta leaves on time, every question is answered (or refused
as busy) within the desk's time limit."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from collectors import runner
from collectors.runner import QUERY_TIMEOUT_S, Fleet, TraceDesk, _collect
from collectors.traces import TraceManager
from tests.conftest import require_bpf
from webprof.core.protocol import CollectorConfig
from webprof.core.trace_messages import CollectorQuery

pytestmark = pytest.mark.bpf

INTERVAL_S = 1.0
QUERIES = 200
BURST = 25  # questions arriving at once, every BURST_EVERY_S: 8 bursts
BURST_EVERY_S = 1.0
LATE_S = 0.5  # a delta may leave this long after its deadline (drain included)


def large_library() -> str:
    """The largest shared library here (libLLVM where bcc is installed)."""
    libs = [p for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib")
            if os.path.isdir(d) for p in Path(d).glob("lib*.so*")
            if p.is_file() and not p.is_symlink()]
    return str(max(libs, key=lambda p: p.stat().st_size))


class Recorder:
    """Stands where the uplink is: records when each message was pushed."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, dict]] = []

    def push(self, text: str) -> None:
        self.sent.append((time.monotonic(), json.loads(text)))

    def of(self, type_: str) -> list[tuple[float, dict]]:
        return [(t, m) for t, m in self.sent if m["type"] == type_]


def question(i: int, library: str, fifo: str) -> CollectorQuery:
    blocking = ["/proc/kmsg", "/sys/kernel/tracing/trace_pipe", fifo]
    if i % 10 == 3:
        return CollectorQuery(query_id=i, what="symbols",
                              args={"binary": blocking[i // 10 % 3]})
    if i % 10 == 7:
        return CollectorQuery(query_id=i, what="processes", args={})
    return CollectorQuery(query_id=i, what="symbols",
                          args={"binary": library, "prefix": "_ZN", "limit": 200})


def test_a_question_flood_leaves_the_intervals_on_time(tmp_path: Path) -> None:
    require_bpf()
    library, fifo = large_library(), str(tmp_path / "pipe")
    os.mkfifo(fifo, 0o644)
    fleet = Fleet(host="testhost", interval_ms=int(INTERVAL_S * 1000))
    assert fleet.apply(CollectorConfig(collectors=["cpu"], frequency_hz=49)) == []
    out = Recorder()
    asked: dict[int, float] = {}
    clock: dict[str, float] = {}

    async def scenario() -> None:
        desk = TraceDesk(TraceManager("testhost", fleet.interval_ms), out)
        stop, never = asyncio.Event(), asyncio.Event()
        sender = asyncio.create_task(never.wait())
        clock["start"] = time.monotonic()
        loop = asyncio.create_task(_collect(fleet, out, asyncio.Queue(), stop, INTERVAL_S,
                                            sender, desk))
        await asyncio.sleep(INTERVAL_S * 1.5)
        for i in range(QUERIES):
            asked[i] = time.monotonic()
            desk.on_message(question(i, library, fifo))
            if i % BURST == BURST - 1:
                await asyncio.sleep(BURST_EVERY_S)
        await asyncio.sleep(QUERY_TIMEOUT_S + INTERVAL_S)
        clock["stop"] = time.monotonic()
        stop.set()
        await loop
        sender.cancel()
        await desk.shut_down()

    try:
        asyncio.run(scenario())
    finally:
        fleet.close()
    # The loop drains at start + k * INTERVAL_S (then once more when stopped):
    # lateness is how long after its deadline each delta was pushed.
    deltas = [t for t, _ in out.of("profile.delta") if t < clock["stop"]]
    lateness = [t - (clock["start"] + (i + 1) * INTERVAL_S) for i, t in enumerate(deltas)]
    answers = {m["query_id"]: (t, m) for t, m in out.of("collector.answer")}
    waits = [t - asked[q] for q, (t, _) in answers.items()]
    busy = sum("busy" in (m.get("error") or "") for _, m in answers.values())
    symbols = sum(bool(m.get("result")) for _, m in answers.values())
    print(f"{len(deltas)} deltas, lateness max {max(lateness):.3f} s; {len(answers)} answers "
          f"({symbols} with a result, {busy} busy), slowest {max(waits):.2f} s")
    assert len(deltas) >= (QUERIES / BURST * BURST_EVERY_S + QUERY_TIMEOUT_S) / INTERVAL_S
    assert 0 <= min(lateness) and max(lateness) < LATE_S, (
        [round(x, 3) for x in lateness])
    assert sorted(answers) == list(range(QUERIES))
    assert max(waits) < QUERY_TIMEOUT_S + 0.5
    assert symbols >= 20  # the pool answers, it does not only refuse
    for i in range(QUERIES):
        if i % 10 == 3:
            error = answers[i][1].get("error") or ""
            assert "not read" in error or "not a regular file" in error or "busy" in error


def test_the_desk_refuses_when_full_and_gives_up_slow_questions(monkeypatch) -> None:
    """Real /proc scans (each first process list takes 0.5 s): beyond the pending
    limit the answer is "busy" at once, and past the time limit an error."""
    monkeypatch.setattr(runner, "QUERY_TIMEOUT_S", 0.2)
    out = Recorder()

    async def scenario() -> None:
        desk = TraceDesk(TraceManager("testhost", 1000), out)
        for i in range(runner.QUERY_PENDING + 5):
            desk.on_message(CollectorQuery(query_id=i, what="processes", args={}))
        await asyncio.sleep(1.5)
        await desk.shut_down()

    asyncio.run(scenario())
    errors = [m.get("error") or "" for _, m in out.of("collector.answer")]
    assert len(errors) == runner.QUERY_PENDING + 5
    assert sum(e.startswith("busy") for e in errors) == 5
    assert sum("no answer within 0.2 s" in e for e in errors) >= 1
