"""Hosts that have sent data, kept across restarts for the hosts page.

Rows are written when a collector says hello, when it disconnects and at most
every few seconds while it streams: never once per frame.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from .core.protocol import CollectorHello


class Host(models.Model):
    name = models.CharField(max_length=255, unique=True)
    kernel = models.CharField(max_length=255, blank=True)
    agent_version = models.CharField(max_length=64, blank=True)
    collectors = models.JSONField(default=list, blank=True)
    frequency_hz = models.PositiveIntegerField(default=0)
    interval_ms = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    connected = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def record_hello(cls, hello: CollectorHello) -> Host:
        host, _created = cls.objects.update_or_create(
            name=hello.host,
            defaults={
                "kernel": hello.kernel[:255],
                "agent_version": hello.agent_version[:64],
                "collectors": list(hello.collectors),
                "frequency_hz": hello.frequency_hz,
                "interval_ms": hello.interval_ms,
                "last_seen": timezone.now(),
                "connected": True,
            },
        )
        return host

    @classmethod
    def record_seen(cls, name: str, connected: bool) -> None:
        cls.objects.filter(name=name).update(last_seen=timezone.now(), connected=connected)

    @classmethod
    def mark_all_disconnected(cls) -> int:
        """At start-up: no collector is connected to a process that just started."""
        return cls.objects.filter(connected=True).update(connected=False)
