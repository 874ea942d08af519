"""Recorded profiling sessions: what is stored, and how it is laid out.

A session's stacks and names are interned (:class:`SessionString`,
:class:`SessionStack`, each once per session); every collector interval is
one :class:`ProfileChunk` (level 0) or :class:`LatencyChunk` row, and every
minute of profile chunks is summed once more into a level-1 rollup so long
ranges read few rows.  The packed layout of chunks is in
``webprof.core.timeline``.  Deleting a session deletes all of it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

SOURCES = [("live", "recorded live"), ("cli", "webprof record"), ("import", "imported"),
           ("trace", "trace")]
STATES = [("recording", "recording"), ("complete", "complete"),
          ("interrupted", "interrupted")]
LEVEL_INTERVAL, LEVEL_MINUTE = 0, 1


class Session(models.Model):
    name = models.CharField(max_length=200)
    host = models.CharField(max_length=255, blank=True)
    kernel = models.CharField(max_length=255, blank=True)
    frequency_hz = models.PositiveIntegerField(default=0)
    interval_ms = models.PositiveIntegerField(default=0)
    # Profile and latency kinds present, in the order of COLLECTOR_KINDS.
    kinds = models.JSONField(default=list, blank=True)
    # The collector options in force (filters, frequency) when it started.
    collectors = models.JSONField(default=dict, blank=True)
    # Health counters summed over the session, per kind: lost and truncated
    # stacks, full maps, dropped events.
    health = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=16, choices=SOURCES, default="live")
    state = models.CharField(max_length=16, choices=STATES, default="recording")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="webprof_sessions")
    notes = models.TextField(blank=True)
    started_ms = models.BigIntegerField()  # unix ms of the first interval's start
    ended_ms = models.BigIntegerField(null=True, blank=True)
    # When a fixed-length recording stops by itself (unix ms); null: until stopped.
    stop_at_ms = models.BigIntegerField(null=True, blank=True)
    intervals = models.PositiveIntegerField(default=0)
    # Holes in the recording (a collector restarted, the server was away): how
    # many, and their summed length.  Counted once per hole by sessions/store.py.
    gaps = models.PositiveIntegerField(default=0)
    gap_ms = models.BigIntegerField(default=0)
    # Intervals the recorder refused because its queue was full
    # (WEBPROF_RECORDER_QUEUE): the writer fell behind, they were not kept.
    dropped_intervals = models.PositiveIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)  # stored payload bytes
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-started_ms", "-id"]
        indexes = [models.Index(fields=["created"])]

    def __str__(self) -> str:
        return self.name

    @property
    def duration_ms(self) -> int:
        end = self.ended_ms if self.ended_ms is not None else self.started_ms
        return max(0, end - self.started_ms)


class SessionString(models.Model):
    """A frame or process name, once per session."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="strings")
    idx = models.PositiveIntegerField()
    text = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "idx"],
                                               name="session_string_idx")]


class SessionStack(models.Model):
    """A distinct (pid, process name, frames) stack, once per session."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="stacks")
    idx = models.PositiveIntegerField()
    pid = models.PositiveIntegerField()
    comm = models.PositiveIntegerField()  # SessionString.idx
    frames = models.BinaryField()  # little-endian u32 SessionString.idx, outermost first

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "idx"],
                                               name="session_stack_idx")]


class ProfileChunk(models.Model):
    """One interval (level 0) or one minute (level 1) of one profile kind."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="chunks")
    kind = models.CharField(max_length=16)
    level = models.PositiveSmallIntegerField(default=LEVEL_INTERVAL)
    start_ms = models.BigIntegerField()
    duration_ms = models.PositiveIntegerField()
    slot_ms = models.PositiveIntegerField(default=0)
    weight = models.BigIntegerField(default=0)  # samples, or microseconds off-CPU
    data = models.BinaryField()  # timeline.Chunk.pack()
    slot_totals = models.JSONField(default=list, blank=True)
    health = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["session", "kind", "level", "start_ms"])]


class LatencyChunk(models.Model):
    """One interval of one latency kind: log2 histograms per series."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE,
                                related_name="latency_chunks")
    kind = models.CharField(max_length=16)
    start_ms = models.BigIntegerField()
    duration_ms = models.PositiveIntegerField()
    series = models.JSONField(default=dict)
    health = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["session", "kind", "start_ms"])]


class ShareLink(models.Model):
    """A read-only link to one session, by an unguessable token."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="shares")
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)  # first characters, to tell links apart
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked is None and (self.expires is None or self.expires > now)
