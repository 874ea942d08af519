"""Hosts that have sent data, kept across restarts for the hosts page.

Rows are written when a collector says hello, when it disconnects and at most
every few seconds while it streams: never once per frame.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from .core import kinds
from .core.protocol import (
    CollectorConfig,
    CollectorHello,
    ProtocolError,
)

# Every collector a host can run, in the order the host page lists them.
COLLECTOR_KINDS = kinds.LIVE
CONFIGURE_PERMISSION = "webprof.configure_collectors"


def default_wanted() -> list[str]:
    return ["cpu"]


def default_options() -> dict[str, Any]:
    """Collector options nobody chose yet: a collector's own start-up defaults
    (CollectorConfig's), and ``frequency_hz`` None for "what it runs now"."""
    return {"frequency_hz": None, "pid": None, "comm": None, "min_block_us": 1,
            "max_block_us": None, "user_threads_only": True}


# The options of a config that are filters; a collector starts without any.
FILTERS = ("pid", "comm", "min_block_us", "max_block_us", "user_threads_only")


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
    # What a user chose to run on this host; sent to its collector as
    # collector.config on change and whenever it connects running otherwise.
    wanted_collectors = models.JSONField(default=default_wanted, blank=True)
    # The options chosen with it (keys of default_options()): CPU frequency
    # and the filters of off-CPU, off-wake and (pid only) latency collectors.
    collector_options = models.JSONField(default=default_options, blank=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("configure_collectors", "Can choose which collectors run on a host"),
        ]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def record_hello(cls, hello: CollectorHello) -> Host:
        # A new host adopts what its collector runs (``--collectors``) as the
        # stored selection; after that the selection made here wins.
        fields = {
            "kernel": hello.kernel[:255],
            "agent_version": hello.agent_version[:64],
            "collectors": list(hello.collectors),
            "frequency_hz": hello.frequency_hz,
            "interval_ms": hello.interval_ms,
            "last_seen": timezone.now(),
            "connected": True,
        }
        created = {**fields, "wanted_collectors": list(hello.collectors)}
        host, _created = cls.objects.update_or_create(
            name=hello.host, defaults=fields, create_defaults=created
        )
        return host

    def collector_config(self) -> CollectorConfig:
        """The stored selection and options as the message a collector acts on.

        Options are written only through the host page's form; a row edited
        into nonsense elsewhere (admin, shell) sends the collectors without
        filters rather than a config the collector would refuse.
        """
        wanted = [k for k in COLLECTOR_KINDS if k in (self.wanted_collectors or [])]
        options = {**default_options(), **(self.collector_options or {})}
        freq = options["frequency_hz"] or self.frequency_hz
        if not (isinstance(freq, int) and 1 <= freq <= 999):
            freq = 49
        config = CollectorConfig(collectors=wanted, frequency_hz=freq,
                                 **{k: options[k] for k in FILTERS})
        try:
            config.validate()
        except (ProtocolError, TypeError):
            return CollectorConfig(collectors=wanted, frequency_hz=freq)
        return config

    def config_differs(self, hello: CollectorHello) -> bool:
        """Whether a collector that just said ``hello`` runs other than stored.

        The hello tells collectors and frequency but not filters, so a stored
        filter is always sent; the collector keeps programs whose options are
        unchanged, so resending one it already applied restarts nothing.
        """
        config = self.collector_config()
        unfiltered = CollectorConfig(collectors=[])
        return (sorted(config.collectors) != sorted(hello.collectors)
                or config.frequency_hz != hello.frequency_hz
                or any(getattr(config, k) != getattr(unfiltered, k) for k in FILTERS))

    @classmethod
    def record_seen(cls, name: str, connected: bool) -> None:
        cls.objects.filter(name=name).update(last_seen=timezone.now(), connected=connected)

    @classmethod
    def mark_all_disconnected(cls) -> int:
        """At start-up: no collector is connected to a process that just started."""
        return cls.objects.filter(connected=True).update(connected=False)


def can_configure(user: Any) -> bool:
    """Staff and superusers may always choose collectors; others need the permission."""
    return bool(user.is_authenticated and (user.is_staff or user.has_perm(CONFIGURE_PERMISSION)))


# Session models live in their own module; importing them here registers them.
# API tokens and the audit log, and trace models: imported to register them.
from .accounts import ApiToken, AuditEntry  # noqa: E402,F401
from .hostkeys import HostCredential  # noqa: E402,F401
from .sessions.models import (  # noqa: E402,F401
    LatencyChunk,
    ProfileChunk,
    Session,
    SessionStack,
    SessionString,
    ShareLink,
)
from .traces.models import Trace  # noqa: E402,F401
