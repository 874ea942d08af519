"""Per-host collector tokens: enrolled, stored hashed, bound to their host, revocable."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from wshelpers import applied, applied_hello, closed_with, collector, delta, hello, receive

from webprof.core import protocol
from webprof.hostkeys import HostCredential, enroll, revoke
from webprof.models import Host

pytestmark = [pytest.mark.web, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def host_exists(name: str) -> bool:
    return Host.objects.filter(name=name).exists()


async def test_a_host_token_serves_its_host():
    token, replaced = await database_sync_to_async(enroll)("db-7")
    assert not replaced
    col = await collector(token=token)
    await col.send_to(text_data=hello("db-7"))
    await applied_hello("db-7")
    await col.send_to(text_data=delta(0, host="db-7"))
    await applied("db-7", 1)
    await col.disconnect()


async def test_a_host_token_cannot_speak_for_another_host():
    token, _ = await database_sync_to_async(enroll)("db-7")
    col = await collector(token=token)
    await col.send_to(text_data=hello("web-1"))
    err = await receive(col)
    assert err["code"] == "host_not_allowed" and "'db-7'" in err["message"]
    assert not await database_sync_to_async(host_exists)("web-1")
    await col.send_to(text_data=delta(0, host="web-1"))
    assert (await receive(col))["code"] == "hello_first"
    await col.send_to(text_data=hello("db-7"))  # its own name is still fine
    await applied_hello("db-7")
    await col.disconnect()


async def test_revoked_and_replaced_tokens_are_refused():
    old, _ = await database_sync_to_async(enroll)("db-7")
    new, replaced = await database_sync_to_async(enroll)("db-7")
    assert replaced and new != old
    stale = await collector(token=old)
    assert await closed_with(stale) == protocol.CLOSE_BAD_TOKEN
    await database_sync_to_async(revoke)("db-7")
    revoked = await collector(token=new)
    await revoked.send_to(text_data=hello("db-7"))
    assert await closed_with(revoked) == protocol.CLOSE_BAD_TOKEN
    assert not await database_sync_to_async(host_exists)("db-7")


async def test_the_shared_token_still_speaks_for_any_host():
    await database_sync_to_async(enroll)("db-7")
    col = await collector()  # the shared COLLECTOR_TOKEN
    await col.send_to(text_data=hello("db-7"))
    await applied_hello("db-7")
    await col.disconnect()


def test_only_a_digest_is_stored():
    token, _ = enroll("db-7")
    row = HostCredential.objects.get(host="db-7")
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (row.digest, row.prefix, row.host) and row.prefix == token[:8]


def run_cli(data_dir, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(WEBPROF_DATA_DIR=str(data_dir))
    return subprocess.run([sys.executable, "-m", "webprof.cli", "host", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def test_enroll_list_revoke_from_the_command_line(tmp_path):
    made = run_cli(tmp_path, "enroll", "db-7")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert len(token) == 43 and "shown only this once" in made.stderr
    listed = run_cli(tmp_path, "list")
    assert listed.stdout.startswith(f"db-7  {token[:8]}…") and token not in listed.stdout
    gone = run_cli(tmp_path, "revoke", "db-7")
    assert gone.returncode == 0 and "revoked" in gone.stdout
    again = run_cli(tmp_path, "revoke", "db-7")
    assert again.returncode == 2 and "has no credential" in again.stderr
    bad = run_cli(tmp_path, "enroll", "a/b")
    assert bad.returncode == 2 and "may hold only letters" in bad.stderr
