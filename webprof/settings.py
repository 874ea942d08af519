"""Django settings for webprof, read from the environment.

Every value comes from a ``WEBPROF_*`` variable through a small typed helper
that fails fast with :class:`ImproperlyConfigured`, so a typo in a deployment
stops the server at start-up instead of misbehaving later.  The embedded
defaults need nothing else: SQLite in the data directory, the in-memory
channel layer (one daphne process) and secrets generated once into files.
``DATABASE_URL`` (``postgresql://...``) switches the database to PostgreSQL.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path

import plotly
from django.core.exceptions import ImproperlyConfigured

from webprof.dburl import DatabaseUrlError, parse_database_url
from webprof.sessions.retention import RetentionError, parse_size
from webprof.tokens import url_token

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ImproperlyConfigured(f"{name} must be {minimum}..{maximum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/webprof")
    return Path.home() / ".local" / "share" / "webprof"


def ensure_private_dir(path: Path) -> Path:
    """The data directory, created 0700, or made 0700 if it exists looser:
    it holds the secret key, the collector token and the database."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_private(path, 0o700)
    except OSError as exc:
        raise ImproperlyConfigured(f"cannot create data directory {path}: {exc}") from None
    return path


def make_private(path: Path, mode: int) -> None:
    """Take group and other permissions away from ``path`` (a no-op if it is
    already that private); OSError when it cannot, e.g. someone else owns it."""
    if path.stat().st_mode & 0o077:
        path.chmod(mode)


def ensure_private_files(directory: Path, names: tuple[str, ...], create: str = "") -> None:
    """Make the named files of ``directory`` that exist 0600; ``create`` is
    created empty first if missing: SQLite would create the database with the
    umask's mode (often 0644), and its -wal and -shm copy the database's mode."""
    try:
        if create:
            os.close(os.open(directory / create, os.O_WRONLY | os.O_CREAT, 0o600))
        for name in names:
            if (directory / name).exists():
                make_private(directory / name, 0o600)
    except OSError as exc:
        raise ImproperlyConfigured(f"cannot make the files of {directory} private: {exc}") from None


def secret_file(path: Path, make: Callable[[], str]) -> str:
    """Read a secret from ``path``, creating it (mode 0600) on first use.

    O_EXCL makes two processes starting at once agree: the loser reads the
    winner's file instead of overwriting it.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text().strip()
        if not value:
            raise ImproperlyConfigured(f"{path} is empty; delete it to regenerate") from None
        return value
    except OSError as exc:
        raise ImproperlyConfigured(f"cannot create {path}: {exc}") from None
    value = make()
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


DATA_DIR = ensure_private_dir(
    Path(env_str("WEBPROF_DATA_DIR", str(default_data_dir()))).expanduser()
)

SECRET_KEY = os.environ.get("WEBPROF_SECRET_KEY") or secret_file(
    DATA_DIR / "secret-key", lambda: secrets.token_urlsafe(50)
)
COLLECTOR_TOKEN = os.environ.get("WEBPROF_COLLECTOR_TOKEN") or secret_file(
    DATA_DIR / "collector-token", lambda: url_token(32)
)

DEBUG = env_bool("WEBPROF_DEBUG", False)

def default_allowed_hosts(listen: str) -> list[str]:
    """The names a server listening on ``listen`` is reached by: the loopback
    names, plus the address itself, or the machine's name when it listens on
    every interface.  ``webprof serve`` passes its ``--host`` as
    WEBPROF_LISTEN_HOST; a bare ``daphne`` gets the loopback names only."""
    hosts = ["localhost", "127.0.0.1", "[::1]"]
    if listen in ("0.0.0.0", "::"):
        hosts.append(socket.gethostname())
    elif listen:
        hosts.append(f"[{listen}]" if ":" in listen else listen)
    return list(dict.fromkeys(hosts))


# Django checks the Host header against it, and the browser websocket its
# Origin (webprof/asgi.py): a page on another site cannot open /ws/live/ with
# the user's cookie.  Reached by another name (a proxy, a DNS name): set
# WEBPROF_ALLOWED_HOSTS, comma-separated.
ALLOWED_HOSTS = env_list(
    "WEBPROF_ALLOWED_HOSTS", default_allowed_hosts(env_str("WEBPROF_LISTEN_HOST", "").strip()))
CSRF_TRUSTED_ORIGINS = env_list("WEBPROF_CSRF_TRUSTED_ORIGINS", [])

# Distinct hosts the server stores; a hello from one more is refused.
WEBPROF_MAX_HOSTS = env_int("WEBPROF_MAX_HOSTS", 1000, 1, 1_000_000)

# Node budget per tree sent to a browser, and the longest sliding window.
WEBPROF_MAX_NODES = env_int("WEBPROF_MAX_NODES", 16_384, 100, 1_000_000)
WEBPROF_KEEP_INTERVALS = env_int("WEBPROF_KEEP_INTERVALS", 60, 1, 3600)

INSTALLED_APPS = [
    "daphne",  # first: its runserver replaces Django's with an ASGI one
    "channels",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "webprof.apps.WebprofConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webprof.urls"
ASGI_APPLICATION = "webprof.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

def env_database(name: str, sqlite_path: Path) -> dict[str, object]:
    """The default database: PostgreSQL when ``name`` holds a PostgreSQL URL, else SQLite."""
    url = os.environ.get(name, "").strip()
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": sqlite_path,
            # WAL lets the admin read while the server writes host rows.
            # IMMEDIATE: a transaction that reads and then writes takes the
            # write lock up front and waits for it (timeout); a deferred one
            # fails at once with "database is locked" when the recorder thread
            # wrote in between.
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "timeout": 20,
                        "transaction_mode": "IMMEDIATE"},
            # Tests use a file too, as the server does: an in-memory shared-cache
            # database answers a second thread's write with "table is locked" at
            # once instead of waiting, which the recorder thread would hit.
            "TEST": {"NAME": str(sqlite_path.with_name("test_" + sqlite_path.name))},
        }
    try:
        database = parse_database_url(url)
    except DatabaseUrlError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    # 0: a connection per request/consumer call, closed afterwards. Under daphne the
    # sync ORM runs in asgiref's worker threads and connections are per thread/context,
    # so persistent ones (CONN_MAX_AGE > 0) are not reused reliably and pile up until
    # PostgreSQL's max_connections; Django's docs advise 0 under ASGI. A new connection
    # costs a few milliseconds (password auth included), and consumers touch the
    # database on connect and at most every few seconds, never per frame.
    database["CONN_MAX_AGE"] = 0
    return database


DATABASES = {"default": env_database("DATABASE_URL", DATA_DIR / "webprof.sqlite3")}
ensure_private_files(DATA_DIR, ("secret-key", "collector-token", "admin-password"))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    ensure_private_files(DATA_DIR, ("webprof.sqlite3", "webprof.sqlite3-wal",
                                    "webprof.sqlite3-shm"), create="webprof.sqlite3")

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "hosts"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # plotly ships plotly.min.js in its package: served as vendor/plotly.min.js
    # so pages work with no network.
    ("vendor", Path(plotly.__file__).resolve().parent / "package_data"),
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "django": {"level": "INFO"},
        "daphne": {"level": "WARNING"},
    },
}


# ---- Sessions: retention (``webprof prune``) and the address in share links ----


def env_optional_int(name: str, minimum: int, maximum: int) -> int | None:
    """An integer, or None when unset (no limit)."""
    if os.environ.get(name, "").strip() == "":
        return None
    return env_int(name, 0, minimum, maximum)


def env_size(name: str) -> int | None:
    """Bytes from ``500M`` / ``10G`` style text (powers of 1024), or None when unset."""
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return None
    try:
        return parse_size(raw)
    except RetentionError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def env_url(name: str, default: str) -> str:
    raw = os.environ.get(name, "").strip() or default
    if not raw.startswith(("http://", "https://")) or len(raw) < 10:
        raise ImproperlyConfigured(f"{name} must be an http:// or https:// URL, got {raw!r}")
    return raw.rstrip("/")


def default_public_url() -> str:
    return f"http://{socket.gethostname()}:8000"


# Unset: no limit.  Enforced by `webprof prune` (run it from cron), never by the server.
WEBPROF_RETENTION_MAX_AGE_DAYS = env_optional_int("WEBPROF_RETENTION_MAX_AGE_DAYS", 1, 36_500)
WEBPROF_RETENTION_MAX_BYTES = env_size("WEBPROF_RETENTION_MAX_BYTES")
# The audit log: every refused request adds a row, so `webprof prune` deletes
# rows older than this, then the oldest beyond the row cap.  0: no such limit.
WEBPROF_AUDIT_MAX_AGE_DAYS = env_int("WEBPROF_AUDIT_MAX_AGE_DAYS", 90, 0, 36_500)
WEBPROF_AUDIT_MAX_ROWS = env_int("WEBPROF_AUDIT_MAX_ROWS", 1_000_000, 0, 1_000_000_000)
# Recordings: deltas waiting for the recorder's writer thread (beyond it a
# delta is refused and counted on its sessions), and recordings one user may
# run at once from the live pages (a trace's session does not count).
WEBPROF_RECORDER_QUEUE = env_int("WEBPROF_RECORDER_QUEUE", 4096, 1, 1_000_000)
WEBPROF_MAX_RECORDINGS_PER_USER = env_int("WEBPROF_MAX_RECORDINGS_PER_USER", 4, 1, 1000)
# The address users reach this server by: the base of URLs printed by the CLI
# (`webprof share`, `webprof record --save`).
WEBPROF_PUBLIC_URL = env_url("WEBPROF_PUBLIC_URL", default_public_url())


# ---- Targeted traces: limits the server enforces before asking a collector ----
# The collector checks again with its own limits; these are the site's policy.
WEBPROF_TRACE_MAX_PER_HOST = env_int("WEBPROF_TRACE_MAX_PER_HOST", 2, 1, 64)
WEBPROF_TRACE_MAX_DURATION_S = env_int("WEBPROF_TRACE_MAX_DURATION_S", 3600, 1, 86_400)
WEBPROF_TRACE_MAX_FREQUENCY_HZ = env_int("WEBPROF_TRACE_MAX_FREQUENCY_HZ", 999, 1, 999)
# At most 8: bpf/funclat.bpf.c has eight entry/return handler pairs.
WEBPROF_TRACE_MAX_FUNCTIONS = env_int("WEBPROF_TRACE_MAX_FUNCTIONS", 8, 1, 8)


# ---- Served over TLS (README "Behind TLS") ----
# WEBPROF_BEHIND_TLS=1 says browsers reach the site over https only (a reverse
# proxy, or daphne's own ssl: endpoint): cookies are sent over TLS only, plain
# http is redirected, and browsers are told (HSTS) to use https for
# WEBPROF_HSTS_SECONDS; not for subdomains unless WEBPROF_HSTS_INCLUDE_SUBDOMAINS=1,
# as they may be other sites.
WEBPROF_BEHIND_TLS = env_bool("WEBPROF_BEHIND_TLS", False)
# Set only when the proxy sets X-Forwarded-Proto itself (overwriting what the
# client sent): otherwise any client could claim https.  Without it, behind a
# proxy that talks plain http to daphne, every request looks like http, so
# the proxy must do the redirect: WEBPROF_SSL_REDIRECT=0.
WEBPROF_TRUST_X_FORWARDED_PROTO = env_bool("WEBPROF_TRUST_X_FORWARDED_PROTO", False)
if WEBPROF_TRUST_X_FORWARDED_PROTO and not WEBPROF_BEHIND_TLS:
    raise ImproperlyConfigured(
        "WEBPROF_TRUST_X_FORWARDED_PROTO=1 needs WEBPROF_BEHIND_TLS=1 "
        "(the site is served over TLS)")
if WEBPROF_TRUST_X_FORWARDED_PROTO:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = WEBPROF_BEHIND_TLS
SECURE_SSL_REDIRECT = WEBPROF_BEHIND_TLS and env_bool("WEBPROF_SSL_REDIRECT", True)
# A day at first: raise it (a year is 31536000) once https works everywhere,
# since browsers refuse plain http for this long after the first visit.
SECURE_HSTS_SECONDS = (env_int("WEBPROF_HSTS_SECONDS", 86_400, 0, 10 * 365 * 86_400)
                       if WEBPROF_BEHIND_TLS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("WEBPROF_HSTS_INCLUDE_SUBDOMAINS", False)
