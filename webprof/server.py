"""``webprof serve`` (daphne in this process) and ``webprof up`` (server + collector).

``up`` is the embedded, one-command setup: it creates a local ``admin``
account on first run, starts ``webprof serve`` and ``webprof collect`` as
child processes, and supervises them: Ctrl-C or SIGTERM stops both, and if
either dies the other is stopped and ``up`` exits non-zero.  Children are
separate processes because the collector needs root and bcc while the server
must never import bcc.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

from .commandline import prepare_django
from .core import protocol

STOP_GRACE_S = 5.0
PORT_WAIT_S = 30.0
# daphne refuses websocket messages over 1 MiB by default, silently for the
# application.  Let messages up to the protocol limit plus 1 MiB through, so the
# consumer can answer anything just over MAX_MESSAGE_BYTES with a clear
# "too_big" error; larger ones are cut by the transport (close 1009 or 1006).
TRANSPORT_MAX_MESSAGE_BYTES = protocol.MAX_MESSAGE_BYTES + 1024 * 1024


def serve(args: argparse.Namespace) -> int:
    """Run daphne on ``args.host:args.port`` until SIGINT/SIGTERM."""
    # daphne.server installs Twisted's asyncio reactor on import: import it first.
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server

    # Read by the settings: the default ALLOWED_HOSTS names this address.
    os.environ["WEBPROF_LISTEN_HOST"] = args.host
    if not prepare_django():
        return 2
    # The app's modules load models: only once prepare_django() has set Django up.
    from .models import Host
    from .sessions.recording import mark_interrupted

    Host.mark_all_disconnected()
    mark_interrupted()
    print(f"collector token: {settings.COLLECTOR_TOKEN}", flush=True)
    print(f"serving on {url(args.host, args.port)} (data in {settings.DATA_DIR})", flush=True)
    print(f"allowed host names: {', '.join(settings.ALLOWED_HOSTS)} "
          "(set WEBPROF_ALLOWED_HOSTS to reach it by another name)", flush=True)
    from .asgi import application  # after the two above: it loads the consumers and hub

    endpoints = build_endpoint_description_strings(host=args.host, port=args.port)
    Server(
        application=application,
        endpoints=endpoints,
        signal_handlers=True,
        websocket_max_message_size=TRANSPORT_MAX_MESSAGE_BYTES,
        websocket_max_frame_size=TRANSPORT_MAX_MESSAGE_BYTES,
    ).run()
    return 0


def url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def ensure_admin(data_dir: Path) -> None:
    """Create the local ``admin`` account once and print its password once."""
    users = get_user_model()
    password_file = data_dir / "admin-password"
    if users.objects.filter(username="admin").exists():
        print(f"log in as 'admin' (password in {password_file} if it was created by up)")
        return
    password = secrets.token_urlsafe(12)
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    users.objects.create_superuser("admin", email="", password=password)
    print(
        f"created admin account 'admin' with password {password} "
        f"(saved to {password_file}, readable by root only)",
        flush=True,
    )


def wait_for_port(host: str, port: int, child: subprocess.Popen, timeout_s: float) -> bool:
    """Poll until ``host:port`` accepts a connection; False if the child died or time ran out."""
    target = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return False
        try:
            with socket.create_connection((target, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def stop(children: list[subprocess.Popen]) -> None:
    """Stop children newest first: SIGTERM, wait up to STOP_GRACE_S, then SIGKILL.

    Newest first so the collector sends its last interval while the server
    still listens.
    """
    for child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


class Stop(Exception):
    """Raised from the SIGTERM handler to leave the supervision loop."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def up(args: argparse.Namespace) -> int:
    if not prepare_django():
        return 2
    ensure_admin(settings.DATA_DIR)
    env = dict(os.environ, WEBPROF_DATA_DIR=str(settings.DATA_DIR))
    signal.signal(signal.SIGTERM, _raise_stop)
    children: list[subprocess.Popen] = []
    try:
        return supervise(args, env, settings.COLLECTOR_TOKEN, children)
    except (KeyboardInterrupt, Stop):
        print("webprof: stopping", flush=True)
        return 0
    finally:
        stop(children)


def supervise(
    args: argparse.Namespace, env: dict[str, str], token: str, children: list[subprocess.Popen]
) -> int:
    cli = [sys.executable, "-m", "webprof.cli"]
    serve_cmd = [*cli, "serve", "--host", args.host, "--port", str(args.port)]
    server = subprocess.Popen(serve_cmd, env=env)
    children.append(server)
    if not wait_for_port(args.host, args.port, server, PORT_WAIT_S):
        code = server.poll()
        why = f"exited with code {code}" if code is not None else "did not open the port"
        print(f"webprof: the server {why}; is port {args.port} in use?", file=sys.stderr)
        return 1
    ws = url(args.host, args.port).replace("http://", "ws://").rstrip("/")
    # The token goes through the environment, not argv, so `ps` does not show it.
    collect = [*cli, "collect", "--server", ws, "--frequency", str(args.frequency)]
    collect += ["--interval", str(args.interval)]
    collect += ["--collectors", ",".join(getattr(args, "collectors", None) or ["cpu"])]
    collector = subprocess.Popen(collect, env=dict(env, WEBPROF_TOKEN=token))
    children.append(collector)
    print(f"webprof is up: open {url(args.host, args.port)} (log in as admin)", flush=True)
    names = {server.pid: "server", collector.pid: "collector"}
    while True:
        for child in children:
            code = child.poll()
            if code is not None:
                what = names[child.pid]
                other = "collector" if child is server else "server"
                print(
                    f"webprof: the {what} exited with code {code}; stopping the {other}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
        time.sleep(0.2)
