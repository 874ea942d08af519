"""Real processes for end-to-end tests: daphne servers, logins, collectors.

The fixtures in conftest.py build on these; tests that need their own
processes (restarts, ``webprof serve``) use them directly.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from webprof.server import TRANSPORT_MAX_MESSAGE_BYTES

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not open after {timeout} s:\n{log.read_text()[-3000:]}")


def start_serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, int, Path]:
    """``webprof serve --port P ARGS`` on a data directory under ``tmp_path``,
    once it listens: the process, its port and its log file."""
    port = free_port()
    log = tmp_path / "serve.log"
    env = {"WEBPROF_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "webprof.cli", "serve", *args, "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_for_port(port, proc, log, 20)
    return proc, port, log


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace_s: float = 5) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@dataclass
class Daphne:
    """A daphne process serving webprof; ``start()`` again after ``stop()`` reuses the port."""

    data_dir: Path
    port: int
    token: str
    proc: subprocess.Popen | None = None
    starts: int = 0

    @property
    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            WEBPROF_DATA_DIR=str(self.data_dir),
            WEBPROF_COLLECTOR_TOKEN=self.token,
            DJANGO_SETTINGS_MODULE="webprof.settings",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir / f"daphne-{self.starts}.log"

    def manage(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def start(self) -> None:
        self.starts += 1
        cmd = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
        # The same transport limit as `webprof serve` (daphne's default is 1 MiB).
        size = str(TRANSPORT_MAX_MESSAGE_BYTES)
        cmd += ["--websocket-max-message-size", size, "--websocket-max-frame-size", size]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [*cmd, "webprof.asgi:application"],
                env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, self.proc, self.log, STARTUP_TIMEOUT_S)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig)


def make_daphne(data_dir: Path) -> Daphne:
    data_dir.mkdir(parents=True, exist_ok=True)
    server = Daphne(data_dir=data_dir, port=free_port(), token=secrets.token_urlsafe(32))
    server.manage("migrate", "--verbosity", "0")
    return server


def login(base_url: str, username: str, password: str) -> str:
    """Log in through the real login form; return the ``Cookie`` header value."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base_url}/login/", timeout=10).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert csrf, "no CSRF token in the login form"
    form = {"username": username, "password": password, "csrfmiddlewaretoken": csrf.group(1)}
    req = urllib.request.Request(
        f"{base_url}/login/",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Referer": f"{base_url}/login/"},
    )
    resp = opener.open(req, timeout=10)
    assert resp.url.rstrip("/") == base_url, f"login failed, ended at {resp.url}"
    cookies = {c.name: c.value for c in jar}
    assert "sessionid" in cookies
    return f"sessionid={cookies['sessionid']}"


@dataclass
class Collector:
    proc: subprocess.Popen
    log: Path
    name: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_collector(server: Daphne, name: str, log: Path, interval_s: float = 0.5,
                    collectors: str = "cpu") -> Collector:
    """``webprof collect`` against ``server`` (root and bcc: call require_bpf first)."""
    cmd = [sys.executable, "-m", "webprof.cli", "collect", "--server", server.ws_url]
    cmd += [f"--token={server.token}", "--name", name, "--frequency", "199"]
    cmd += ["--interval", str(interval_s), "--collectors", collectors]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    return Collector(proc=proc, log=log, name=name)


