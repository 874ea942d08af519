# The trace kinds' choices follow the kind table (webprof/core/kinds.py); no
# schema change, only the order and labels Django records.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("webprof", "0005_traces"),
    ]

    operations = [
        migrations.AlterField(
            model_name="trace",
            name="kind",
            field=models.CharField(
                choices=[
                    ("cpu", "CPU profile"),
                    ("offcpu", "Off-CPU time"),
                    ("offwake", "Off-wake time"),
                    ("runqlat", "Run-queue latency"),
                    ("biolat", "Block I/O latency"),
                    ("syscall", "Syscall latency"),
                    ("funclat", "Function latency (uprobes)"),
                    ("usdt", "USDT probe counts"),
                    ("tracepoint", "Tracepoint hits with stacks"),
                ],
                max_length=16,
            ),
        ),
    ]
