"""Parse a ``DATABASE_URL`` naming PostgreSQL into Django's ``DATABASES`` entry.

Pure (no Django import) so that the unit tier can test every accepted and rejected
form without settings; ``webprof.settings`` turns :class:`DatabaseUrlError` into
``ImproperlyConfigured``.

Accepted forms follow libpq's connection URIs, restricted to what webprof needs:

    postgresql://USER:PASSWORD@HOST:PORT/DBNAME?sslmode=require
    postgres://USER@[::1]/DBNAME
    postgresql://USER@/DBNAME?host=/run/postgresql       (unix socket directory)
    postgresql://USER@%2Frun%2Fpostgresql/DBNAME         (the same, percent-encoded)

User, password and database name are percent-decoded, so a password may hold any
character once encoded. Anything else (another scheme, several hosts, an unknown
query parameter, a bad port) is rejected with a message that says what was wrong,
because a typo here would otherwise surface as a confusing connection error later.
Messages never repeat the password.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote

ENGINE = "django.db.backends.postgresql"
SCHEMES = ("postgres", "postgresql")
EXAMPLE = "postgresql://USER:PASSWORD@HOST:5432/DBNAME (optionally ?sslmode=require)"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# Query parameters handed to libpq as connection options (Django's OPTIONS).
PASSTHROUGH_PARAMS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
)
# Query parameters that set HOST/PORT (libpq allows them in the query for sockets).
ADDRESS_PARAMS = ("host", "port")


class DatabaseUrlError(ValueError):
    """A DATABASE_URL that webprof cannot use; the message says why and shows a valid one."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"DATABASE_URL {redacted(url)!r} is not usable: {reason}. "
            f"Expected {EXAMPLE}, or "
            "postgresql://USER@/DBNAME?host=/run/postgresql for a unix socket; "
            "unset DATABASE_URL to use the embedded SQLite database."
        )


def redacted(url: str) -> str:
    """``url`` with the password (if any) replaced by ``***``, for error messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, after = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    # The last '@' ends the user info even when the password holds an unencoded '/'
    # or '@' (which the parser rejects), so no part of the password is ever shown.
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{after}"


def parse_database_url(url: str) -> dict[str, object]:
    """Return the Django ``DATABASES["default"]`` entry that ``url`` describes.

    Raises :class:`DatabaseUrlError` for anything but a single-host PostgreSQL URL.
    """
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        raise DatabaseUrlError(url, "it has no scheme (it must start with postgresql://)")
    if scheme.lower() not in SCHEMES:
        raise DatabaseUrlError(
            url, f"scheme {scheme!r} is not supported; only postgres:// and postgresql:// are"
        )
    if "#" in rest:
        raise DatabaseUrlError(url, "it has a #fragment (percent-encode '#' as %23)")
    if "@" in rest.partition("?")[0].partition("/")[2]:
        # Checked first so that later messages never quote a piece of a password.
        raise DatabaseUrlError(url, "'/' in the user or password must be percent-encoded as %2F")
    authority, _slash, tail = _split_authority(rest)
    path, _q, query = tail.partition("?")
    userinfo, _at, hostport = authority.rpartition("@")
    user, _colon, password = userinfo.partition(":")
    host, port = _split_hostport(url, hostport)
    options: dict[str, str] = {}
    for key, value in _query_params(url, query):
        if key == "host":
            host = value
        elif key == "port":
            port = value
        else:
            options[key] = value
    return {
        "ENGINE": ENGINE,
        "NAME": _database_name(url, path),
        "USER": unquote(user),
        "PASSWORD": unquote(password),
        "HOST": host,
        "PORT": _checked_port(url, port),
        "OPTIONS": options,
    }


def _split_authority(rest: str) -> tuple[str, str, str]:
    """Split ``user:pw@host:port/db?q`` at the first '/' (or '?') after the authority."""
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    if cut < len(rest) and rest[cut] == "?":
        return rest[:cut], "", rest[cut:]
    return rest[:cut], rest[cut : cut + 1], rest[cut + 1 :]


def _split_hostport(url: str, hostport: str) -> tuple[str, str]:
    if "," in hostport:
        raise DatabaseUrlError(url, "several hosts are not supported; name one host")
    if hostport.startswith("["):  # IPv6 literal: [::1]:5432
        end = hostport.find("]")
        if end < 0:
            raise DatabaseUrlError(url, "an IPv6 host lacks its closing ']'")
        host, after = hostport[1:end], hostport[end + 1 :]
        if after and not after.startswith(":"):
            raise DatabaseUrlError(url, f"unexpected {after!r} after the IPv6 host")
        return host, after[1:]
    host, _colon, port = hostport.partition(":")
    # A percent-encoded host starting with '/' is a unix socket directory, as in libpq.
    return unquote(host), port


def _checked_port(url: str, port: str) -> str:
    if port == "":
        return ""
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise DatabaseUrlError(url, f"port {port!r} is not a number in 1..65535")
    return str(int(port))


def _database_name(url: str, path: str) -> str:
    name = unquote(path)
    if not name:
        raise DatabaseUrlError(url, "it names no database (add /DBNAME after the host)")
    if "/" in name:
        raise DatabaseUrlError(url, f"database name {name!r} contains '/'")
    return name


def _query_params(url: str, query: str) -> list[tuple[str, str]]:
    if not query:
        return []
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise DatabaseUrlError(url, f"query {query!r} is not key=value&key=value") from None
    seen: set[str] = set()
    for key, value in pairs:
        if key not in PASSTHROUGH_PARAMS and key not in ADDRESS_PARAMS:
            known = ", ".join(ADDRESS_PARAMS + PASSTHROUGH_PARAMS)
            raise DatabaseUrlError(url, f"unknown parameter {key!r} (known: {known})")
        if key in seen:
            raise DatabaseUrlError(url, f"parameter {key!r} is given twice")
        seen.add(key)
        if not value:
            raise DatabaseUrlError(url, f"parameter {key!r} has no value")
        if key == "sslmode" and value not in SSLMODES:
            raise DatabaseUrlError(url, f"sslmode {value!r} is not one of {', '.join(SSLMODES)}")
    return pairs
