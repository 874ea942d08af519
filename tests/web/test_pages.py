import pytest
from django.test import Client

from webprof.models import Host

pytestmark = [pytest.mark.web, pytest.mark.django_db]


@pytest.mark.parametrize("path", ["/", "/hosts.json", "/hosts/box1/"])
def test_pages_require_login(client, path):
    resp = client.get(path)
    assert resp.status_code == 302
    assert resp["Location"] == f"/login/?next={path}"


def test_login_page_and_login(client, django_user_model):
    django_user_model.objects.create_user("carol", password="s3cret-pass")
    assert client.get("/login/").status_code == 200
    resp = client.post("/login/", {"username": "carol", "password": "s3cret-pass"})
    assert resp.status_code == 302 and resp["Location"] == "/"
    assert client.get("/").status_code == 200


def test_wrong_password_is_refused(client, django_user_model):
    django_user_model.objects.create_user("carol", password="s3cret-pass")
    resp = client.post("/login/", {"username": "carol", "password": "nope"})
    assert resp.status_code == 200
    assert b"did not match" in resp.content
    assert client.get("/").status_code == 302


def test_hosts_page_lists_hosts(logged_in):
    Host.objects.create(name="db-7", kernel="6.18.0", frequency_hz=49, interval_ms=1000)
    resp = logged_in.get("/")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'href="/hosts/db-7/"' in html and "offline" in html
    assert "cdn" not in html.lower()


def test_hosts_json(logged_in):
    Host.objects.create(name="db-7", kernel="6.18.0", connected=True)
    data = logged_in.get("/hosts.json").json()
    # "connected" comes from the live hub: a stale database flag is not trusted.
    assert data["hosts"] == [
        {
            "name": "db-7",
            "connected": False,
            "last_seen": data["hosts"][0]["last_seen"],
            "kernel": "6.18.0",
            "collectors": [],
            "frequency_hz": 0,
            "interval_ms": 0,
            "url": "/hosts/db-7/",
        }
    ]


def test_live_page_renders_for_known_and_unknown_host(logged_in):
    Host.objects.create(name="db-7")
    for name in ("db-7", "not-connected-yet"):
        resp = logged_in.get(f"/hosts/{name}/cpu/")
        assert resp.status_code == 200
        assert resp.context["host"].name == name
        assert resp.context["ws_path"] == "/ws/live/"
        assert resp.context["max_nodes"] > 0
        assert name in resp.content.decode()


def test_static_plotly_is_served_locally(logged_in):
    from django.contrib.staticfiles import finders

    assert finders.find("vendor/plotly.min.js")
    assert finders.find("base.css") and finders.find("hosts.js")


def test_logout_is_post(logged_in):
    assert logged_in.get("/logout/").status_code == 405
    resp = logged_in.post("/logout/")
    assert resp.status_code == 302
    assert logged_in.get("/").status_code == 302


def test_admin_for_staff(django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="s3cret-pass")
    client = Client()
    client.force_login(admin)
    assert b'href="/admin/"' in client.get("/").content
    assert client.get("/admin/webprof/host/").status_code == 200
