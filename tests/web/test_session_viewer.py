"""The session viewer: range flame graphs against ground truth, the heatmap,
parameter checks, logins, share links and the diff's normalisation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from webprof.core.protocol import LatencyDelta, ProfileDelta
from webprof.sessions.share import create_link, revoke
from webprof.sessions.store import save_deltas

pytestmark = [pytest.mark.web, pytest.mark.django_db]

ORIGIN = 1_760_000_000_000
SECONDS = 20
PHASE_S = 10  # "early" for the first 10 s, then "late"


def second_delta(second: int, leaf: str, samples: int = 99, db: int = 10) -> ProfileDelta:
    """One second: ``samples`` of app;main;<leaf> spread over the 50 slots
    (the first samples % 50 slots get one more), plus ``db`` samples of a
    second process (pid 7, "db") in slot 0."""
    per_slot = [samples // 50 + (1 if i < samples % 50 else 0) for i in range(50)]
    pairs = [x for i, n in enumerate(per_slot) if n for x in (i, n)]
    return ProfileDelta(host="h1", kind="cpu", seq=second, start_ms=ORIGIN + second * 1000,
                        interval_ms=1000, frequency_hz=99,
                        strings=["app", "main", leaf, "db", "db_main", "query"],
                        stacks=[[42, 0, samples, 1, 2], [7, 3, db, 4, 5]],
                        health={"lost_user_stacks": 3} if second == 5 else {},
                        slot_ms=20, slots=[pairs, [0, db]])


def make_phases(name: str = "phases", owner=None):
    deltas: list = [second_delta(s, "early" if s < PHASE_S else "late") for s in range(SECONDS)]
    deltas += [LatencyDelta(host="h1", kind="syscall", seq=s, start_ms=ORIGIN + s * 1000,
                            interval_ms=1000, series={"read": [[2, 4, 9]], "write": [[8, 16, 1]]},
                            health={}) for s in range(3)]
    return save_deltas(deltas, name=name, host="h1", kernel="6.18.0", started_ms=ORIGIN,
                       frequency_hz=99, interval_ms=1000, owner=owner)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("viewer", password="s3cret-pass")


@pytest.fixture
def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def phases(user):
    return make_phases(owner=user)


def folded(data: dict) -> dict[str, int]:
    """flame.json's wire tree as {folded stack: weight}."""
    names, nodes = data["tree"]["names"], data["tree"]["nodes"]
    out: dict[str, int] = {}
    pos = 3

    def walk(path: list[str], n_children: int) -> None:
        nonlocal pos
        for _ in range(n_children):
            name, self_w, kids = names[nodes[pos]], nodes[pos + 1], nodes[pos + 2]
            pos += 3
            here = [*path, name]
            if self_w:
                out[";".join(here)] = self_w
            walk(here, kids)

    walk([], nodes[2])
    return out


def flame(client: Client, session, **params) -> dict:
    resp = client.get(f"/sessions/{session.pk}/flame.json", params)
    assert resp.status_code == 200, resp.content
    return resp.json()


def test_flame_ranges_match_the_phases(logged_in, phases):
    whole = flame(logged_in, phases)
    assert folded(whole) == {"app;main;early": 990, "app;main;late": 990, "db;db_main;query": 200}
    assert whole["total"] == 2180 and whole["unit"] == "samples" and whole["folded_nodes"] == 0
    assert (whole["from_ms"], whole["to_ms"]) == (ORIGIN, ORIGIN + SECONDS * 1000)
    assert whole["server_ms"] >= 0
    # Inside the first phase only "early" (offsets from the start).
    early = flame(logged_in, phases, **{"from": 2000, "to": 7000})
    assert folded(early) == {"app;main;early": 5 * 99, "db;db_main;query": 50}
    # The same range in unix ms.
    again = flame(logged_in, phases, **{"from": ORIGIN + 2000, "to": ORIGIN + 7000})
    assert folded(again) == folded(early)
    late = flame(logged_in, phases, **{"from": 12_000, "to": 20_000})
    assert set(folded(late)) == {"app;main;late", "db;db_main;query"}
    # A slot-precise cut: 9.5 s .. 10.5 s holds slots 25..49 of second 9
    # (24 x 2 + 1) and slots 0..24 of second 10 (25 x 2); db sits in slot 0.
    cut = flame(logged_in, phases, **{"from": 9500, "to": 10_500})
    assert folded(cut) == {"app;main;early": 49, "app;main;late": 50, "db;db_main;query": 10}
    one_slot = flame(logged_in, phases, **{"from": 10_000, "to": 10_020})
    assert folded(one_slot) == {"app;main;late": 2, "db;db_main;query": 10}


def test_process_filter_and_node_budget(logged_in, phases):
    assert folded(flame(logged_in, phases, pid=7)) == {"db;db_main;query": 200}
    assert set(folded(flame(logged_in, phases, comm="AP"))) == {"app;main;early", "app;main;late"}
    deltas = [ProfileDelta(host="h", kind="cpu", seq=0, start_ms=ORIGIN, interval_ms=1000,
                           frequency_hz=99, strings=["p", *(f"f{i}" for i in range(60))],
                           stacks=[[1, 0, i + 1, i + 1] for i in range(60)], health={})]
    wide = save_deltas(deltas, name="wide", started_ms=ORIGIN)
    data = flame(logged_in, wide, max_nodes=16)
    assert data["folded_nodes"] == 61 - 16 + 1 and data["total"] == sum(range(1, 61))
    assert sum(data["tree"]["nodes"][1::3]) == data["total"]  # folding keeps the total


def test_heatmap_timeline_latency(logged_in, phases):
    hm = logged_in.get(f"/sessions/{phases.pk}/heatmap.json", {"kind": "cpu"}).json()
    assert (hm["columns"], hm["rows"], hm["slot_ms"], hm["origin_ms"]) == (20, 50, 20, ORIGIN)
    assert len(hm["z"]) == 50 and all(len(r) == 20 for r in hm["z"])
    assert sum(map(sum, hm["z"])) == 2180
    assert hm["z"][0][0] == 2 + 10 and hm["z"][49][0] == 1 and hm["max"] == 12
    tl = logged_in.get(f"/sessions/{phases.pk}/timeline.json").json()
    assert tl["origin_ms"] == ORIGIN and list(tl["kinds"]) == ["cpu"]
    assert tl["kinds"]["cpu"]["points"][0] == [ORIGIN, 1000, 109]
    assert len(tl["kinds"]["cpu"]["points"]) == SECONDS
    lat = logged_in.get(f"/sessions/{phases.pk}/latency.json", {"kind": "syscall"}).json()
    assert len(lat["intervals"]) == 3 and lat["intervals"][0]["series"]["read"] == [[2, 4, 9]]


@pytest.mark.parametrize(("path", "params", "message"), [
    ("flame.json", {"kind": "nope"}, "unknown kind 'nope'; this session has: cpu"),
    ("flame.json", {"kind": "offcpu"}, "unknown kind 'offcpu'"),
    ("flame.json", {"from": "abc", "to": "5"}, "from must be an integer, not 'abc'"),
    ("flame.json", {"from": "1", "to": "2.5"}, "to must be an integer"),
    ("flame.json", {"from": "-5", "to": "100"}, "from must be between 0 and"),
    ("flame.json", {"from": "5000", "to": "5000"}, "to must be after from"),
    ("flame.json", {"from": "6000", "to": "5000"}, "to must be after from"),
    ("flame.json", {"from": "30000"}, "to must be after from"),
    ("flame.json", {"max_nodes": "0"}, "max_nodes must be between 16 and 200000, not 0"),
    ("flame.json", {"max_nodes": "1000000000"}, "max_nodes must be between"),
    ("flame.json", {"max_nodes": "lots"}, "max_nodes must be an integer"),
    ("flame.json", {"pid": "0"}, "pid must be between 1"),
    ("flame.json", {"pid": "x1"}, "pid must be an integer"),
    ("flame.json", {"comm": "c" * 65}, "comm must be at most 64 characters"),
    ("heatmap.json", {"kind": "runqlat"}, "unknown kind 'runqlat'"),
    ("latency.json", {"kind": "cpu"}, "unknown latency kind 'cpu'; this session has: syscall"),
    ("latency.json", {}, "unknown latency kind ''"),
])
def test_bad_parameters_are_400_with_a_reason(logged_in, phases, path, params, message):
    resp = logged_in.get(f"/sessions/{phases.pk}/{path}", params)
    assert resp.status_code == 400, resp.content
    assert resp["Content-Type"] == "application/json"
    assert message in resp.json()["error"]


def test_unknown_session_and_login_required(client, logged_in, phases):
    resp = logged_in.get("/sessions/999999/flame.json")
    assert resp.status_code == 404 and "no session 999999" in resp.json()["error"]
    assert logged_in.get("/sessions/999999/").status_code == 404
    resp = client.get(f"/sessions/{phases.pk}/")
    assert resp.status_code == 302 and resp["Location"].startswith("/login/?next=")
    for path in ("flame.json", "heatmap.json?kind=cpu", "timeline.json",
                 "latency.json?kind=syscall"):
        resp = client.get(f"/sessions/{phases.pk}/{path}")
        assert resp.status_code == 401 and set(resp.json()) == {"error"}, path
    assert client.get(f"/sessions/diff.json?a={phases.pk}").status_code == 401
    assert client.get("/sessions/diff/").status_code == 302


def test_data_endpoints_take_an_api_token(client, user, phases):
    from webprof.auth import create_token, revoke_token

    token, _row = create_token(user.username)
    url = f"/sessions/{phases.pk}/flame.json"
    resp = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and resp.json()["total"] == 990 + 990 + 200
    assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    revoke_token(token)
    assert client.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_session_page_shows_facts_health_and_manage_panel(logged_in, phases):
    html = logged_in.get(f"/sessions/{phases.pk}/").content.decode()
    assert "phases" in html and "h1" in html and "99 Hz" in html and "6.18.0" in html
    assert "lost user stacks: <b>3</b>" in html  # non-zero loss shown as a warning
    assert f'data-base="/sessions/{phases.pk}/"' in html
    assert 'id="subsecond-canvas"' in html and 'id="latency-syscall"' in html
    assert 'id="manage"' in html  # the owner sees the management panel
    assert 'id="compare-session"' in html and "/hosts/" not in html.split("<main>")[1]


def test_share_link_gives_that_session_only(phases, user):
    other = make_phases("other")
    token, _ = create_link(phases, user, None)
    anon = Client()
    page = anon.get(f"/s/{token}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-base="/s/{token}/"' in html and "read-only shared session" in html
    for absent in ('href="/"', "/hosts/", "/sessions/", "/admin/", 'id="manage"',
                   "compare", "Record", "Share", "Log out"):
        assert absent not in html, absent
    data = anon.get(f"/s/{token}/flame.json", {"from": 0, "to": 5000}).json()
    assert set(folded(data)) == {"app;main;early", "db;db_main;query"}
    # Ids in the query string are ignored: the token alone names the session.
    assert anon.get(f"/s/{token}/flame.json", {"id": other.pk, "session": other.pk}
                    ).json()["total"] == 2180
    assert anon.get(f"/s/{token}/heatmap.json").json()["columns"] == SECONDS
    assert list(anon.get(f"/s/{token}/timeline.json").json()["kinds"]) == ["cpu"]
    assert anon.get(f"/s/{token}/latency.json", {"kind": "syscall"}).status_code == 200
    assert anon.get(f"/s/{token}/flame.json", {"kind": "bad"}).status_code == 400
    # The same cookie-less client cannot reach sessions by id, nor the diff.
    for path in (f"/sessions/{other.pk}/flame.json", f"/sessions/{phases.pk}/flame.json",
                 f"/sessions/diff.json?a={phases.pk}&b={other.pk}"):
        resp = anon.get(path)
        assert resp.status_code == 401 and "tree" not in resp.json(), path
    export = anon.get(f"/s/{token}/export/", {"format": "folded", "from": ORIGIN,
                                              "to": ORIGIN + 5000})
    assert export.status_code == 200
    assert export.content.decode().splitlines() == ["app;main;early 495", "db;db_main;query 50"]


def test_revoked_expired_and_unknown_tokens_are_404(phases, user):
    revoked, _ = create_link(phases, user, None)
    revoke(revoked)
    expired, link = create_link(phases, user, timedelta(hours=1))
    link.expires = timezone.now() - timedelta(seconds=1)
    link.save()
    anon = Client()
    for token in (revoked, expired, "no-such-token", "x" * 200):
        page = anon.get(f"/s/{token}/")
        assert page.status_code == 404
        assert "does not exist, was revoked or has expired" in page.content.decode()
        for path in ("flame.json", "heatmap.json", "timeline.json", "latency.json?kind=syscall"):
            resp = anon.get(f"/s/{token}/{path}")
            assert resp.status_code == 404 and "tree" not in resp.json(), path
        assert anon.get(f"/s/{token}/export/?format=folded").status_code == 404


def diff(client: Client, **params) -> dict:
    resp = client.get("/sessions/diff.json", params)
    assert resp.status_code == 200, resp.content
    return resp.json()


def test_diff_normalises_to_totals(logged_in, phases):
    # 2 s and 5 s of the first phase: different totals, the same shares.
    same = diff(logged_in, a=phases.pk, a_from=0, a_to=2000, a_extra=1, b_from=2000, b_to=7000)
    assert same["wire"]["scale"] == pytest.approx(2.5)
    assert same["a"]["total"] == 2 * 109 and same["b"]["total"] == 5 * 109
    assert all(abs(r["change"]) < 1e-6 for r in same["functions"])
    assert same["wire"]["before"] == pytest.approx(same["wire"]["after"])
    # Phase one against phase two: "early" vanished, "late" appeared, db kept its share.
    swap = diff(logged_in, a=phases.pk, a_from=0, a_to=10_000, b_from=10_000, b_to=20_000)
    rows = {r["name"]: r for r in swap["functions"]}
    assert rows["early"]["before_total"] == 990 and rows["early"]["after_total"] == 0
    assert rows["late"]["change"] == 990 and rows["early"]["change"] == -990
    assert rows["query"]["change"] == 0
    assert [r["name"] for r in swap["functions"][:2]] == ["early", "late"]
    # Two sessions: the other one, whole.
    other = make_phases("other")
    both = diff(logged_in, a=phases.pk, b=other.pk, kind="cpu")
    assert all(r["change"] == 0 for r in both["functions"]) and both["b"]["id"] == other.pk


@pytest.mark.parametrize(("params", "message"), [
    ({}, "a (the first session's id) is required"),
    ({"a": "x"}, "a must be an integer"),
    ({"a": "{a}", "kind": "offcpu"}, "unknown kind 'offcpu'"),
    ({"a": "{a}", "a_from": "3000", "a_to": "1000"}, "a_to must be after a_from"),
    ({"a": "{a}", "b_from": "25000", "b_to": "26000"}, "range b has no cpu samples"),
])
def test_diff_bad_parameters(logged_in, phases, params, message):
    params = {k: v.format(a=phases.pk) for k, v in params.items()}
    resp = logged_in.get("/sessions/diff.json", params)
    assert resp.status_code == 400 and message in resp.json()["error"]
    assert logged_in.get("/sessions/diff.json", {"a": 999999}).status_code == 404


def test_diff_page_renders(logged_in, phases):
    html = logged_in.get("/sessions/diff/", {"a": phases.pk}).content.decode()
    assert 'id="flamegraph"' in html and "diff.js" in html and f"#{phases.pk} phases" in html
