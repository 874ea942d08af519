"""What is stored about users beyond Django's own: API tokens and the audit log.

:class:`ApiToken` rows hold only a SHA-256 digest of each token and its
first characters.  :class:`AuditEntry` rows are append-only: every start,
refusal, cancel and end of a trace, every question put to a host's
collector (asked or refused), and every token created or revoked.
Both serve every part of the site (the API, the trace pages, share links
opened with a token), so they live beside webprof/auth.py rather than in
one feature's package.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

ACTIONS = [
    ("trace_start", "trace started"),
    ("trace_refused", "trace refused"),
    ("trace_cancel", "trace cancelled by a user"),
    ("trace_finished", "trace finished"),
    ("trace_failed", "trace failed"),
    ("host_query", "host question asked"),
    ("query_refused", "host question refused"),
    ("token_create", "API token created"),
    ("token_revoke", "API token revoked"),
]


class ApiToken(models.Model):
    """A user's API key for ``Authorization: Bearer``; shown once, stored hashed."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="webprof_tokens")
    name = models.CharField(max_length=100, blank=True)
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, db_index=True)
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @property
    def is_active(self) -> bool:
        return self.revoked is None


class AuditEntry(models.Model):
    time = models.DateTimeField(default=timezone.now, db_index=True)
    # The user, and their name as it was (the row outlives a deleted user).
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150, blank=True)
    token_prefix = models.CharField(max_length=8, blank=True)  # when a token was used
    action = models.CharField(max_length=20, choices=ACTIONS)
    trace = models.ForeignKey("webprof.Trace", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="audit")
    host = models.CharField(max_length=255, blank=True)
    detail = models.TextField(blank=True)  # the trace's description, or the refusal reasons
    remote_addr = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-time", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action}"

    @classmethod
    def record(cls, action: str, *, user: Any = None, token: ApiToken | None = None,
               trace: models.Model | None = None, host: str = "", detail: str = "",
               remote_addr: str | None = None) -> AuditEntry:
        """Append one entry; ``trace`` is a webprof.Trace row."""
        if token is not None and user is None:
            user = token.user
        authenticated = user is not None and getattr(user, "is_authenticated", False)
        return cls.objects.create(
            action=action, user=user if authenticated else None,
            username=user.get_username()[:150] if authenticated else "",
            token_prefix=token.prefix if token is not None else "", trace=trace,
            host=(host or (trace.host if trace else ""))[:255], detail=detail,
            remote_addr=remote_addr or None)
