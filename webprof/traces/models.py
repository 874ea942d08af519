"""What is stored about targeted traces, API tokens and who did what.

A :class:`Trace` row is created once the server and the host's collector
both accepted a request; its result is an ordinary session (source
"trace") filled while it runs.  :class:`ApiToken` rows hold only a SHA-256
digest of each token and its first characters.  :class:`AuditEntry` rows
are append-only: every start, refusal, cancel and end of a trace, and every
token created or revoked.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from ..core.trace_messages import FINAL_STATES, TRACE_STATES
from ..core.tracespec import TRACE_KINDS
from ..sessions.models import Session

START_PERMISSION = "webprof.start_traces"
ACTIVE_STATES = tuple(s for s in TRACE_STATES if s not in FINAL_STATES)
ACTIONS = [
    ("trace_start", "trace started"),
    ("trace_refused", "trace refused"),
    ("trace_cancel", "trace cancelled by a user"),
    ("trace_finished", "trace finished"),
    ("trace_failed", "trace failed"),
    ("token_create", "API token created"),
    ("token_revoke", "API token revoked"),
]


class Trace(models.Model):
    host = models.CharField(max_length=255)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=[(k, v[0]) for k, v in TRACE_KINDS.items()])
    spec = models.JSONField(default=dict)  # TraceSpec.to_dict(), as sent to the collector
    description = models.CharField(max_length=1000, blank=True)
    state = models.CharField(max_length=16, choices=[(s, s) for s in TRACE_STATES],
                             default="queued")
    # Progress as last stored; while a trace runs the broker holds fresher figures.
    elapsed_ms = models.BigIntegerField(default=0)
    remaining_ms = models.BigIntegerField(default=0)
    duration_s = models.PositiveIntegerField()
    reason = models.CharField(max_length=500, blank=True)  # why it failed or ended early
    errors = models.JSONField(default=dict, blank=True)  # per field, from the collector
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    cancelled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    started_ms = models.BigIntegerField()  # unix ms when the server accepted it
    ended_ms = models.BigIntegerField(null=True, blank=True)
    session = models.ForeignKey(Session, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="traces")

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["host", "state"])]
        permissions = [("start_traces", "Can start and cancel targeted traces")]

    def __str__(self) -> str:
        return f"trace {self.pk}: {self.name}"

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


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
    trace = models.ForeignKey(Trace, null=True, blank=True, on_delete=models.SET_NULL,
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
               trace: Trace | None = None, host: str = "", detail: str = "",
               remote_addr: str | None = None) -> AuditEntry:
        if token is not None and user is None:
            user = token.user
        authenticated = user is not None and getattr(user, "is_authenticated", False)
        return cls.objects.create(
            action=action, user=user if authenticated else None,
            username=user.get_username()[:150] if authenticated else "",
            token_prefix=token.prefix if token is not None else "", trace=trace,
            host=(host or (trace.host if trace else ""))[:255], detail=detail,
            remote_addr=remote_addr or None)
