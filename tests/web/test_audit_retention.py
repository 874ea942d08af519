"""The audit log is bounded: `webprof prune` deletes entries older than
WEBPROF_AUDIT_MAX_AGE_DAYS (default 90), then the oldest beyond
WEBPROF_AUDIT_MAX_ROWS, even when no session limit is set."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from test_session_cli import Cli, text

from webprof.accounts import AuditEntry
from webprof.sessions.retention import prune_audit

pytestmark = pytest.mark.web


def entries(ages_days: list[float], same_time=None) -> list[int]:
    now = timezone.now()
    return [AuditEntry.objects.create(action="trace_refused", detail=f"#{i}",
                                      time=same_time or now - timedelta(days=d)).id
            for i, d in enumerate(ages_days)]


@pytest.mark.django_db
def test_age_then_row_cap():
    old = entries([200, 91])
    young = entries([30, 10, 5, 1])
    assert prune_audit(90, 0, dry_run=True) == 2
    assert AuditEntry.objects.count() == 6
    assert prune_audit(90, 0) == 2
    assert sorted(AuditEntry.objects.values_list("id", flat=True)) == young
    assert not AuditEntry.objects.filter(id__in=old).exists()
    assert prune_audit(0, 3) == 1  # the oldest of the four
    assert sorted(AuditEntry.objects.values_list("id", flat=True)) == young[1:]
    assert prune_audit(90, 3) == 0  # a second run has nothing to do


@pytest.mark.django_db
def test_row_cap_with_equal_times_keeps_the_newest_ids():
    ids = entries([0] * 5, same_time=timezone.now())
    assert prune_audit(0, 2) == 3
    assert sorted(AuditEntry.objects.values_list("id", flat=True)) == ids[3:]


def test_prune_command_applies_audit_retention_without_session_limits(tmp_path: Path):
    cli = Cli(tmp_path / "data")
    cli("sessions")  # creates and migrates the database
    now = timezone.now()
    with cli.db() as conn:
        for days in (400, 100, 95, 3, 2, 1):
            conn.execute("INSERT INTO webprof_auditentry (time, username, token_prefix, "
                         "action, host, detail) VALUES (?, '', '', 'trace_refused', '', '')",
                         ((now - timedelta(days=days)).isoformat(" "),))
    out = text(cli("prune"))
    assert "no limit set" in out and "removed 3 audit log entries" in out, out
    assert cli.sql("SELECT COUNT(*) FROM webprof_auditentry") == [(3,)]
    out = text(cli("prune", "--dry-run", WEBPROF_AUDIT_MAX_ROWS="1"))
    assert "would remove 2 audit log entries" in out, out
    assert "removed 2" in text(cli("prune", WEBPROF_AUDIT_MAX_ROWS="1"))
    assert cli.sql("SELECT COUNT(*) FROM webprof_auditentry") == [(1,)]
    assert "WEBPROF_AUDIT_MAX_AGE_DAYS" in cli.fails("prune", WEBPROF_AUDIT_MAX_AGE_DAYS="-1")
