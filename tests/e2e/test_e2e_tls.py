"""Collectors over TLS: a real daphne on an ``ssl:`` endpoint with a throwaway CA.

A collector given that CA with ``--ca-file`` connects over ``wss://`` and its
intervals reach a logged-in subscriber; one without it (the CA is in no
trust store) stops at once with a one-line error that says to pass
``--ca-file``, and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from e2eproc import ROOT, STARTUP_TIMEOUT_S, Daphne, make_daphne, stop_process, wait_for_port
from websockets.asyncio.client import connect

from tests.conftest import require_bpf
from webprof.core.flame import FlameTree
from webprof.server import TRANSPORT_MAX_MESSAGE_BYTES

pytestmark = pytest.mark.e2e


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    else:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for 127.0.0.1: (ca.pem, key, cert)."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca = _certificate("webprof test CA", ca_key, "webprof test CA", ca_key, ca=True)
    server = _certificate("127.0.0.1", server_key, "webprof test CA", ca_key, ca=False)
    pem = serialization.Encoding.PEM
    paths = directory / "ca.pem", directory / "server.key", directory / "server.pem"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(server_key.private_bytes(
        pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    paths[1].chmod(0o600)
    paths[2].write_bytes(server.public_bytes(pem))
    return paths


class TlsDaphne(Daphne):
    """The same daphne, listening on a TLS endpoint only."""

    key: Path
    cert: Path

    @property
    def ws_url(self) -> str:
        return f"wss://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        endpoint = f"ssl:{self.port}:privateKey={self.key}:certKey={self.cert}:interface=127.0.0.1"
        size = str(TRANSPORT_MAX_MESSAGE_BYTES)
        cmd = [sys.executable, "-m", "daphne", "-e", endpoint,
               "--websocket-max-message-size", size, "--websocket-max-frame-size", size]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([*cmd, "webprof.asgi:application"], env=self.env,
                                         cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.proc, self.log, STARTUP_TIMEOUT_S)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory) -> Iterator[tuple[TlsDaphne, Path]]:
    data = tmp_path_factory.mktemp("tls")
    ca, key, cert = make_pki(data)
    plain = make_daphne(data / "data")
    server = TlsDaphne(data_dir=plain.data_dir, port=plain.port, token=plain.token)
    server.key, server.cert = key, cert
    server.start()
    yield server, ca
    server.stop()


def session_cookie(server: Daphne) -> str:
    """A logged-in session made in the database (the login form is plain urllib)."""
    code = (
        "from importlib import import_module\n"
        "from django.conf import settings\n"
        "from django.contrib import auth\n"
        "user = auth.get_user_model().objects.create_user('tls-viewer')\n"
        "store = import_module(settings.SESSION_ENGINE).SessionStore()\n"
        "store[auth.SESSION_KEY] = str(user.pk)\n"
        "store[auth.BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
        "store[auth.HASH_SESSION_KEY] = user.get_session_auth_hash()\n"
        "store.create()\n"
        "print(store.session_key)\n"
    )
    return "sessionid=" + server.manage("shell", "-c", code).split()[-1]


def collect(server: Daphne, name: str, log: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "webprof.cli", "collect", "--server", server.ws_url,
           "--name", name, "--frequency", "99", "--interval", "0.5", *extra]
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, WEBPROF_TOKEN=server.token))


async def first_samples(server: Daphne, ca: Path, cookie: str, host: str, timeout: float) -> int:
    """Subscribe over wss:// like the page does (again until the collector has said
    hello: it compiles first); the samples of the first non-empty interval."""
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with connect(f"{server.ws_url}/ws/live/", ssl=context, max_size=None,
                           additional_headers={"Cookie": cookie}) as ws:
            await ws.send(json.dumps({"v": 1, "type": "live.subscribe", "host": host}))
            while time.monotonic() < deadline:
                msg = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
                if msg["type"] == "error" and msg["code"] == "unknown_host":
                    break
                if msg["type"] == "live.interval" and FlameTree.from_wire(msg["tree"]).total:
                    return FlameTree.from_wire(msg["tree"]).total
        await asyncio.sleep(0.5)
    return 0


async def test_collector_with_ca_file_streams_over_wss(tls_server, tmp_path):
    require_bpf()
    server, ca = tls_server
    cookie = session_cookie(server)
    log = tmp_path / "collector.log"
    proc = collect(server, "tls-host", log, "--ca-file", str(ca))
    try:
        samples = await first_samples(server, ca, cookie, "tls-host", timeout=30)
    finally:
        stop_process(proc)
    assert samples > 0, f"no interval arrived; collector said:\n{log.read_text()[-2000:]}"
    assert proc.returncode == 0, log.read_text()[-2000:]


def test_collector_without_the_ca_stops_with_one_clear_line(tls_server, tmp_path):
    require_bpf()
    server, _ca = tls_server
    log = tmp_path / "collector.log"
    proc = collect(server, "tls-refused", log)
    try:
        code = proc.wait(timeout=60)
    finally:
        stop_process(proc)
    out = log.read_text()
    assert code != 0, out
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if "certificate" in line]
    assert len(lines) == 1, out
    assert lines[0].startswith("webprof collect: the TLS certificate of wss://127.0.0.1:"), out
    assert "pass --ca-file PATH" in lines[0], out


@pytest.mark.parametrize("server_url, ca_file, message", [
    ("ws://127.0.0.1:9", "ca.pem", "--ca-file verifies a TLS server: use a wss://"),
    ("wss://127.0.0.1:9", "missing.pem", "--ca-file missing.pem: cannot load a CA certificate"),
])
def test_ca_file_problems_stop_before_collecting(tmp_path, server_url, ca_file, message):
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    out = subprocess.run(
        [sys.executable, "-m", "webprof.cli", "collect", "--server", server_url,
         "--ca-file", ca_file], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, WEBPROF_TOKEN="x" * 32))
    assert out.returncode == 1, out
    assert out.stderr.startswith(f"webprof collect: {message}"), out.stderr
    assert len(out.stderr.splitlines()) == 1, out.stderr
