# Per-host collector tokens (webprof/hostkeys.py), stored as SHA-256 digests.

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("webprof", "0007_audit_host_query"),
    ]

    operations = [
        migrations.CreateModel(
            name="HostCredential",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("host", models.CharField(max_length=253, unique=True)),
                ("digest", models.CharField(max_length=64, unique=True)),
                ("prefix", models.CharField(max_length=8)),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name": "host credential",
                "ordering": ["host"],
            },
        ),
    ]
