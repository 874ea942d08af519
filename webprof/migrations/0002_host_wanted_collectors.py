import django.db.models
from django.db import migrations

import webprof.models


class Migration(migrations.Migration):
    dependencies = [
        ("webprof", "0001_initial"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="host",
            options={
                "ordering": ["name"],
                "permissions": [
                    ("configure_collectors", "Can choose which collectors run on a host")
                ],
            },
        ),
        migrations.AddField(
            model_name="host",
            name="wanted_collectors",
            field=django.db.models.JSONField(blank=True, default=webprof.models.default_wanted),
        ),
    ]
