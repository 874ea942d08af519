"""Host overview, kind-aware views, collector selection and latency streams, in-process."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission
from django.test import Client
from wshelpers import applied, applied_hello, browser, collector, hello, receive

from webprof.core.latency import LATENCY_MAX_SERIES
from webprof.core.protocol import CollectorHello, LatencyDelta, ProfileDelta, encode
from webprof.models import Host

pytestmark = [pytest.mark.web, pytest.mark.django_db(transaction=True)]


def make_client(django_user_model, name: str, *, staff=False, permitted=False) -> Client:
    user = django_user_model.objects.create_user(name, password="s3cret-pass", is_staff=staff)
    if permitted:
        user.user_permissions.add(Permission.objects.get(codename="configure_collectors"))
    client = Client()
    client.force_login(user)
    return client


def latency_delta(seq: int, host: str = "box1", kind: str = "syscall", series=None) -> str:
    series = series or {"all": [[0, 1, 2], [1024, 2048, 5], [2048, 4096, 40]],
                        "clock_nanosleep": [[2048, 4096, 40]]}
    return encode(LatencyDelta(host=host, kind=kind, seq=seq,
                               start_ms=1_700_000_000_000 + 1000 * seq, interval_ms=1000,
                               series=series, health={"samples": 47}))


def offcpu_delta(seq: int, host: str = "box1", kind: str = "offcpu") -> str:
    return encode(ProfileDelta(host=host, kind=kind, seq=seq, start_ms=1_700_000_000_000,
                               interval_ms=1000, frequency_hz=0,
                               strings=["app", "main", "read", "--", "feeder", "writer"],
                               stacks=[[42, 0, 1500, 1, 2, 3, 4, 5]], health={}))


async def test_permitted_user_post_sends_config_to_collector(django_user_model):
    col = await collector()
    await col.send_to(text_data=hello())
    await applied_hello("box1")
    client = await sync_to_async(make_client)(django_user_model, "carol", permitted=True)
    resp = await sync_to_async(client.post)(
        "/hosts/box1/", {"collectors": ["cpu", "offwake", "runqlat"]})
    assert resp.status_code == 302 and resp["Location"] == "/hosts/box1/"
    msg = await receive(col)
    assert msg["type"] == "collector.config"
    assert msg["collectors"] == ["cpu", "offwake", "runqlat"] and msg["frequency_hz"] == 49
    host = await database_sync_to_async(Host.objects.get)(name="box1")
    assert host.wanted_collectors == ["cpu", "offwake", "runqlat"]
    # The collector applies it and says what runs now: the page shows it.
    await col.send_to(text_data=encode(CollectorHello(
        host="box1", kernel="6.18.0", collectors=["cpu", "offwake"], frequency_hz=49,
        interval_ms=1000, agent_version="test")))
    await col.send_to(text_data=json.dumps({"v": 1, "type": "error", "code": "collector_failed",
                                            "message": "runqlat collector could not start: x"}))
    await col.send_to(text_data=latency_delta(0))  # ordered after both: acts as a barrier
    await applied("box1", 1, kind="syscall")
    page = (await sync_to_async(client.get)("/hosts/box1/")).content.decode()
    assert "cpu, offwake" in page and "runqlat collector could not start" in page
    host = await database_sync_to_async(Host.objects.get)(name="box1")
    assert host.collectors == ["cpu", "offwake"]
    await col.disconnect()


async def test_user_without_permission_gets_403_and_nothing_is_sent(django_user_model):
    col = await collector()
    await col.send_to(text_data=hello())
    await applied_hello("box1")
    client = await sync_to_async(make_client)(django_user_model, "dave")
    resp = await sync_to_async(client.post)("/hosts/box1/", {"collectors": ["offcpu"]})
    assert resp.status_code == 403
    assert "Can choose which collectors run on a host" in resp.content.decode()
    assert await col.receive_nothing(timeout=0.3)
    host = await database_sync_to_async(Host.objects.get)(name="box1")
    assert host.wanted_collectors == ["cpu"]
    page = (await sync_to_async(client.get)("/hosts/box1/")).content.decode()
    assert 'id="collectors-form"' not in page and 'id="no-permission"' in page
    await col.disconnect()


def test_staff_sees_the_form_and_bad_names_are_refused(django_user_model):
    Host.objects.create(name="db-7", collectors=["cpu"])
    client = make_client(django_user_model, "erin", staff=True)
    page = client.get("/hosts/db-7/").content.decode()
    assert 'id="collectors-form"' in page and "csrfmiddlewaretoken" in page
    for kind in ("cpu", "offcpu", "offwake", "runqlat", "biolat", "syscall"):
        assert f'value="{kind}"' in page
    for path in ("/hosts/db-7/cpu/", "/hosts/db-7/offcpu/", "/hosts/db-7/offwake/",
                 "/hosts/db-7/latency/runqlat/", "/hosts/db-7/latency/biolat/",
                 "/hosts/db-7/latency/syscall/"):
        assert f'href="{path}"' in page
    resp = client.post("/hosts/db-7/", {"collectors": ["cpu", "kprobe_everything"]})
    assert resp.status_code == 400 and "kprobe_everything" in resp.content.decode()
    assert Host.objects.get(name="db-7").wanted_collectors == ["cpu"]


def test_post_is_csrf_protected(django_user_model):
    Host.objects.create(name="db-7")
    user = django_user_model.objects.create_user("frank", password="x", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/hosts/db-7/", {"collectors": ["cpu"]}).status_code == 403


def test_kind_pages(django_user_model):
    client = make_client(django_user_model, "gina")
    resp = client.get("/hosts/db-7/offcpu/")
    assert resp.status_code == 200 and resp.context["kind"] == "offcpu"
    assert 'data-unit="us"' in resp.content.decode()
    resp = client.get("/hosts/db-7/offwake/")
    assert "woken by ↑" in resp.content.decode()
    resp = client.get("/hosts/db-7/latency/biolat/")
    assert resp.status_code == 200 and 'data-kind="biolat"' in resp.content.decode()
    assert "vendor/plotly.min.js" in resp.content.decode()
    assert client.get("/hosts/db-7/latency/nope/").status_code == 404
    assert client.get("/hosts/db-7/nope/").status_code == 404


async def test_stored_selection_is_sent_when_collector_runs_otherwise():
    await database_sync_to_async(Host.objects.create)(
        name="box1", wanted_collectors=["cpu", "syscall"])
    col = await collector()
    await col.send_to(text_data=hello())  # runs only cpu
    msg = await receive(col)
    assert msg["type"] == "collector.config" and msg["collectors"] == ["cpu", "syscall"]
    await col.disconnect()
    # A new host adopts what its collector runs: nothing is sent.
    other = await collector()
    await other.send_to(text_data=hello("fresh"))
    assert await other.receive_nothing(timeout=0.3)
    host = await database_sync_to_async(Host.objects.get)(name="fresh")
    assert host.wanted_collectors == ["cpu"]
    await other.disconnect()


async def latency_browser(cookie: bytes, kind: str = "syscall", host: str = "box1"):
    live = await browser(cookie)
    await live.send_to(text_data=json.dumps(
        {"v": 1, "type": "latency.subscribe", "host": host, "kind": kind}))
    return live


async def test_latency_delta_reaches_subscribed_browser(session_cookie):
    col = await collector()
    await col.send_to(text_data=hello())
    await col.send_to(text_data=latency_delta(0))
    await applied("box1", 1, kind="syscall")
    live = await latency_browser(session_cookie)
    snap = await receive(live)
    assert snap["type"] == "latency.snapshot" and snap["kind"] == "syscall"
    assert snap["unit"] == "us" and len(snap["intervals"]) == 1
    assert snap["intervals"][0]["series"]["clock_nanosleep"] == [[2048, 4096, 40]]
    assert (await receive(live))["type"] == "host.status"
    runq = await latency_browser(session_cookie, kind="runqlat")
    await receive(runq)
    await receive(runq)
    await col.send_to(text_data=latency_delta(1))
    msg = await receive(live)
    assert msg["type"] == "latency.interval" and msg["seq"] == 1
    assert msg["end_ms"] == 1_700_000_002_000 and msg["health"] == {"samples": 47}
    assert await runq.receive_nothing(timeout=0.2)  # another kind: not sent
    for comm in (col, live, runq):
        await comm.disconnect()


async def test_latency_series_cap_is_counted(session_cookie):
    series = {f"s{i}": [[1, 2, i + 1]] for i in range(LATENCY_MAX_SERIES + 5)}
    series["all"] = [[1, 2, 999]]
    col = await collector()
    await col.send_to(text_data=hello())
    await col.send_to(text_data=latency_delta(0, series=series))
    await applied("box1", 1, kind="syscall")
    live = await latency_browser(session_cookie)
    snap = await receive(live)
    kept = snap["intervals"][0]["series"]
    assert len(kept) == LATENCY_MAX_SERIES and "all" in kept
    # The six quietest (s0..s5, 1..6 events) were dropped and counted.
    assert snap["intervals"][0]["health"]["filtered"] == sum(range(1, 7))
    await col.disconnect()
    await live.disconnect()


async def test_one_socket_holds_a_profile_and_a_latency_subscription(session_cookie):
    col = await collector()
    await col.send_to(text_data=hello())
    await applied_hello("box1")
    live = await browser(session_cookie)
    await live.send_to(text_data=json.dumps(
        {"v": 1, "type": "live.subscribe", "host": "box1", "kind": "offwake"}))
    snap = await receive(live)
    assert snap["type"] == "live.snapshot" and snap["kind"] == "offwake"
    assert snap["unit"] == "us"
    await receive(live)
    await live.send_to(text_data=json.dumps(
        {"v": 1, "type": "latency.subscribe", "host": "box1", "kind": "syscall"}))
    assert (await receive(live))["type"] == "latency.snapshot"
    await receive(live)
    await col.send_to(text_data=offcpu_delta(0, kind="offcpu"))  # not subscribed: not sent
    await col.send_to(text_data=offcpu_delta(0, kind="offwake"))
    msg = await receive(live)
    assert msg["type"] == "live.interval" and msg["kind"] == "offwake"
    assert msg["samples"] == 1500
    await col.send_to(text_data=latency_delta(0))
    assert (await receive(live))["type"] == "latency.interval"
    assert await live.receive_nothing(timeout=0.2)
    await col.disconnect()
    await live.disconnect()


FILTERS_POST = {"collectors": ["cpu", "offcpu", "offwake"], "frequency_hz": "99", "pid": "4242",
                "comm": "postgres", "min_block_us": "250", "max_block_us": "5000000",
                "threads": "all"}


async def test_post_with_filters_reaches_collector_and_page(django_user_model):
    col = await collector()
    await col.send_to(text_data=hello())
    await applied_hello("box1")
    client = await sync_to_async(make_client)(django_user_model, "hana", permitted=True)
    resp = await sync_to_async(client.post)("/hosts/box1/", FILTERS_POST)
    assert resp.status_code == 302
    msg = await receive(col)
    assert msg["type"] == "collector.config"
    assert msg["collectors"] == ["cpu", "offcpu", "offwake"] and msg["frequency_hz"] == 99
    assert (msg["pid"], msg["comm"], msg["min_block_us"], msg["max_block_us"]) == (
        4242, "postgres", 250, 5_000_000)
    assert msg["user_threads_only"] is False
    host = await database_sync_to_async(Host.objects.get)(name="box1")
    assert host.collector_options["comm"] == "postgres"
    # The collector applies it and says so: the page shows what runs, what was sent,
    # and the form keeps the stored values.
    await col.send_to(text_data=encode(CollectorHello(
        host="box1", kernel="6.18.0", collectors=["cpu", "offcpu", "offwake"], frequency_hz=99,
        interval_ms=1000, agent_version="test")))
    await col.send_to(text_data=latency_delta(0))  # ordered after the hello: a barrier
    await applied("box1", 1, kind="syscall")
    page = (await sync_to_async(client.get)("/hosts/box1/")).content.decode()
    assert '<strong id="running">cpu, offcpu, offwake</strong>' in page
    assert '<strong id="running-hz">99</strong>' in page
    assert "pid 4242, process name contains &#x27;postgres&#x27;, blocked 250..5000000 µs, " \
           "all threads" in page
    assert 'value="postgres"' in page and 'value="4242"' in page and 'value="99"' in page
    assert 'value="all" id="id_threads_1" checked' in field_block(page, "threads")
    # Reconnecting with the same collectors still gets the filters: its hello cannot say
    # which filters run.
    await col.disconnect()
    again = await collector()
    await again.send_to(text_data=encode(CollectorHello(
        host="box1", kernel="6.18.0", collectors=["cpu", "offcpu", "offwake"], frequency_hz=99,
        interval_ms=1000, agent_version="test")))
    msg = await receive(again)
    assert msg["type"] == "collector.config" and msg["comm"] == "postgres"
    await again.disconnect()


def field_block(page: str, name: str) -> str:
    """The HTML of one field's box on the host form (label, input, errors)."""
    start = page.index(f'id="field-{name}"')
    return page[start:page.index("</div>", start)]


BAD_FIELDS = [
    ("frequency_hz", "0", "The frequency must be at least 1 Hz."),
    ("frequency_hz", "1000", "The frequency must be at most 999 Hz."),
    ("frequency_hz", "fast", "The frequency must be a whole number of Hz, 1 to 999."),
    ("pid", "0", "A pid is at least 1."),
    ("pid", str(2**22), "A pid is at most 4194303 (2^22 - 1)."),
    ("pid", "12ab", "A pid is a whole number."),
    ("comm", "a" * 16, "A process name has at most 15 characters"),
    ("comm", "bell\x07", "A process name must be printable text"),
    ("comm", "ä" * 8, "A process name has at most 15 bytes in UTF-8."),
    ("min_block_us", "-1", "A block time cannot be negative."),
    ("max_block_us", "-5", "A block time cannot be negative."),
    ("max_block_us", "99", "The maximum block time must not be below the minimum block time."),
    ("threads", "kernel", "Select a valid choice. kernel is not one of the available choices."),
]


@pytest.mark.parametrize(("field", "value", "error"), BAD_FIELDS)
async def test_each_bad_field_is_refused_by_the_field(django_user_model, field, value, error):
    col = await collector()
    await col.send_to(text_data=hello())
    await applied_hello("box1")
    client = await sync_to_async(make_client)(django_user_model, "ivan", staff=True)
    post = {**FILTERS_POST, "min_block_us": "100", field: value}
    resp = await sync_to_async(client.post)("/hosts/box1/", post)
    assert resp.status_code == 400
    page = resp.content.decode()
    assert error in field_block(page, field), field_block(page, field)
    assert page.count('class="field-error"') == 1  # only by that field
    assert await col.receive_nothing(timeout=0.2)
    host = await database_sync_to_async(Host.objects.get)(name="box1")
    assert host.wanted_collectors == ["cpu"] and host.collector_options["pid"] is None
    await col.disconnect()


def test_bad_collector_name_is_shown_by_the_checkboxes(django_user_model):
    Host.objects.create(name="db-7", collectors=["cpu"])
    client = make_client(django_user_model, "judy", staff=True)
    resp = client.post("/hosts/db-7/", {"collectors": ["offcpu", "kprobe_everything"],
                                        "pid": "17"})
    assert resp.status_code == 400
    page = resp.content.decode()
    assert 'id="id_collectors_error"' in page and "kprobe_everything is not one of" in page
    # What was posted is shown again, not the stored values.
    assert 'value="offcpu" checked' in page and 'value="17"' in page


def test_get_form_defaults_and_stored_config_is_valid_even_if_row_is_not():
    host = Host.objects.create(name="db-8", frequency_hz=97)
    config = host.collector_config()
    assert (config.frequency_hz, config.pid, config.min_block_us, config.user_threads_only) == (
        97, None, 1, True)
    # A row edited into nonsense outside the form sends collectors without filters.
    host.collector_options = {"pid": "all of them", "min_block_us": 10, "max_block_us": 2}
    config = host.collector_config()
    assert config.pid is None and config.max_block_us is None and config.collectors == ["cpu"]
