import django.db.models
from django.db import migrations

import webprof.models


class Migration(migrations.Migration):
    dependencies = [
        ("webprof", "0002_host_wanted_collectors"),
    ]

    operations = [
        migrations.AddField(
            model_name="host",
            name="collector_options",
            field=django.db.models.JSONField(blank=True, default=webprof.models.default_options),
        ),
    ]
