"""``webprof collect``: profile this machine and stream to a webprof server.

The runner owns the loop: every interval it drains the CPU collector (in a
worker thread, so the websocket keeps being served) and hands the encoded
delta to :class:`collectors.client.Uplink`, which sends it or buffers it
while the server is away.  SIGTERM or SIGINT finishes the current drain,
sends it, and exits 0.  A refused token exits 3 without retrying.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import sys

from collectors import bcc_env
from webprof.core.protocol import CollectorHello, encode

EXIT_NO_BPF = 2
EXIT_BAD_TOKEN = 3
AGENT_VERSION = "0.1.0"


def main(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("WEBPROF_TOKEN", "")
    if not token:
        print("webprof collect: no collector token: pass --token TOKEN or set WEBPROF_TOKEN "
              "(the token is printed by `webprof serve`)", file=sys.stderr)
        return EXIT_NO_BPF
    problem = bcc_env.check_privileges()
    if problem:
        print(f"webprof collect: cannot load eBPF programs: {problem}", file=sys.stderr)
        return EXIT_NO_BPF
    host = args.name or socket.gethostname()
    try:
        return asyncio.run(run(args.server, token, host, args.frequency, args.interval))
    except bcc_env.BpfUnavailable as exc:
        print(f"webprof collect: {exc}", file=sys.stderr)
        return EXIT_NO_BPF
    except ValueError as exc:
        print(f"webprof collect: {exc}", file=sys.stderr)
        return 1


async def run(server: str, token: str, host: str, frequency_hz: int,
              interval_s: float) -> int:
    from collectors.client import BadToken, Uplink, collector_url, log
    from collectors.cpu import CpuCollector

    interval_ms = int(interval_s * 1000)
    hello = CollectorHello(host=host, kernel=platform.release(), collectors=["cpu"],
                           frequency_hz=frequency_hz, interval_ms=interval_ms,
                           agent_version=AGENT_VERSION)
    uplink = Uplink(collector_url(server), token, hello)
    stop, finished = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    collector = CpuCollector(frequency_hz=frequency_hz, interval_ms=interval_ms, host=host)
    with collector:
        log(f"collecting on {host} at {frequency_hz} Hz, sending every {interval_s:g} s "
            f"to {uplink.url}")
        sender = asyncio.create_task(uplink.run(finished))
        try:
            await _collect(collector, uplink, stop, interval_s, sender)
        finally:
            finished.set()
        try:
            await asyncio.wait_for(sender, timeout=10)
        except BadToken:
            log("the server refused the collector token; copy the token printed by "
                "`webprof serve` (or set WEBPROF_TOKEN)")
            return EXIT_BAD_TOKEN
        except TimeoutError:
            log(f"stopping: could not flush {len(uplink.buffer)} interval(s) in time")
    log(f"stopped: sent {uplink.sent} interval(s), dropped {uplink.dropped}")
    return 0


async def _collect(collector, uplink, stop: asyncio.Event, interval_s: float,
                   sender: asyncio.Task) -> None:
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
        delta = await asyncio.to_thread(collector.drain)
        uplink.push(encode(delta))
