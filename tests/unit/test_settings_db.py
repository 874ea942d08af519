"""DATABASE_URL parsing: every accepted form, and clear errors for the rest."""

import os
import subprocess
import sys

import pytest

from webprof.dburl import ENGINE, DatabaseUrlError, parse_database_url, redacted

pytestmark = pytest.mark.unit


def test_full_tcp_url():
    db = parse_database_url("postgresql://webprof:s3cret@db.example:6543/profiles")
    assert db == {
        "ENGINE": ENGINE,
        "NAME": "profiles",
        "USER": "webprof",
        "PASSWORD": "s3cret",
        "HOST": "db.example",
        "PORT": "6543",
        "OPTIONS": {},
    }


def test_postgres_scheme_alias_and_defaults():
    db = parse_database_url("postgres://bob@localhost/app")
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "bob",
        "",
        "localhost",
        "",
        "app",
    )


def test_scheme_is_case_insensitive():
    assert parse_database_url("PostgreSQL://u@h/d")["ENGINE"] == ENGINE


def test_sslmode_and_libpq_options_pass_through():
    db = parse_database_url(
        "postgresql://u:p@h:5432/d?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=5"
    )
    assert db["OPTIONS"] == {
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ca.pem",
        "connect_timeout": "5",
    }


def test_percent_encoded_credentials_and_name():
    db = parse_database_url("postgresql://we%40b:p%2F%3A%40ss@h/my%20db")
    assert (db["USER"], db["PASSWORD"], db["NAME"]) == ("we@b", "p/:@ss", "my db")


def test_unix_socket_in_query():
    db = parse_database_url("postgresql://webprof@/webprof?host=/run/postgresql")
    assert (db["HOST"], db["PORT"], db["USER"], db["NAME"]) == (
        "/run/postgresql",
        "",
        "webprof",
        "webprof",
    )


def test_unix_socket_percent_encoded_host_with_port():
    db = parse_database_url("postgresql://u@%2Fvar%2Frun%2Fpostgresql:5433/d")
    assert (db["HOST"], db["PORT"]) == ("/var/run/postgresql", "5433")


def test_socket_with_query_port_and_no_user():
    db = parse_database_url("postgresql:///d?host=/tmp/pg&port=5499")
    assert (db["USER"], db["HOST"], db["PORT"], db["NAME"]) == ("", "/tmp/pg", "5499", "d")


def test_ipv6_host():
    db = parse_database_url("postgresql://u:p@[::1]:5432/d")
    assert (db["HOST"], db["PORT"]) == ("::1", "5432")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://u:p@h/d", "scheme 'mysql' is not supported"),
        ("sqlite:///tmp/x.sqlite3", "scheme 'sqlite' is not supported"),
        ("postgresql:/h/d", "no scheme"),
        ("h:5432/d", "no scheme"),
        ("postgresql://u@h", "names no database"),
        ("postgresql://u@h/", "names no database"),
        ("postgresql://u@h?sslmode=require", "names no database"),
        ("postgresql://u@h/d/e", "contains '/'"),
        ("postgresql://u@h:port/d", "port 'port' is not a number"),
        ("postgresql://u@h:0/d", "port '0' is not a number in 1..65535"),
        ("postgresql://u@h:70000/d", "port '70000'"),
        ("postgresql://u@/d?host=/s&port=x", "port 'x'"),
        ("postgresql://u@h1,h2/d", "several hosts"),
        ("postgresql://u@[::1/d", "closing ']'"),
        ("postgresql://u@[::1]x/d", "after the IPv6 host"),
        ("postgresql://u@h/d?sslmode=maybe", "sslmode 'maybe' is not one of"),
        ("postgresql://u@h/d?sslmod=require", "unknown parameter 'sslmod'"),
        ("postgresql://u@h/d?sslmode=require&sslmode=disable", "given twice"),
        ("postgresql://u@h/d?sslmode=", "'sslmode' has no value"),
        ("postgresql://u@h/d?sslmode", "not key=value"),
        ("postgresql://u@h/d#frag", "#fragment"),
    ],
)
def test_rejected_urls_say_why_and_show_a_valid_one(url, reason):
    with pytest.raises(DatabaseUrlError) as err:
        parse_database_url(url)
    message = str(err.value)
    assert reason in message
    assert "postgresql://USER:PASSWORD@HOST:5432/DBNAME" in message
    assert "unset DATABASE_URL" in message


@pytest.mark.parametrize(
    "url",
    [
        "mysql://admin:hunter2@h/d",
        "postgresql://admin:hunter2@h:bad/d",
        "postgresql://admin:hun/ter2@h/d",  # unencoded '/' would split the password
        "postgresql://admin:hunter2@h/d?nope=1",
    ],
)
def test_errors_never_show_the_password(url):
    with pytest.raises(DatabaseUrlError) as err:
        parse_database_url(url)
    assert "hunter2" not in str(err.value) and "ter2" not in str(err.value)
    assert "admin:***@" in str(err.value)


def test_redacted_leaves_password_free_urls_alone():
    assert redacted("postgresql://u@h/d") == "postgresql://u@h/d"
    assert redacted("not a url") == "not a url"


def _settings_in_subprocess(database_url: str | None, data_dir) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["WEBPROF_DATA_DIR"] = str(data_dir)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    code = (
        "import django.conf as c; c.settings.DATABASES;"
        "d = c.settings.DATABASES['default'];"
        "print(d['ENGINE'], d.get('CONN_MAX_AGE'), d.get('HOST', ''))"
    )
    env["DJANGO_SETTINGS_MODULE"] = "webprof.settings"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def test_settings_default_to_sqlite_and_use_postgres_when_named(tmp_path):
    sqlite = _settings_in_subprocess(None, tmp_path)
    assert sqlite.returncode == 0, sqlite.stderr
    assert sqlite.stdout.split()[0] == "django.db.backends.sqlite3"
    empty = _settings_in_subprocess("", tmp_path)
    assert empty.stdout.split()[0] == "django.db.backends.sqlite3"
    pg = _settings_in_subprocess("postgres://u:p@127.0.0.1:5999/d", tmp_path)
    assert pg.returncode == 0, pg.stderr
    assert pg.stdout.split() == ["django.db.backends.postgresql", "0", "127.0.0.1"]


def test_settings_refuse_a_bad_url_with_improperly_configured(tmp_path):
    bad = _settings_in_subprocess("redis://localhost/0", tmp_path)
    assert bad.returncode != 0
    assert "ImproperlyConfigured" in bad.stderr
    assert "scheme 'redis' is not supported" in bad.stderr


def test_parser_module_is_pure():
    code = (
        "import sys, webprof.dburl;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'bcc', 'channels')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
