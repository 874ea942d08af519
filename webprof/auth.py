"""Who is calling the API: a browser session or ``Authorization: Bearer TOKEN``.

Tokens are 32 random bytes (URL-safe base64, 43 characters), shown once
when created and stored as a SHA-256 digest plus the first 8 characters, so
that a leaked database does not leak working keys and a user can still tell
tokens apart.  A request that names a token is judged by that token alone:
an unknown or revoked one is refused even if a session cookie came with it.

CSRF: a cookie is sent by the browser on its own, so cookie-authenticated
writes need Django's CSRF token; a Bearer token is never sent implicitly,
so requests carrying one are exempt.  The API views are ``csrf_exempt`` and
call :func:`csrf_failure` themselves for the cookie case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone

from .accounts import ApiToken, AuditEntry
from .tokens import token_digest, url_token

TOKEN_BYTES = 32
PREFIX_CHARS = 8
# last_used is a hint for admins, not a log: one write a minute at most.
LAST_USED_EVERY = timedelta(minutes=1)


class TokenError(Exception):
    """An expected failure of a token command; the message is for the user."""


@dataclass
class Caller:
    """The authenticated user of one request and the token used, if any."""

    user: Any
    token: ApiToken | None = None

    @property
    def token_prefix(self) -> str:
        return self.token.prefix if self.token else ""


def new_token() -> str:
    """A fresh token; never one starting with '-' (see webprof.tokens)."""
    return url_token(TOKEN_BYTES)


def create_token(username: str, name: str = "") -> tuple[str, ApiToken]:
    """Make a token for an existing, active user; return it (shown once) and its row."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise TokenError(f"no user named {username!r} (create one with "
                         "`python manage.py createsuperuser` or in the admin)")
    if not user.is_active:
        raise TokenError(f"user {username!r} is inactive")
    if len(name) > 100:
        raise TokenError("the token's name must be at most 100 characters")
    token = new_token()
    row = ApiToken.objects.create(user=user, name=name, digest=token_digest(token),
                                  prefix=token[:PREFIX_CHARS])
    AuditEntry.record("token_create", user=user, token=row,
                      detail=f"token {row.prefix} {name!r} for {username}".strip())
    return token, row


def find_token(token_or_prefix: str) -> ApiToken:
    """An active token by its full text or its 8-character prefix."""
    text = token_or_prefix.strip()
    if len(text) == PREFIX_CHARS:
        rows = list(ApiToken.objects.filter(prefix=text, revoked__isnull=True))
        if len(rows) > 1:
            raise TokenError(f"several active tokens start with {text!r}; give the whole token")
    else:
        rows = list(ApiToken.objects.filter(digest=token_digest(text), revoked__isnull=True))
    if not rows:
        raise TokenError("no active token matches (see `webprof token list`)")
    return rows[0]


def revoke_token(token_or_prefix: str, by: Any = None) -> ApiToken:
    row = find_token(token_or_prefix)
    row.revoked = timezone.now()
    row.save(update_fields=["revoked"])
    AuditEntry.record("token_revoke", user=by, token=row if by is None else None,
                      detail=f"token {row.prefix} of {row.user.get_username()}")
    return row


def resolve_token(token: str) -> ApiToken | None:
    """The active token with this text and an active user, else None."""
    row = (ApiToken.objects.select_related("user")
           .filter(digest=token_digest(token), revoked__isnull=True).first())
    if row is None or not row.user.is_active:
        return None
    now = timezone.now()
    if row.last_used is None or now - row.last_used >= LAST_USED_EVERY:
        ApiToken.objects.filter(pk=row.pk).update(last_used=now)
        row.last_used = now
    return row


def bearer(request: HttpRequest) -> str | None:
    """The token of an ``Authorization: Bearer`` header; "" for a malformed one."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def caller(request: HttpRequest) -> Caller | None:
    """The authenticated caller, or None (answer 401)."""
    token = bearer(request)
    if token is not None:
        row = await sync_to_async(resolve_token)(token) if token else None
        return Caller(row.user, row) if row else None
    user = await request.auser()
    return Caller(user) if user.is_authenticated else None


async def may_start(who: Caller) -> bool:
    """Superusers implicitly; others need ``webprof.start_traces`` (user or group)."""
    user = who.user
    return bool(user.is_active and (user.is_superuser
                                    or await user.ahas_perm("webprof.start_traces")))


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:  # type: ignore[override]
        return reason


def _no_response(request: HttpRequest) -> None:
    return None


def csrf_failure(request: HttpRequest, who: Caller) -> str | None:
    """Why a cookie-authenticated request fails CSRF, or None when it passes."""
    if who.token is not None:
        return None
    check = _CsrfCheck(_no_response)
    check.process_request(request)
    reason = check.process_view(request, _no_response, (), {})
    return str(reason) if reason else None
