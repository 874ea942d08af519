# Questions to a host's collector are audited: two more audit actions; no
# schema change, only the choices Django records.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("webprof", "0006_trace_kind_order"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditentry",
            name="action",
            field=models.CharField(
                choices=[
                    ("trace_start", "trace started"),
                    ("trace_refused", "trace refused"),
                    ("trace_cancel", "trace cancelled by a user"),
                    ("trace_finished", "trace finished"),
                    ("trace_failed", "trace failed"),
                    ("host_query", "host question asked"),
                    ("query_refused", "host question refused"),
                    ("token_create", "API token created"),
                    ("token_revoke", "API token revoked"),
                ],
                max_length=20,
            ),
        ),
    ]
