"""Per-host collector credentials: ``webprof host enroll NAME`` / ``revoke NAME``.

The shared collector token (``COLLECTOR_TOKEN``, printed by ``webprof
serve``) lets a collector speak for any host; ``webprof up`` keeps using it
for its local collector.  A per-host token lets a collector speak for its
one host only: the connection is bound to the enrolled name, and a hello
naming another host is refused (webprof/ingest.py).

As with API tokens (webprof/auth.py), a token is printed once and stored
as its SHA-256 digest with its first 8 characters.  Enrolling a host again
replaces its token; revoking deletes it.  Both take effect on the next
connection: a collector already connected stays until it reconnects.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from .core.hostname import MAX_HOST_NAME, host_name_problem
from .tokens import token_digest, url_token

TOKEN_BYTES = 32
PREFIX_CHARS = 8


class HostCredentialError(Exception):
    """An enrolment or revocation that cannot be done; the message says why."""


class HostCredential(models.Model):
    """One host's collector token, stored hashed."""

    host = models.CharField(max_length=MAX_HOST_NAME, unique=True)
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=PREFIX_CHARS)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["host"]
        verbose_name = "host credential"

    def __str__(self) -> str:
        return f"{self.host} ({self.prefix}…)"


def enroll(host: str) -> tuple[str, bool]:
    """A new token for ``host`` (shown once), and whether it replaced one."""
    problem = host_name_problem(host)
    if problem:
        raise HostCredentialError(problem)
    token = url_token(TOKEN_BYTES)
    _row, created = HostCredential.objects.update_or_create(
        host=host, defaults={"digest": token_digest(token), "prefix": token[:PREFIX_CHARS],
                             "created": timezone.now()})
    return token, not created


def revoke(host: str) -> None:
    deleted, _ = HostCredential.objects.filter(host=host).delete()
    if not deleted:
        raise HostCredentialError(f"host {host!r} has no credential")


def host_for_token(token: str) -> str | None:
    """The host a per-host token is bound to, or None for any other text."""
    return (HostCredential.objects.filter(digest=token_digest(token))
            .values_list("host", flat=True).first())
