"""Read-only share links: create, resolve and revoke.

A link's token is 32 random bytes (``secrets.token_urlsafe``), shown once
when created and stored only as its SHA-256 digest.  Resolving compares
digests by database lookup, so no token is ever compared character by
character in Python.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone

from ..tokens import token_digest, url_token
from .models import Session, ShareLink

TOKEN_BYTES = 32
MAX_EXPIRY = timedelta(days=366)
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ShareError(ValueError):
    """A share request that cannot be honoured; the message says why."""


def parse_expiry(text: str | None) -> timedelta | None:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"2w"``; empty or "never" for no expiry."""
    if text is None or text.strip().lower() in ("", "never", "none"):
        return None
    match = _DURATION.match(text)
    if not match:
        raise ShareError(f"expiry {text!r} is not a duration like 30m, 12h, 7d or 2w")
    delta = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if delta <= timedelta(0):
        raise ShareError("expiry must be longer than zero")
    if delta > MAX_EXPIRY:
        raise ShareError("expiry must be at most 366 days; leave it empty for no expiry")
    return delta


def create_link(session: Session, user: object | None,
                expires_in: timedelta | None) -> tuple[str, ShareLink]:
    """A new link; returns the token (shown once) and the stored row."""
    token = url_token(TOKEN_BYTES)
    link = ShareLink.objects.create(
        session=session, digest=token_digest(token), prefix=token[:8],
        created_by=user if getattr(user, "is_authenticated", False) else None,
        expires=timezone.now() + expires_in if expires_in else None)
    return token, link


def resolve(token: str) -> ShareLink | None:
    """The active link for ``token``, or None (unknown, revoked or expired)."""
    if not token or len(token) > 128:
        return None
    link = ShareLink.objects.select_related("session").filter(digest=token_digest(token)).first()
    return link if link is not None and link.is_active() else None


def revoke(token_or_prefix: str) -> ShareLink:
    """Revoke by full token, or by the 8-character prefix the lists show."""
    links = ShareLink.objects.filter(digest=token_digest(token_or_prefix))
    if not links.exists() and len(token_or_prefix) == 8:
        links = ShareLink.objects.filter(prefix=token_or_prefix)
    found = list(links)
    if not found:
        raise ShareError("no share link has that token")
    if len(found) > 1:
        raise ShareError("several links start with that prefix; give the whole token")
    link = found[0]
    if link.revoked is None:
        link.revoked = timezone.now()
        link.save(update_fields=["revoked"])
    return link
