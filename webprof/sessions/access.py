"""Who may see or change a session.

Logged-in users may view every session; the owner, staff and superusers may
rename, annotate, share and delete it.  A share token gives read access to
its one session and nothing else: views reached through ``/s/<token>/``
resolve the session from the token alone and never take a session id from
the request.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404

from .models import Session
from .share import resolve


def viewable(user: Any, session_id: int) -> Session:
    if not user.is_authenticated:
        raise PermissionDenied("log in to see sessions")
    session = Session.objects.filter(pk=session_id).first()
    if session is None:
        raise Http404(f"no session {session_id}")
    return session


def can_manage(user: Any, session: Session) -> bool:
    return bool(user.is_authenticated and (
        user.is_staff or user.is_superuser or session.owner_id == user.pk))


def manageable(user: Any, session_id: int) -> Session:
    session = viewable(user, session_id)
    if not can_manage(user, session):
        raise PermissionDenied("only the session's owner or an admin may change it")
    return session


def shared(token: str) -> Session:
    """The session behind a share token; 404 for unknown, revoked or expired
    tokens alike, so a probe learns nothing."""
    link = resolve(token)
    if link is None:
        raise Http404("this share link does not exist, was revoked or has expired")
    return link.session
