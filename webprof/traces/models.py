"""What is stored about targeted traces.

A :class:`Trace` row is created once the server and the host's collector
both accepted a request; its result is an ordinary session (source
"trace") filled while it runs.  API tokens and the audit log are in
webprof/accounts.py.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from ..core.trace_messages import FINAL_STATES, TRACE_STATES
from ..core.tracespec import TRACE_KINDS
from ..sessions.models import Session

START_PERMISSION = "webprof.start_traces"
ACTIVE_STATES = tuple(s for s in TRACE_STATES if s not in FINAL_STATES)


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
