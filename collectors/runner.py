"""``webprof collect``: profile this machine and stream to a webprof server.

The runner owns the loop: every interval it drains each running collector
(cpu, offcpu, offwake, runqlat, biolat, syscall; in a worker thread, so the
websocket keeps being served) and hands each encoded delta to
:class:`collectors.client.Uplink`, which sends it or buffers it while the
server is away.  SIGTERM or SIGINT finishes the current drain, sends it, and
exits 0.  A refused token exits 3 without retrying.

Targeted traces: ``trace.start`` / ``trace.cancel`` / ``collector.query``
from the server go to a :class:`TraceDesk`, which hands them to the
:class:`collectors.traces.TraceManager` (or answers the query) in worker
threads and pushes the resulting states and answers.  The traces are
drained with the fleet every interval.  When the connection drops every
trace is stopped and detached (the server marks them failed itself); on
SIGTERM they are reported cancelled before the last flush.

The server may send ``collector.config`` (a user chose other collectors on
the host page).  The runner validates it again, stops the collectors no
longer wanted (always detaching their programs), starts the new ones (a
compile failure is logged and reported to the server as an ``error``; the
others keep running) and answers with a new ``collector.hello`` listing
what runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from collectors import bcc_env, client, registry
from collectors.base import Collector
from collectors.client import BadToken, Outbox, Uplink, collector_url
from collectors.console import log
from collectors.tokenfile import read_token_file
from collectors.tracecheck import ProcessSampler, answer
from collectors.traces import TraceManager
from webprof.core import kinds
from webprof.core.hostname import host_name_problem
from webprof.core.protocol import (
    CollectorConfig,
    CollectorHello,
    Error,
    Message,
    encode,
)
from webprof.core.trace_messages import CollectorAnswer, CollectorQuery, TraceCancel, TraceStart

EXIT_NO_BPF = 2
EXIT_BAD_TOKEN = 3
AGENT_VERSION = "0.1.0"
KNOWN_COLLECTORS = kinds.LIVE


def collector_token(args: argparse.Namespace) -> str:
    """--token, else --token-file, else $WEBPROF_TOKEN; ValueError says what is wrong."""
    if getattr(args, "token", None):
        return args.token
    if getattr(args, "token_file", None):
        return read_token_file(args.token_file)
    token = os.environ.get("WEBPROF_TOKEN", "").strip()
    if not token:
        raise ValueError("no collector token: set WEBPROF_TOKEN or pass --token-file PATH "
                         "(the token is printed by `webprof serve`)")
    return token


def main(args: argparse.Namespace) -> int:
    try:
        token = collector_token(args)
    except ValueError as exc:
        print(f"webprof collect: {exc}", file=sys.stderr)
        return EXIT_NO_BPF
    ca_file = getattr(args, "ca_file", None)
    if ca_file and not collector_url(args.server).startswith("wss://"):
        print("webprof collect: --ca-file verifies a TLS server: use a wss:// (or https://) "
              "--server URL", file=sys.stderr)
        return 1
    try:
        client.use_ca_file(ca_file)  # checked before the seconds of compiling
    except ValueError as exc:
        print(f"webprof collect: {exc}", file=sys.stderr)
        return 1
    problem = bcc_env.check_privileges()
    if problem:
        print(f"webprof collect: cannot load eBPF programs: {problem}", file=sys.stderr)
        return EXIT_NO_BPF
    host = args.name or socket.gethostname()
    bad_name = host_name_problem(host)
    if bad_name:  # --name is checked by argparse; this is the machine's own name
        print(f"webprof collect: {bad_name}; pass --name NAME", file=sys.stderr)
        return 1
    wanted = list(getattr(args, "collectors", None) or ["cpu"])
    config = CollectorConfig(collectors=wanted, frequency_hz=args.frequency)
    try:
        return asyncio.run(run(args.server, token, host, config, args.interval))
    except bcc_env.BpfUnavailable as exc:
        print(f"webprof collect: {exc}", file=sys.stderr)
        return EXIT_NO_BPF
    except ValueError as exc:
        print(f"webprof collect: {exc}", file=sys.stderr)
        return 1
    except client.BadCertificate as exc:
        print(f"webprof collect: {exc}", file=sys.stderr)
        return 1


def check_config(config: CollectorConfig) -> str | None:
    """Validate a config again on this side (the server is trusted, not blindly)."""
    try:
        config.validate()
    except ValueError as exc:
        return str(exc)
    if len(set(config.collectors)) != len(config.collectors):
        return "collector.config: a collector is named twice"
    unknown = [c for c in config.collectors if c not in KNOWN_COLLECTORS]
    if unknown:
        return f"collector.config: unknown collectors {unknown}"
    if config.max_block_us is not None and config.max_block_us > 10**12:
        return "collector.config: max_block_us is over 10^12"
    return None


def options_of(kind: str, config: CollectorConfig) -> tuple:
    """The options a collector of ``kind`` is built with: a change restarts it."""
    return tuple(getattr(config, name) for name in kinds.BY_NAME[kind].options)


@dataclass
class Fleet:
    """The collectors running in this process, by kind, with their options."""

    host: str
    interval_ms: int
    running: dict[str, tuple[tuple, Collector]] = field(default_factory=dict)
    config: CollectorConfig | None = None

    def names(self) -> list[str]:
        return [k for k in KNOWN_COLLECTORS if k in self.running]

    def apply(self, config: CollectorConfig) -> list[tuple[str, Exception]]:
        """Stop what is no longer wanted, start what is new; return start failures.

        Blocking (compiles take seconds): call it in a worker thread.
        """
        self.config = config
        for kind in list(self.running):
            options, collector = self.running[kind]
            if kind not in config.collectors or options != options_of(kind, config):
                del self.running[kind]
                stop_collector(kind, collector)
        failures = []
        for kind in config.collectors:
            if kind in self.running:
                continue
            collector = registry.for_config(kind, config, self.interval_ms, self.host)
            try:
                with bcc_env.COMPILE_LOCK:  # traces compile in other threads
                    collector.__enter__()
            except Exception as exc:  # any failure is reported, others run on
                stop_collector(kind, collector)
                failures.append((kind, exc))
                continue
            self.running[kind] = (options_of(kind, config), collector)
        return failures

    def drain(self) -> tuple[list[Message], list[str]]:
        """One interval of every collector, and the drains that failed."""
        out, errors = [], []
        for kind, (_options, collector) in self.running.items():
            try:
                out.append(collector.drain())
            except Exception as exc:  # one broken drain must not stop the rest
                errors.append(f"{kind}: drain failed: {exc}")
        return out, errors

    def close(self) -> None:
        for kind in list(self.running):
            stop_collector(kind, self.running.pop(kind)[1])

    def hello(self, frequency_hz: int) -> CollectorHello:
        return CollectorHello(host=self.host, kernel=platform.release(), collectors=self.names(),
                              frequency_hz=frequency_hz, interval_ms=self.interval_ms,
                              agent_version=AGENT_VERSION)


def stop_collector(kind: str, collector: Collector) -> None:
    """Detach a collector's programs; a failure here is logged, never raised."""
    try:
        collector.__exit__(None, None, None)
    except Exception as exc:  # keep stopping the others
        log(f"{kind}: error while detaching: {exc}")


def failure_message(kind: str, exc: Exception) -> str:
    text = " ".join(str(exc).split())[:500] or type(exc).__name__
    return f"{kind} collector could not start: {text}"


async def run(server: str, token: str, host: str, config: CollectorConfig,
              interval_s: float) -> int:
    problem = check_config(config)
    if problem:
        raise ValueError(problem.replace("collector.config: ", "--collectors: "))
    fleet = Fleet(host=host, interval_ms=int(interval_s * 1000))
    desk: TraceDesk | None = None
    try:
        failures = await asyncio.to_thread(fleet.apply, config)
        for kind, exc in failures:
            log(failure_message(kind, exc))
        if not fleet.running:
            first = failures[0][1] if failures else None
            if isinstance(first, (bcc_env.BpfUnavailable, ValueError)):
                raise first
            raise bcc_env.BpfUnavailable("; ".join(failure_message(k, e) for k, e in failures))
        configs: asyncio.Queue[CollectorConfig] = asyncio.Queue()
        outbox = Outbox()  # the desk pushes to it; the uplink sends from it
        desk = TraceDesk(TraceManager(host, fleet.interval_ms), outbox)
        uplink = Uplink(collector_url(server), token, fleet.hello(config.frequency_hz),
                        on_config=configs.put_nowait, on_trace=desk.on_message,
                        on_disconnect=desk.on_disconnect, outbox=outbox)
        for kind, exc in failures:
            uplink.push(encode(Error(code="collector_failed", message=failure_message(kind, exc))))
        return await _serve(fleet, uplink, configs, interval_s, BadToken, log, desk)
    finally:
        await asyncio.to_thread(fleet.close)
        if desk is not None:
            await asyncio.to_thread(desk.manager.close)


async def _serve(fleet: Fleet, uplink: Uplink, configs: asyncio.Queue, interval_s: float,
                 bad_token: type[Exception], log: Any, desk: TraceDesk) -> int:
    stop, finished = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log(f"collecting on {fleet.host}: {', '.join(fleet.names())}; sending every "
        f"{interval_s:g} s to {uplink.url}")
    sender = asyncio.create_task(uplink.run(finished))
    try:
        await _collect(fleet, uplink, configs, stop, interval_s, sender, desk)
        await desk.shut_down()
    finally:
        finished.set()
    try:
        await asyncio.wait_for(sender, timeout=10)
    except bad_token:
        log("the server refused the collector token; copy the token printed by "
            "`webprof serve` (or set WEBPROF_TOKEN)")
        return EXIT_BAD_TOKEN
    except TimeoutError:
        log(f"stopping: could not flush {len(uplink.buffer)} message(s) in time")
    log(f"stopped: sent {uplink.sent} message(s), dropped {uplink.dropped}")
    return 0


async def _collect(fleet: Fleet, uplink: Uplink, configs: asyncio.Queue, stop: asyncio.Event,
                   interval_s: float, sender: asyncio.Task, desk: TraceDesk) -> None:
    """Drain every interval until stopped (or the sender gave up); drain once more."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + interval_s
    while not stop.is_set() and not sender.done():
        try:
            await asyncio.wait_for(stop.wait(), timeout=max(deadline - loop.time(), 0))
        except TimeoutError:
            pass
        deadline += interval_s
        if sender.done():
            return
        deltas, errors = await asyncio.to_thread(fleet.drain)
        for delta in deltas:
            uplink.push(encode(delta))
        for text in errors:
            uplink.push(encode(Error(code="drain_failed", message=text[:500])))
        await desk.drain()
        if not configs.empty() and not stop.is_set():
            await _reconfigure(fleet, uplink, configs)
            deadline = loop.time() + interval_s


async def _reconfigure(fleet: Fleet, uplink: Uplink, configs: asyncio.Queue) -> None:
    """Apply the newest pending collector.config (older ones are superseded)."""
    config = configs.get_nowait()
    while not configs.empty():
        config = configs.get_nowait()
    problem = check_config(config)
    if problem:
        log(f"refused {problem}")
        uplink.push(encode(Error(code="bad_config", message=problem)))
        return
    before = fleet.names()
    failures = await asyncio.to_thread(fleet.apply, config)
    for kind, exc in failures:
        text = failure_message(kind, exc)
        log(text)
        uplink.push(encode(Error(code="collector_failed", message=text)))
    hello = fleet.hello(config.frequency_hz)
    log(f"collector.config applied: was {', '.join(before) or 'nothing'}, "
        f"now {', '.join(hello.collectors) or 'nothing'}")
    uplink.set_hello(hello)


QUERY_WORKERS = 2
QUERY_PENDING = 8  # queries running or waiting for a worker; beyond: "busy"
QUERY_TIMEOUT_S = 4.0  # under the server's 5 s wait (webprof/traces/broker.py)


class TraceDesk:
    """Between the websocket and the TraceManager: every blocking step (checks,
    compiles, detaching, /proc scans) runs in a worker thread, and what it
    produces is pushed to the uplink: ``uplink`` is anything with
    ``push(text)``, the Uplink itself or the Outbox it sends from.

    Queries (``collector.query``) come from users and read /proc and ELF files,
    so they run in a pool of their own (QUERY_WORKERS threads, QUERY_PENDING
    at most, running or waiting; beyond that the answer is "busy" at once),
    never in the default executor that the drains use: a flood of them
    cannot delay an interval.  Each is answered within QUERY_TIMEOUT_S: a
    slower worker finishes later and its answer is dropped, and it keeps its
    pending slot until it does, so stuck workers fill the desk, not memory."""

    def __init__(self, manager: TraceManager, uplink: Outbox | Uplink | None = None) -> None:
        self.manager = manager
        self.uplink = uplink
        self.sampler = ProcessSampler()
        self._tasks: set[asyncio.Task] = set()  # keep references until done
        self._queries = ThreadPoolExecutor(QUERY_WORKERS, thread_name_prefix="query")
        self._query_slots = threading.BoundedSemaphore(QUERY_PENDING)

    def on_message(self, message: Message) -> None:
        """Called by the uplink (in the event loop) for trace.* and collector.query."""
        task = asyncio.get_running_loop().create_task(self.handle(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def handle(self, message: Message) -> None:
        try:
            if isinstance(message, TraceStart):
                log(f"trace {message.trace_id}: start requested ({message.spec.get('kind')})")
                await asyncio.to_thread(self.manager.start, message)
            elif isinstance(message, TraceCancel):
                await asyncio.to_thread(self.manager.cancel, message.trace_id)
            elif isinstance(message, CollectorQuery):
                self.uplink.push(encode(await self.answer(message)))
        except Exception as exc:  # a bug here must not kill the collector
            log(f"could not handle {message.type}: {exc}")
            self.uplink.push(encode(Error(code="trace_failed", message=str(exc)[:500])))
        self._push(self.manager.messages())

    async def answer(self, query: CollectorQuery) -> CollectorAnswer:
        """The query's answer from the query pool: "busy" when it is full, an
        error when the answer takes over QUERY_TIMEOUT_S or the worker failed."""
        if not self._query_slots.acquire(blocking=False):
            return CollectorAnswer(query_id=query.query_id, error=(
                f"busy: {QUERY_PENDING} questions are pending on this host; ask again shortly"))
        try:
            job = self._queries.submit(answer, query, self.manager.limits, self.sampler)
        except RuntimeError:  # shut down
            self._query_slots.release()
            raise
        job.add_done_callback(lambda _: self._query_slots.release())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job), QUERY_TIMEOUT_S)
        except TimeoutError:
            job.cancel()  # only if it never started; a running worker's answer is dropped
            return CollectorAnswer(query_id=query.query_id, error=(
                f"no answer within {QUERY_TIMEOUT_S:g} s: the question was given up"))
        except Exception as exc:  # a bug: still answer, so the asker does not wait 5 s
            return CollectorAnswer(query_id=query.query_id,
                                   error=f"the collector could not answer: {exc}"[:500])

    async def drain(self) -> None:
        """One interval of every trace (after the fleet's)."""
        self._push(await asyncio.to_thread(self.manager.drain))

    def on_disconnect(self) -> None:
        """The server is gone: stop and detach every trace, report nothing more."""
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.manager.close))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shut_down(self) -> None:
        """SIGTERM: stop every trace and report it cancelled before the last flush."""
        self._queries.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.manager.close, "the collector is stopping")
        self._push(self.manager.messages())

    def _push(self, messages: list[Message]) -> None:
        for message in messages:
            self.uplink.push(encode(message))
